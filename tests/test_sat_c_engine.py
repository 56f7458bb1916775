"""sat_c through the engine: the seed is built in the sandbox, run per formula and judged by the
problem's verifier; a forged answer disqualifies the candidate.

The real problem folder is copied with a few quick formulas of its benchmark (so the test costs
a few seconds of CPU on any machine); no time is asserted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import uuid
from pathlib import Path

import pytest

from evolve import bundle
from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.paths import PROBLEMS
from evolve.problem import Problem, load_problem
from evolve.sandbox.base import SandboxLimits
from tests.compiled_support import with_file
from tests.sandbox_support import LIMITS, make_backend

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # builds and runs the solver in every tier

FOLDER = PROBLEMS / "sat_c"
QUICK = {"search": ["uf175-s1751", "php7-s70", "col350-s362"], "heldout": ["tseitin60sat-s6000", "qwh30-s3002"]}


def quick_problem(directory: Path) -> Problem:
    shutil.copytree(FOLDER, directory)
    cases = json.loads((FOLDER / "cases.json").read_text())
    kept = {split: [c for c in cases[split] if c["id"] in ids] for split, ids in QUICK.items()}
    (directory / "cases.json").write_text(json.dumps(kept))
    return load_problem(compose_config([f"problem={directory / 'problem.yaml'}"]))


def test_the_bundled_problem_loads_by_name_with_its_solver_as_the_candidate() -> None:
    problem = load_problem(compose_config(["problem=sat_c"]))
    files = {source.path: source.text for source in bundle.parse(problem.seed_code)}
    assert list(files) == ["solver.c"] and files["solver.c"] == (FOLDER / "solver.c").read_text()
    assert "// EVOLVE-BLOCK-START" in files["solver.c"] and "// EVOLVE-BLOCK-END" in files["solver.c"]
    assert problem.settings["time_limit"] == problem.case_timeout and not problem.maximize
    assert len(problem.split("search")) >= 16 and len(problem.split("heldout")) >= 10


TIERS = [pytest.param("process"), pytest.param("bwrap", marks=pytest.mark.bwrap),
         pytest.param("docker-pool", marks=pytest.mark.docker)]


@pytest.mark.parametrize("backend", TIERS)
async def test_the_seed_is_built_and_solves_every_formula_as_labelled(backend: str, tmp_path: Path) -> None:
    problem = quick_problem(tmp_path / "sat_c")
    sandbox = make_backend(backend, f"test-sat-c-{uuid.uuid4().hex[:8]}", exec_scratch=True)
    evaluator = Evaluator(problem, sandbox, _limits(problem), "test")
    try:
        for split in ("search", "heldout"):
            result = await evaluator.evaluate(problem.seed_code, split)
            assert result.valid, result.feedback
            labels = {case.id: case.private["label"] for case in problem.split(split)}
            assert {cid: v.metrics["answer"] for cid, v in result.verdicts.items()} == labels
            # every formula solved: the score is CPU time, below the PAR-2 charge of an unsolved one
            assert result.score < 2 * problem.case_timeout
    finally:
        evaluator.close()
        await sandbox.close()


@pytest.mark.parametrize("forgery, reason", [
    ('printf("s UNSATISFIABLE\\n"); return 0;', "WRONG: the UNSAT claim is not correct"),
    ('printf("s SATISFIABLE\\nv 1 0\\n"); return 0;', "WRONG model"),
])
async def test_a_forged_answer_disqualifies_the_candidate(forgery: str, reason: str, tmp_path: Path) -> None:
    problem = quick_problem(tmp_path / "sat_c")
    source = (FOLDER / "solver.c").read_text()
    forged, count = re.subn(r"int main\(int argc, char \*\*argv\) \{", lambda m: m.group() + "\n    " + forgery,
                            source)
    assert count == 1
    sandbox = make_backend("process", "test")
    evaluator = Evaluator(problem, sandbox, _limits(problem), "test")
    try:
        result = await evaluator.evaluate(with_file(problem.seed_code, "solver.c", forged), "search")
        assert not result.valid and reason in result.feedback, result.feedback
    finally:
        evaluator.close()
        await sandbox.close()


def _limits(problem: Problem) -> SandboxLimits:
    """The test sandbox's limits with the problem's own time per formula."""
    return dataclasses.replace(LIMITS, case_timeout=problem.case_timeout, memory_mb=1024)
