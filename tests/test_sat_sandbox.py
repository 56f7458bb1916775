"""SAT candidates run for real: process sandbox, runner, verifier, PAR-2 aggregate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve.config import compose_config
from evolve.evaluation import Evaluation, Evaluator
from evolve.paths import PROBLEMS
from evolve.problem import Problem, load_problem
from evolve.sandbox.base import SandboxLimits
from evolve.sandbox.process import ProcessSandbox

LIMIT = 2.0  # seconds per instance; the seed needs well under 0.3 s for each chosen one
CHOSEN = ["uf50-01", "php6-s221", "uuf50-01"]  # php6 has 42 variables: the one the looping candidate hangs on
SEED = (PROBLEMS / "sat" / "seed.py").read_text()


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> Problem:
    cases = json.loads((PROBLEMS / "sat" / "cases.json").read_text())
    everything = {c["id"]: c for split in cases.values() for c in split}
    path: Path = tmp_path_factory.mktemp("sat") / "cases.json"
    path.write_text(json.dumps({"search": [everything[i] for i in CHOSEN]}))
    return load_problem(compose_config(["problem=sat", f"problem.cases={path}", f"problem.case_timeout={LIMIT}"]))


async def evaluate(problem: Problem, code: str) -> Evaluation:
    evaluator = Evaluator(problem, ProcessSandbox(), SandboxLimits(case_timeout=problem.case_timeout), "test")
    return await evaluator.evaluate(code, "search")


async def test_seed_solves_every_instance_and_scores_par2(problem: Problem) -> None:
    evaluation = await evaluate(problem, SEED)
    assert evaluation.valid
    assert all(v.metrics["solved"] for v in evaluation.verdicts.values())
    seconds = [v.metrics["cpu_seconds"] for v in evaluation.verdicts.values()]  # PAR-2 on CPU time
    assert evaluation.score == pytest.approx(sum(seconds) / 3)
    assert evaluation.verdicts["uuf50-01"].metrics["answer"] == "UNSAT"


@pytest.mark.slow
async def test_a_candidate_looping_on_one_instance_loses_only_that_instance(problem: Problem) -> None:
    looping = SEED + (
        "\n\n_solve = solve\n\n\ndef solve(num_vars, clauses):\n"
        "    while num_vars == 42:\n        pass\n    return _solve(num_vars, clauses)\n"
    )
    evaluation = await evaluate(problem, looping)
    assert evaluation.valid
    hung = evaluation.verdicts["php6-s221"]
    assert hung.valid and not hung.metrics["solved"] and hung.score == 2 * LIMIT
    assert "[php6-s221] unsolved: timed out after 2 s" in evaluation.feedback
    # The runner restarted the candidate: the instance after the hang is still solved.
    for case_id in ("uf50-01", "uuf50-01"):
        assert evaluation.verdicts[case_id].metrics["solved"]
        assert evaluation.verdicts[case_id].score < LIMIT
    assert evaluation.score >= 2 * LIMIT / 3


async def test_one_wrong_answer_disqualifies_the_candidate_and_names_the_instance(problem: Problem) -> None:
    lazy = SEED + '\n\ndef solve(num_vars, clauses):\n    return "UNSAT"\n'
    evaluation = await evaluate(problem, lazy)
    assert not evaluation.valid and evaluation.score is None
    assert "[uf50-01] WRONG: the UNSAT claim is not correct" in evaluation.feedback
    assert evaluation.verdicts["uuf50-01"].valid  # the right claims are still judged right


async def test_a_candidate_that_fails_to_load_is_valid_but_unsolved_everywhere(problem: Problem) -> None:
    evaluation = await evaluate(problem, "raise ImportError('no such module')\n")
    assert evaluation.valid and evaluation.score == 2 * LIMIT
    for case_id in CHOSEN:
        assert f"[{case_id}] unsolved: raised an exception: ImportError: no such module" in evaluation.feedback
