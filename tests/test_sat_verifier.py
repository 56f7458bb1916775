"""The SAT verifier: every wrong or malformed answer is rejected with a reason; PAR-2 scoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from evolve.config import compose_config
from evolve.problem import Case, Problem, load_problem
from evolve.sandbox.base import CaseRun

LIMIT = 2.0


@pytest.fixture(scope="module")
def problem() -> Problem:
    return load_problem(compose_config(["problem=sat", f"problem.case_timeout={LIMIT}"]))


@pytest.fixture(scope="module")
def sat_case(problem: Problem) -> Case:
    return next(c for c in problem.cases if c.id == "uf50-01")


@pytest.fixture(scope="module")
def unsat_case(problem: Problem) -> Case:
    return next(c for c in problem.cases if c.id == "uuf50-01")


def judge(problem: Problem, case: Case, output: Any, status: str = "ok", seconds: float = 0.25, message: str = ""):
    """`seconds` of CPU time; the wall clock says three times as much, as on a loaded machine."""
    run = CaseRun(case.id, status, output, 3 * seconds, message, cpu_seconds=seconds)
    return problem.verify(case, run, problem.settings)


def falsifying(case: Case) -> tuple[list[int], int]:
    """The witness model with one variable flipped so that some clause becomes false."""
    witness = case.private["witness"]
    for index in range(len(witness)):
        model = list(witness)
        model[index] = -model[index]
        truth = set(model)
        for number, clause in enumerate(case.inputs["clauses"], start=1):
            if not any(literal in truth for literal in clause):
                return model, number
    raise AssertionError("no single flip falsifies a clause")


def test_settings_take_the_time_limit_from_the_problem(problem: Problem) -> None:
    assert problem.settings["time_limit"] == LIMIT and not problem.maximize


def test_a_correct_model_is_solved_and_scores_its_time(problem: Problem, sat_case: Case) -> None:
    verdict = judge(problem, sat_case, list(sat_case.private["witness"]), seconds=0.25)
    assert verdict.valid and verdict.score == 0.25 and verdict.metrics["solved"]  # CPU time, not wall time
    assert verdict.metrics["cpu_seconds"] == 0.25 and verdict.metrics["seconds"] == 0.75
    assert verdict.metrics["answer"] == "SAT"


def test_a_correct_model_in_any_order_is_accepted(problem: Problem, sat_case: Case) -> None:
    assert judge(problem, sat_case, list(reversed(sat_case.private["witness"]))).valid


def test_a_correct_unsat_claim_is_solved(problem: Problem, unsat_case: Case) -> None:
    verdict = judge(problem, unsat_case, "UNSAT", seconds=1.5)
    assert verdict.valid and verdict.score == 1.5 and verdict.metrics["answer"] == "UNSAT"


def test_a_wrong_assignment_is_rejected_naming_the_clause(problem: Problem, sat_case: Case) -> None:
    model, clause = falsifying(sat_case)
    verdict = judge(problem, sat_case, model)
    assert not verdict.valid
    assert f"clause {clause} " in verdict.feedback and "falsified" in verdict.feedback


def test_a_false_unsat_claim_is_rejected(problem: Problem, sat_case: Case) -> None:
    verdict = judge(problem, sat_case, "UNSAT")
    assert not verdict.valid and "the UNSAT claim is not correct" in verdict.feedback


def test_a_false_sat_claim_is_rejected(problem: Problem, unsat_case: Case) -> None:
    bare = judge(problem, unsat_case, "SAT")
    assert not bare.valid and "claimed SAT without a model" in bare.feedback
    model = judge(problem, unsat_case, list(range(1, 51)))
    assert not model.valid and "falsified" in model.feedback
    assert "satisfiable" not in model.feedback  # the feedback never gives the label away


def test_a_partial_assignment_is_rejected(problem: Problem, sat_case: Case) -> None:
    witness = sat_case.private["witness"]
    verdict = judge(problem, sat_case, witness[:47])
    assert not verdict.valid
    assert "partial assignment: 3 of 50 variables unassigned (48, 49, 50)" in verdict.feedback


@pytest.mark.parametrize(("literal", "reason"), [(51, "literal 51"), (-51, "literal -51"), (0, "literal 0")])
def test_out_of_range_literals_are_rejected(problem: Problem, sat_case: Case, literal: int, reason: str) -> None:
    model = list(sat_case.private["witness"]) + [literal]
    verdict = judge(problem, sat_case, model)
    assert not verdict.valid and reason in verdict.feedback and "outside ±1..50" in verdict.feedback


def test_a_variable_assigned_twice_or_both_ways_is_rejected(problem: Problem, sat_case: Case) -> None:
    witness = list(sat_case.private["witness"])
    twice = judge(problem, sat_case, witness + [witness[0]])
    both = judge(problem, sat_case, witness + [-witness[0]])
    assert not twice.valid and "variable 1 is assigned twice" in twice.feedback
    assert not both.valid and "variable 1 is assigned both signs" in both.feedback


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ({"status": "SAT"}, "malformed output of type dict"),
        ("yes", "malformed output 'yes'"),
        ("unsat", "malformed output 'unsat'"),
        (True, "malformed output of type bool"),
        (3.5, "malformed output of type float"),
        ([1.0] * 50, "entry 0 is float"),
        ([True] * 50, "entry 0 is bool"),
        ([[1, 2]], "entry 0 is list"),
        (["1"] * 50, "entry 0 is str"),
    ],
)
def test_malformed_output_is_rejected(problem: Problem, sat_case: Case, output: Any, reason: str) -> None:
    verdict = judge(problem, sat_case, output)
    assert not verdict.valid and reason in verdict.feedback


@pytest.mark.parametrize(
    ("status", "output", "message", "reason"),
    [
        ("timeout", None, "exceeded the 2 s time limit", "timed out after 2 s"),
        ("error", None, "Traceback ...\nRecursionError: too deep", "raised an exception: RecursionError: too deep"),
        ("crashed", None, "the candidate process died", "the process died"),
        ("ok", None, "", "returned None (no answer)"),
    ],
)
def test_unsolved_instances_are_valid_and_cost_twice_the_limit(
    problem: Problem, unsat_case: Case, status: str, output: Any, message: str, reason: str
) -> None:
    verdict = judge(problem, unsat_case, output, status=status, seconds=2.0, message=message)
    assert verdict.valid and verdict.score == 2 * LIMIT and not verdict.metrics["solved"]
    assert verdict.feedback.startswith("unsolved") and reason in verdict.feedback


@pytest.mark.parametrize("status", ["protocol", "oversize", "sandbox"])
def test_tampering_and_sandbox_failures_are_invalid(problem: Problem, sat_case: Case, status: str) -> None:
    verdict = judge(problem, sat_case, None, status=status, message="details")
    assert not verdict.valid and status in verdict.feedback


def test_a_formula_that_no_longer_matches_its_label_is_a_problem_fault(problem: Problem, sat_case: Case) -> None:
    clauses = [list(c) for c in sat_case.inputs["clauses"]]
    clauses[0][0] = -clauses[0][0]
    tampered = dataclasses.replace(sat_case, inputs={"num_vars": 50, "clauses": clauses})
    with pytest.raises(RuntimeError, match="does not match the hash"):
        judge(problem, tampered, "UNSAT")


def test_a_model_for_an_unsat_labelled_formula_exposes_a_wrong_label(problem: Problem, sat_case: Case) -> None:
    mislabelled = dataclasses.replace(sat_case, private={**sat_case.private, "label": "UNSAT"})
    with pytest.raises(RuntimeError, match="labelled UNSAT but a model satisfies every clause"):
        judge(problem, mislabelled, list(sat_case.private["witness"]))


def test_par2_is_the_mean_over_instances(problem: Problem, sat_case: Case, unsat_case: Case) -> None:
    verdicts = [
        judge(problem, sat_case, list(sat_case.private["witness"]), seconds=0.5),
        judge(problem, unsat_case, "UNSAT", seconds=1.0),
        judge(problem, unsat_case, None, status="timeout", seconds=2.0),
    ]
    assert problem.aggregate is not None
    assert problem.aggregate(verdicts, problem.settings) == pytest.approx((0.5 + 1.0 + 4.0) / 3)
