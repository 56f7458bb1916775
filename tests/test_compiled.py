"""Compiled, multi-file candidates: built in the sandbox, run per case, in every tier.

A C problem folder (tests/compiled_support.py) is loaded from its problem.yaml; its
candidate is built with the tier's compiler and run once per case; a build error is
the candidate's feedback; identical sources are built once per run.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from evolve.evaluation import Evaluator
from evolve.sandbox.base import SandboxLimits
from tests.compiled_support import HONEST_C, make_compiled_problem, with_file
from tests.sandbox_support import LIMITS, make_backend

pytestmark = pytest.mark.timeout(300)

TIERS = [pytest.param("process"), pytest.param("bwrap", marks=pytest.mark.bwrap),
         pytest.param("docker-pool", marks=pytest.mark.docker)]


@pytest.mark.parametrize("backend", TIERS)
async def test_a_c_candidate_is_built_and_run_in_every_tier(backend: str, tmp_path: Path) -> None:
    problem = make_compiled_problem(tmp_path / "problem", [{}, {}])
    sandbox = make_backend(backend, f"test-compiled-{uuid.uuid4().hex[:8]}", exec_scratch=True)
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    try:
        first = await evaluator.evaluate(problem.seed_code, "search")
        assert first.valid and first.score == 1.0, first.feedback
        heldout = await evaluator.evaluate(problem.seed_code, "heldout")
        assert heldout.valid, heldout.feedback
        # The same sources ran the same build (its stamp), on another split and another job.
        stamps = {v.metrics["build"] for v in [*first.verdicts.values(), *heldout.verdicts.values()]}
        assert len(stamps) == 1

        changed = with_file(problem.seed_code, "twice.c", HONEST_C.replace("long factor = 2;", "long factor = 1 + 1;"))
        other = await evaluator.evaluate(changed, "search")
        assert other.valid, other.feedback
        assert {v.metrics["build"] for v in other.verdicts.values()}.isdisjoint(stamps)  # new sources: built again

        wrong = with_file(problem.seed_code, "twice.c", HONEST_C.replace("long factor = 2;", "long factor = 3;"))
        judged = await evaluator.evaluate(wrong, "search")
        assert not judged.valid and "wrong answer" in judged.feedback
    finally:
        evaluator.close()
        await sandbox.close()


async def test_a_build_error_is_the_candidates_feedback_and_is_not_built_again(tmp_path: Path) -> None:
    problem = make_compiled_problem(tmp_path / "problem", [{}])
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    broken = with_file(problem.seed_code, "twice.c",
                       HONEST_C.replace("long factor = 2;", "long factor = undeclared_name;"))
    try:
        result = await evaluator.evaluate(broken, "search")
        assert not result.valid and result.score is None
        assert result.feedback.startswith("build failed (error): exit status 1")
        assert re.search(r"twice\.c:\d+:\d+: error: .undeclared_name. undeclared", result.feedback), result.feedback
        again = await evaluator.evaluate(broken, "heldout")
        assert again.feedback == result.feedback and evaluator.builds.builds == 1
    finally:
        evaluator.close()
        await sandbox.close()


async def test_a_program_that_fails_or_runs_too_long_fails_its_case(tmp_path: Path) -> None:
    problem = make_compiled_problem(tmp_path / "problem", [{}])
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    exits = with_file(problem.seed_code, "twice.c", HONEST_C.replace("return factor * x;", "exit(7);").replace(
        '#include "double.h"', '#include <stdlib.h>\n#include <stdio.h>\n#include "double.h"').replace(
        "long factor = 2;", 'long factor = 2; fprintf(stderr, "gave up on %ld\\n", x);'))
    spins = with_file(problem.seed_code, "twice.c", HONEST_C.replace("return factor * x;",
                                                                     "for (volatile long i = 0;; i++) {}"))
    try:
        result = await evaluator.evaluate(exits, "search")
        assert not result.valid and "error: the program exited with status 7\ngave up on 21" in result.feedback
        result = await evaluator.evaluate(spins, "search")
        assert not result.valid and f"timeout: exceeded the {LIMITS.case_timeout:g} s CPU time limit" in result.feedback
    finally:
        evaluator.close()
        await sandbox.close()


def test_a_multi_file_problem_without_a_run_command_is_refused(tmp_path: Path) -> None:
    from evolve.problem import ProblemError

    make_compiled_problem(tmp_path / "problem", [{}])
    yaml = tmp_path / "problem" / "problem.yaml"
    yaml.write_text(yaml.read_text().replace("run:\n  command: ./twice\n", ""))
    from evolve.config import compose_config
    from evolve.problem import load_problem

    with pytest.raises(ProblemError, match=r"problem 'twice_c': set `run: \{command: ./program\}`"):
        load_problem(compose_config([f"problem={yaml}"]))


async def test_a_calibrated_compiled_problem_scores_candidates_against_the_built_seed() -> None:
    from evolve.config import compose_config
    from evolve.paths import PROBLEMS
    from evolve.problem import load_problem

    problem = load_problem(compose_config([f"problem={PROBLEMS / 'center_c' / 'problem.yaml'}",
                                           "problem.reference=seed"]))
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    closer = problem.seed_code.replace("double shift = 0.0;", "double shift = -0.3;")
    try:
        seed = await evaluator.evaluate(problem.seed_code, "search")
        better = await evaluator.evaluate(closer, "search")
        assert seed.valid and seed.score == 1.0, seed.feedback
        assert better.valid and better.score < 1.0 and "x the reference" in better.feedback
        assert evaluator.builds.builds == 2  # the seed (as candidate and as reference) was built once
    finally:
        evaluator.close()
        await sandbox.close()


def test_a_run_stdin_naming_an_input_some_case_lacks_is_refused(tmp_path: Path) -> None:
    from evolve.config import compose_config
    from evolve.problem import ProblemError, load_problem

    make_compiled_problem(tmp_path / "problem", [{"text": "21"}, {}])
    yaml = tmp_path / "problem" / "problem.yaml"
    yaml.write_text(yaml.read_text().replace("  command: ./twice\n", "  command: ./twice\n  stdin: text\n"))
    with pytest.raises(ProblemError, match=r"run.stdin is 'text', but case 'c2' .* has no string input 'text'"):
        load_problem(compose_config([f"problem={yaml}"]))


def test_sandbox_check_builds_a_compiled_problems_seed(tmp_path: Path) -> None:
    import subprocess
    import sys

    make_compiled_problem(tmp_path / "problem", [{}])
    yaml = tmp_path / "problem" / "problem.yaml"
    command = [sys.executable, "-m", "evolve", "sandbox", "check", f"problem={yaml}", "sandbox=process",
               "sandbox.allow_root=true"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "seed build of twice_c on process: ok" in done.stdout, done.stdout + done.stderr
    (tmp_path / "problem" / "double.h").write_text("long twice(long x)\n")  # a missing semicolon
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert re.search(r"seed build of twice_c on process: failed \(error: exit status 1\n.*error: ", done.stdout,
                     re.DOTALL), done.stdout


async def test_a_multi_file_python_program_needs_no_build(tmp_path: Path) -> None:
    from evolve.config import compose_config
    from evolve.problem import load_problem
    from tests.compiled_support import VERIFIER

    folder = tmp_path / "py"
    (folder / "pkg").mkdir(parents=True)
    (folder / "main.py").write_text("import json, sys\nfrom pkg.rule import twice\n"
                                    "x = json.loads(sys.stdin.readline())['x']\nprint(json.dumps({'answer': twice(x)}))\n")
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "rule.py").write_text("def twice(x):\n    return x + x\n")
    (folder / "verifier.py").write_text(VERIFIER.format(secret="none"))
    (folder / "cases.json").write_text('{"search": [{"id": "c1", "inputs": {"x": 4}, "private": {"answer": 8}}]}')
    (folder / "problem.yaml").write_text("name: twice_py\ncases: cases.json\nverifier: verifier.py\n"
                                         "files: [main.py, pkg/__init__.py, {path: pkg/rule.py, whole: true}]\n"
                                         "run:\n  command: python3 -E main.py\n")
    problem = load_problem(compose_config([f"problem={folder}"]))
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    try:
        result = await evaluator.evaluate(problem.seed_code, "search")
        assert result.valid and result.score == 1.0, result.feedback
    finally:
        evaluator.close()
        await sandbox.close()


async def test_raw_text_in_and_out(tmp_path: Path) -> None:
    """run.stdin: NAME sends that input raw; run.stdout: text gives the verifier the printed text."""
    from evolve.config import compose_config
    from evolve.problem import load_problem

    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "flags.txt").write_text("-n\n")
    (folder / "verifier.py").write_text(
        "from evolve.problem import Verdict\n\n\ndef verify(case, run, settings):\n"
        "    if run.status != 'ok':\n        return Verdict(False, feedback=run.message)\n"
        "    return Verdict(run.output == case.inputs['text'].upper(), 1.0, feedback=repr(run.output))\n")
    text = "p cnf 3 2\n1 -2 0\n2 3 0\n"
    (folder / "cases.json").write_text(json.dumps({"search": [{"id": "c1", "inputs": {"text": text}}]}))
    (folder / "problem.yaml").write_text("name: shout\ncases: cases.json\nverifier: verifier.py\n"
                                         "files: [{path: flags.txt, whole: true}]\n"
                                         "run:\n  command: tr a-z A-Z\n  stdin: text\n  stdout: text\n")
    problem = load_problem(compose_config([f"problem={folder}"]))
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    try:
        result = await evaluator.evaluate(problem.seed_code, "search")
        assert result.valid, result.feedback
        assert result.verdicts["c1"].feedback == repr(text.upper())
    finally:
        evaluator.close()
        await sandbox.close()
