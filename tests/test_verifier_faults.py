"""Verifier faults vs candidate faults: who pays when verification goes wrong.

A value the candidate chose that makes the verifier raise a data error, or run past
`verification.verifier_timeout`, makes that candidate invalid with the reason; the
search goes on and honest candidates keep their scores. A verifier that is itself
broken still stops the run, naming the verifier. Everything runs for real: the
process sandbox, verifier worker processes, SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

import evolve
from evolve.config import compose_config
from evolve.edits import Rewrite
from evolve.engine import SearchStalled
from evolve.evaluation import Evaluator
from evolve.problem import load_problem
from evolve.proposers.base import Proposal, ProposalRequest
from evolve.sandbox.base import SandboxLimits
from evolve.sandbox.factory import limits_from
from evolve.sandbox.process import ProcessSandbox
from tests.conftest import query, wait_for

# The candidate's value decides what this verifier does: an exact number is its score; "loop" keeps
# the verifier busy forever (it writes its pid first, so the test can check it was stopped);
# "broken" hits a bug of the verifier's own (an undefined name).
VERIFIER = '''
import os
from fractions import Fraction

from evolve.problem import Verdict


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}")
    value = run.output["value"]
    if value == "loop":
        with open(os.environ["VERIFIER_PID_FILE"], "w") as handle:
            handle.write(str(os.getpid()))
        while True:
            pass
    if value == "broken":
        return Verdict(True, undefined_helper(value))
    return Verdict(True, float(Fraction(value)))
'''

def program(value: object, tag: int) -> str:
    """A candidate returning `value`; `tag` keeps programs with the same value distinct."""
    return (f"# EVOLVE-BLOCK-START\ndef main(x, **_):\n    tag = {tag}\n    return {{'value': {value!r}}}\n"
            "# EVOLVE-BLOCK-END\n")


SEED = program(1, 0)


class Candidates:
    """Proposes the given programs in order, then the last one again with new tags."""

    def __init__(self, values: list[object]) -> None:
        self.values = values
        self.count = 0

    async def propose(self, request: ProposalRequest) -> Proposal:
        value = self.values[min(self.count, len(self.values) - 1)]
        self.count += 1
        return Proposal(Rewrite(program(value, self.count)), "scripted")

    async def close(self) -> None: ...
    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None: ...
    def state(self) -> dict:
        return {"count": self.count}
    def restore(self, state: dict) -> None: ...


@pytest.fixture
def problem_yaml(tmp_path: Path) -> Path:
    folder = tmp_path / "problem"
    folder.mkdir()
    (folder / "verifier.py").write_text(VERIFIER)
    (folder / "seed.py").write_text(SEED)
    (folder / "prompt.md").write_text("Return a large exact value.\n")
    (folder / "cases.json").write_text(json.dumps({"search": [{"id": "c1", "inputs": {"x": 1}}]}))
    (folder / "problem.yaml").write_text("\n".join([
        "name: judged", "description: a value judged by the verifier", f"seed_program: {folder / 'seed.py'}",
        f"prompt: {folder / 'prompt.md'}", f"cases: {folder / 'cases.json'}", f"verifier: {folder / 'verifier.py'}",
        "entry: main", "objective: maximize", "case_timeout: 5.0", "settings: {}", ""]))
    return folder / "problem.yaml"


def overrides(problem_yaml: Path, run_dir: Path, evaluations: int, *extra: str) -> list[str]:
    return [f"problem={problem_yaml}", f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true",
            "run.progress=false", f"budget.evaluations={evaluations}", "search.proposers=1",
            "search.evaluators=1", "verification.recheck_champion=false", *extra]


def stored(run_dir: Path) -> list[tuple[str, int, float | None, str]]:
    """(code, valid, score, feedback) of every candidate's search evaluation, in the order stored."""
    return query(run_dir, "SELECT p.code, e.valid, e.score, e.feedback FROM programs p JOIN evaluations e "
                          "ON e.program_id = p.id WHERE e.split = 'search' AND p.parent_id IS NOT NULL ORDER BY p.id")


@pytest.mark.slow
def test_a_verifier_stuck_on_one_output_is_stopped_and_only_that_candidate_fails(
        problem_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "verifier.pid"
    monkeypatch.setenv("VERIFIER_PID_FILE", str(pid_file))  # read by the verifier (in its worker process)
    # A stuck verifier, then more data errors in a row than the verifier-fault limit, then an honest value.
    values = ["loop", "1e400", "1/0", ["x"], "x", "1e999", "2"]
    result = evolve.run(overrides(problem_yaml, tmp_path / "run", len(values), "verification.verifier_timeout=2"),
                        proposer=Candidates(values))
    assert result.status == "finished" and result.evaluations == len(values)
    rows = stored(result.run_dir)
    assert [row[1] for row in rows] == [0, 0, 0, 0, 0, 0, 1]
    assert "the verifier ran past its 2 s limit on this output and was stopped" in rows[0][3]
    reasons = [row[3] for row in rows[1:6]]
    assert "the verifier rejected this output: OverflowError" in reasons[0]
    assert "the verifier rejected this output: ZeroDivisionError" in reasons[1]
    assert "the verifier rejected this output: TypeError" in reasons[2]
    assert "the verifier rejected this output: ValueError" in reasons[3]
    assert "the verifier rejected this output: OverflowError" in reasons[4]
    # The honest candidate after them is scored as usual and is the best; no verifier fault was counted.
    assert rows[6][2] == 2.0 and result.best_score == 2.0 and result.seed_score == 1.0
    assert query(result.run_dir, "SELECT COUNT(*) FROM events WHERE kind='verifier_error'") == [(0,)]
    # The stuck verifier's process was killed, not left spinning.
    verifier_pid = int(pid_file.read_text())
    assert not _alive(verifier_pid)


@pytest.mark.slow
def test_repeated_real_verifier_faults_still_stop_the_run_naming_the_verifier(problem_yaml: Path,
                                                                             tmp_path: Path) -> None:
    with pytest.raises(SearchStalled, match="verifier verifier.py raised NameError on case 'c1'"):
        evolve.run(overrides(problem_yaml, tmp_path / "run", 20), proposer=Candidates(["broken"]))
    run_dir = tmp_path / "run"
    assert query(run_dir, "SELECT status FROM runs") == [("failed",)]
    assert query(run_dir, "SELECT COUNT(*) FROM events WHERE kind='verifier_error'") == [(5,)]
    rows = stored(run_dir)
    assert len(rows) == 5 and all(row[1] == 0 for row in rows)
    assert all(row[3] == "the verifier could not score this program" for row in rows)


def test_a_seed_the_verifier_cannot_judge_stops_the_run_naming_the_verifier(problem_yaml: Path,
                                                                           tmp_path: Path) -> None:
    # A data error on the problem's own seed is the verifier's problem, not a candidate's.
    (problem_yaml.parent / "seed.py").write_text(program("1e400", 0))
    with pytest.raises(SearchStalled, match="verifier verifier.py raised OverflowError on case 'c1'.*seed"):
        evolve.run(overrides(problem_yaml, tmp_path / "run", 3), proposer=Candidates(["2"]))


@pytest.mark.slow
def test_a_stopped_run_kills_a_verifier_that_is_still_working(problem_yaml: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "verifier.pid"
    monkeypatch.setenv("VERIFIER_PID_FILE", str(pid_file))
    cfg = compose_config([f"problem={problem_yaml}"])
    evaluator = Evaluator(load_problem(cfg), ProcessSandbox(), limits_from(cfg), "test", verifier_timeout=600)

    async def stop_while_verifying() -> None:
        task = asyncio.create_task(evaluator.evaluate(program("loop", 1), "search"))
        while not (pid_file.exists() and pid_file.read_text()):
            await asyncio.sleep(0.05)
        task.cancel()  # what Ctrl-C or `stop` does to an evaluation in flight
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_while_verifying())
    verifier_pid = int(pid_file.read_text())
    assert wait_for(lambda: not _alive(verifier_pid), 10, "the verifier's process was killed")
    # The next evaluation gets a fresh worker and is scored as usual.
    honest = asyncio.run(evaluator.evaluate(program("5/2", 2), "search"))
    evaluator.close()
    assert honest.valid and honest.score == 2.5


# ---------------------------------------------------------------- the bundled verifiers, given hostile values

def evaluator_for(problem_name: str, limits: SandboxLimits | None = None) -> Evaluator:
    cfg = compose_config([f"problem={problem_name}"])
    return Evaluator(load_problem(cfg), ProcessSandbox(), limits or limits_from(cfg), "test")


@pytest.mark.slow
def test_a_huge_circle_packing_radius_is_the_candidates_failure(tmp_path: Path) -> None:
    seed = evaluator_for("circle_packing").problem.seed_code
    huge = "def construct(n, **_):\n    return {'centers': [[0.5, 0.5]] * n, 'radii': [10 ** 400] * n}\n"

    async def scores(evaluator: Evaluator) -> list:
        try:
            return [await evaluator.evaluate(code, "search") for code in (seed, huge, seed)]
        finally:
            evaluator.close()

    # With the sandbox's own number bounds lifted, the verifier itself meets the 400-digit integer.
    lifted = evaluator_for("circle_packing", SandboxLimits(case_timeout=10.0, max_int_digits=1000))
    honest, hostile, again = asyncio.run(scores(lifted))
    assert honest.valid and again.valid and again.score == honest.score
    assert not hostile.valid and hostile.score is None
    assert "the verifier rejected this output: OverflowError" in hostile.feedback
    assert "raised OverflowError" in hostile.rejected
    # With the default bounds the sandbox refuses it before any verifier sees it.
    honest, hostile, again = asyncio.run(scores(evaluator_for("circle_packing")))
    assert honest.valid and again.score == honest.score
    assert not hostile.valid and "integer of 401 digits" in hostile.feedback


@pytest.mark.slow
def test_an_absurd_nash_constant_is_refused_at_once_and_honest_scores_stay(tmp_path: Path) -> None:
    evaluator = evaluator_for("nash_guarantee")
    seed = evaluator.problem.seed_code
    hostile = seed.replace('"rhs": ["f2", "xs", "ys"]', '"rhs": "1e9999999"')
    assert hostile != seed

    async def scores() -> list:
        try:
            return [await evaluator.evaluate(code, "search") for code in (seed, hostile, seed)]
        finally:
            evaluator.close()

    honest, refused, again = asyncio.run(scores())
    assert honest.valid and again.valid and again.score == honest.score
    assert not refused.valid and "exponent beyond" in refused.feedback and not refused.rejected


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"
