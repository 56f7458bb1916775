"""The verifier is frozen for the life of a run: its code, and its helper modules', are the bytes
read (and hashed into the evaluator identity) when the problem was loaded.

Verification and certification run in worker processes started at any time during a run. On
the process tier a candidate can write files, so a worker that read the verifier from disk
would judge later candidates by whatever the candidate wrote. Everything here runs for real:
the process sandbox, verification and certification worker processes.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from evolve.certification import Certifier
from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.problem import Problem, load_problem
from evolve.sandbox.factory import limits_from
from evolve.sandbox.process import ProcessSandbox

# The score comes from a helper module the verifier imports from its own folder; "loop" keeps the
# verifier busy past its time limit, so its worker is killed and the next evaluation needs a new one.
VERIFIER = '''
import time

from evolve.problem import Verdict
from frozenhelpers.scoring import score


def verify(case, run, settings):
    value = run.output["value"]
    while value == "loop":
        time.sleep(0.1)
    return Verdict(True, score(value), metrics={"subject": {"value": value}})


def gate(subject, bound, settings, time_limit):
    return {"status": "proven", "value": bound, "value_float": float(bound), "seconds": 0.0, "solver": "frozen"}


def certify(subject, settings, upper, lower, time_limit):
    bound = score(subject["value"])
    return {"status": "proven", "bound": str(bound), "bound_float": bound, "lower": lower, "width": 0.0,
            "calls": 1, "seconds": 0.0, "solver": "frozen"}
'''
HELPER = "def score(value):\n    return float(value)\n"

# What a hostile candidate (or anyone) writes over them during the run.
TAMPERED_VERIFIER = '''
from evolve.problem import Verdict
from frozenhelpers.scoring import score


def verify(case, run, settings):
    return Verdict(True, score(run.output["value"]))


def gate(subject, bound, settings, time_limit):
    raise RuntimeError("tampered gate")


def certify(subject, settings, upper, lower, time_limit):
    raise RuntimeError("tampered certify")
'''
TAMPERED_HELPER = "def score(value):\n    return 0.0\n"


def program(value: object, tag: int = 0) -> str:
    return (f"# EVOLVE-BLOCK-START\ndef main(x, **_):\n    tag = {tag}\n    return {{'value': {value!r}}}\n"
            "# EVOLVE-BLOCK-END\n")


@pytest.fixture
def problem_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "problem"
    (folder / "frozenhelpers").mkdir(parents=True)
    (folder / "frozenhelpers" / "__init__.py").write_text("")
    (folder / "frozenhelpers" / "scoring.py").write_text(HELPER)
    (folder / "verifier.py").write_text(VERIFIER)
    (folder / "seed.py").write_text(program(1.0))
    (folder / "cases.json").write_text(json.dumps({"search": [{"id": "c1", "inputs": {"x": 1}}]}))
    (folder / "problem.yaml").write_text("\n".join([
        "name: frozen", "description: a value scored by a helper module", f"seed_program: {folder / 'seed.py'}",
        f"cases: {folder / 'cases.json'}", f"verifier: {folder / 'verifier.py'}", "entry: main",
        "objective: minimize", "case_timeout: 5.0", "settings: {}", ""]))
    # The helper package is importable by the engine and by its worker processes, as evaluators/ is.
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p))
    return folder / "problem.yaml"


def tamper(problem: Problem) -> None:
    folder = problem.verifier_path.parent
    (folder / "verifier.py").write_text(TAMPERED_VERIFIER)
    (folder / "frozenhelpers" / "scoring.py").write_text(TAMPERED_HELPER)


def evaluator(problem: Problem, cfg) -> Evaluator:
    return Evaluator(problem, ProcessSandbox(), limits_from(cfg), "test", verifier_timeout=2)


@pytest.mark.slow
def test_rewriting_the_verifier_and_its_helpers_during_a_run_changes_no_later_judgement(problem_yaml: Path) -> None:
    cfg = compose_config([f"problem={problem_yaml}"])
    problem = load_problem(cfg)
    first = evaluator(problem, cfg)
    certifier = Certifier(problem.verifier_source, problem.settings, 20, 20, 5)

    async def judged_after_tampering() -> tuple:
        try:
            before = await first.evaluate(program(2.5), "search")
            tamper(problem)
            same_worker = await first.evaluate(program(3.5, 1), "search")
            stuck = await first.evaluate(program("loop", 2), "search")  # its worker is killed at the limit
            fresh_worker = await first.evaluate(program(4.5, 3), "search")
        finally:
            first.close()
        second = evaluator(problem, cfg)  # a new pool: every worker starts after the files changed
        try:
            fresh_pool = await second.evaluate(program(5.5, 4), "search")
        finally:
            second.close()
        gate = await certifier.gate({"value": 4.5}, "5")
        certified = await certifier.certify({"value": 4.5}, None, 4.5)
        return before, same_worker, stuck, fresh_worker, fresh_pool, gate, certified

    before, same_worker, stuck, fresh_worker, fresh_pool, gate, certified = asyncio.run(judged_after_tampering())
    assert before.score == 2.5 and same_worker.score == 3.5
    assert not stuck.valid and "ran past its 2 s limit" in stuck.feedback
    assert fresh_worker.valid and fresh_worker.score == 4.5
    assert fresh_pool.valid and fresh_pool.score == 5.5
    assert gate.status == "proven"
    assert certified.status == "proven" and certified.bound_float == 4.5
    # The identity the run started with still describes the code that judges; the files on disk changed.
    assert problem.identity_parts() != problem.identity_parts(on_disk=True)

    # The files really were changed: a problem loaded now judges by the new code.
    reloaded = load_problem(cfg)
    later = evaluator(reloaded, cfg)
    try:
        rescored = asyncio.run(later.evaluate(program(2.5), "search"))
    finally:
        later.close()
    assert rescored.valid and rescored.score == 0.0

