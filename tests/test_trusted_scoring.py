"""A candidate that tries to change its own score, by every route we know, gains nothing.

Each hostile program is the circle packing seed plus an attack. The verdict must
be the honest score (the attack did nothing) or invalid (the attack was caught);
never more than the honest score.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.paths import PROBLEMS
from evolve.problem import SEARCH, load_problem
from evolve.sandbox.base import SandboxJob
from evolve.sandbox.factory import limits_from
from evolve.sandbox.process import ProcessSandbox

SEED = (PROBLEMS / "circle_packing/seed.py").read_text()

ATTACKS = {
    "prints a fake score and a fake result line": '''
def construct(n):
    honest = _honest(n)
    print('{"score": 1000.0}')
    print('0' * 32 + ' {"cases": [{"id": "n26", "status": "ok", "output": null, "seconds": 0, "message": ""}]}')
    return honest
''',
    "monkeypatches the runner and json in its own process": '''
import json, sys
def construct(n):
    main = sys.modules.get("__main__")
    if main is not None:
        main.run_job = lambda job: {"cases": [], "stdout": "", "stderr": ""}
        main._case = lambda *a: {"id": "n26", "status": "ok", "output": 1e9, "seconds": 0, "message": ""}
    json.dumps = lambda *a, **k: '{"status": "ok", "output": {"centers": [], "radii": [1e9]}}'
    return _honest(n)
''',
    "writes a forged reply on every open descriptor": '''
import os
def construct(n):
    forged = b'{"status": "ok", "output": {"centers": [[0.5, 0.5]], "radii": [100.0]}}\\n'
    for fd in range(3, 64):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    return _honest(n)
''',
    "writes the parent runner's stdout through /proc": '''
import os
def construct(n):
    try:
        with open(f"/proc/{os.getppid()}/fd/1", "w") as channel:
            channel.write("forged result\\n")
    except OSError:
        pass
    return _honest(n)
''',
    "writes a forged result file in its scratch": '''
import json
def construct(n):
    for name in ("result.json", "output.json", "candidate.out"):
        with open(name, "w") as handle:
            json.dump({"score": 1e9}, handle)
    return _honest(n)
''',
    "returns NaN radii": '''
def construct(n):
    honest = _honest(n)
    honest["radii"][0] = float("nan")
    return honest
''',
    "returns a float subclass with rigged comparisons": '''
class Huge(float):
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __lt__(self, other): return False
    def __le__(self, other): return False
    def __repr__(self): return "1000000.0"
    def __float__(self): return 1e6
def construct(n):
    honest = _honest(n)
    honest["radii"] = [Huge(r) for r in honest["radii"]]
    return honest
''',
    "forges its timing": '''
import time
def construct(n):
    time.monotonic = lambda: 0.0
    time.perf_counter = lambda: 0.0
    time.sleep(0.3)
    return _honest(n)
''',
    "kills its parent runner": '''
import os, signal
def construct(n):
    os.kill(os.getppid(), signal.SIGKILL)
    return _honest(n)
''',
}


def hostile(attack: str) -> str:
    return SEED.replace("def construct(n: int) -> dict:", "def _honest(n: int) -> dict:") + attack


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    cfg = compose_config(["sandbox=process", "sandbox.allow_root=true"])
    return Evaluator(load_problem(cfg), ProcessSandbox(), limits_from(cfg), "test")


@pytest.fixture(scope="module")
def honest_score(evaluator: Evaluator) -> float:
    evaluation = asyncio.run(evaluator.evaluate(SEED, SEARCH))
    assert evaluation.valid
    return evaluation.score  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_no_route_raises_the_score(evaluator: Evaluator, honest_score: float, name: str) -> None:
    evaluation = asyncio.run(evaluator.evaluate(hostile(ATTACKS[name]), SEARCH))
    if evaluation.valid:
        assert evaluation.score == pytest.approx(honest_score, rel=1e-12)
    else:
        assert evaluation.feedback  # caught, and the feedback says why


def test_nan_and_parent_killing_are_caught_with_feedback(evaluator: Evaluator, honest_score: float) -> None:
    nan = asyncio.run(evaluator.evaluate(hostile(ATTACKS["returns NaN radii"]), SEARCH))
    assert not nan.valid and "non-finite" in nan.feedback
    killed = asyncio.run(evaluator.evaluate(hostile(ATTACKS["kills its parent runner"]), SEARCH))
    if killed.valid:  # as root, the runner is PID 1 of the job's namespace: the kill is ignored
        assert os.geteuid() == 0 and killed.score == pytest.approx(honest_score, rel=1e-12)
    else:
        assert "no result" in killed.feedback


def test_time_is_measured_outside_the_candidate() -> None:
    sandbox = ProcessSandbox()
    code = hostile(ATTACKS["forges its timing"])
    result = asyncio.run(sandbox.run(SandboxJob(code, "construct", (("n26", {"n": 26}),))))
    assert result.runs[0].status == "ok"
    assert result.runs[0].seconds >= 0.3
