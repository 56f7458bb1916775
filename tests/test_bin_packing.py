"""Bin packing verifier: valid, invalid and hostile packings; published baselines; the seed in a sandbox."""

from __future__ import annotations

import json

import pytest

from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.paths import PROBLEMS
from evolve.problem import HELDOUT, SEARCH, Case, Verdict, load_problem, load_verifier
from evolve.sandbox.base import CaseRun
from evolve.sandbox.factory import limits_from, make_sandbox


verifier = load_verifier(PROBLEMS / "bin_packing" / "verifier.py")
ITEMS = [60, 70, 80, 20, 90, 30]  # capacity 150, total 350: L1 bound 3


def judge(output, items=ITEMS, capacity=150, status="ok", private=None):
    case = Case("t", SEARCH, {"items": items, "capacity": capacity}, private or {"set": "toy"})
    return verifier.verify(case, CaseRun("t", status, output, 0.1), {})


def test_a_valid_packing_scores_its_excess_over_the_l1_bound():
    tight = judge([0, 1, 2, 1, 0, 2])  # 150, 90, 110
    assert tight.valid and tight.score == 0.0
    assert tight.metrics["bins"] == 3 and tight.metrics["l1_bound"] == 3
    loose = judge([0, 1, 2, 3, 4, 5])  # one bin per item
    assert loose.valid and loose.score == pytest.approx(100.0)
    assert "6 bins" in loose.feedback


def test_bin_labels_need_not_be_contiguous():
    assert judge([5, 1, 4, 1, 5, 4]).metrics["bins"] == 3


def test_a_bin_over_capacity_is_rejected_and_named():
    verdict = judge([0, 0, 1, 1, 2, 2])  # 60 + 70 = 130, 80 + 20 = 100, 90 + 30 = 120 fit ...
    assert verdict.valid
    verdict = judge([0, 0, 0, 1, 1, 1])  # ... but 60 + 70 + 80 = 210 does not
    assert not verdict.valid and "bin 0 holds 210 > capacity 150" in verdict.feedback


def test_exactly_full_bins_are_allowed():
    assert judge([0, 1], items=[75, 75], capacity=75).valid
    assert judge([0, 0], items=[75, 75], capacity=150).valid


@pytest.mark.parametrize(
    "output, reason",
    [
        ([0, 1, 2, 1, 0], "one bin per item"),  # an item left out
        ([0, 1, 2, 1, 0, 2, 0], "one bin per item"),  # an item packed twice
        ([], "one bin per item"),
        ({"0": 0}, "expected a list"),
        ("012102", "expected a list"),
        (None, "expected a list"),
        ([0, 1, 2, 1, 0, -1], "bins must be integers"),
        ([0, 1, 2, 1, 0, 6], "bins must be integers"),
        ([0, 1, 2, 1, 0, 10**40], "bins must be integers"),
        ([0, 1, 2, 1, 0, 2.0], "bins must be integers"),
        ([0, 1, 2, 1, 0, True], "bins must be integers"),
        ([0, 1, 2, 1, 0, "2"], "bins must be integers"),
        ([0, 1, 2, 1, 0, [2]], "bins must be integers"),
        ([0, 1, 2, 1, 0, None], "bins must be integers"),
        ([0, 1, 2, 1, 0, float("nan")], "bins must be integers"),
    ],
)
def test_malformed_or_hostile_packings_are_invalid_with_a_reason(output, reason):
    verdict = judge(output)
    assert not verdict.valid
    assert reason in verdict.feedback


@pytest.mark.parametrize("status", ["error", "timeout", "crashed", "oversize", "protocol"])
def test_a_failed_run_is_invalid(status):
    assert not judge(None, status=status).valid


def test_aggregate_averages_bins_per_set_before_comparing_with_the_bound():
    def verdict(set_name, bins, bound):
        return Verdict(True, 0.0, {"set": set_name, "bins": bins, "l1_bound": bound})

    # Set A: mean bins 11 over mean bound 10 -> 10 %; set B: 3 over 2 -> 50 %. Mean over sets: 30 %.
    verdicts = [verdict("A", 10, 10), verdict("A", 12, 10), verdict("B", 3, 2)]
    assert verifier.aggregate(verdicts, {}) == pytest.approx(30.0)


def first_fit(items, capacity):
    loads, assignment = [], []
    for item in items:
        spot = next((b for b, load in enumerate(loads) if load + item <= capacity), len(loads))
        if spot == len(loads):
            loads.append(0)
        loads[spot] += item
        assignment.append(spot)
    return assignment


def best_fit(items, capacity):
    loads, assignment = [], []
    for item in items:
        fits = [(capacity - load - item, b) for b, load in enumerate(loads) if load + item <= capacity]
        spot = min(fits)[1] if fits else len(loads)
        if spot == len(loads):
            loads.append(0)
        loads[spot] += item
        assignment.append(spot)
    return assignment


@pytest.mark.parametrize("heuristic, published", [(first_fit, 6.42), (best_fit, 5.81)])
def test_classic_heuristics_reproduce_the_published_or1_figures(heuristic, published):
    """The score is the one FunSearch's paper reports (first fit 6.42 %, best fit 5.81 % on OR1)."""
    cases = json.loads((PROBLEMS / "bin_packing" / "cases.json").read_text())[SEARCH]
    verdicts = []
    for item in (c for c in cases if c["private"]["set"] == "OR1"):
        case = Case(item["id"], SEARCH, item["inputs"], item["private"])
        output = heuristic(**item["inputs"])
        verdicts.append(verifier.verify(case, CaseRun(case.id, "ok", output, 0.0), {}))
    assert all(v.valid for v in verdicts) and len(verdicts) == 20
    assert round(verifier.aggregate(verdicts, {}), 2) == published


def test_cases_cover_the_or_library_and_weibull_sets():
    cases = json.loads((PROBLEMS / "bin_packing" / "cases.json").read_text())
    sets = {split: sorted({c["private"]["set"] for c in cases[split]}) for split in cases}
    assert sets == {SEARCH: ["OR1", "OR2"], HELDOUT: ["OR3", "OR4", "Weibull 5k"]}
    assert len(cases[SEARCH]) == 40 and len(cases[HELDOUT]) == 45


async def test_the_seed_packs_every_instance_validly_in_the_process_sandbox():
    cfg = compose_config(["problem=bin_packing", "sandbox=process", "sandbox.allow_root=true"])
    problem = load_problem(cfg)
    assert not problem.maximize
    sandbox = make_sandbox(cfg, "test")
    try:
        evaluation = await Evaluator(problem, sandbox, limits_from(cfg), "test-evaluator").evaluate(
            problem.seed_code, SEARCH
        )
    finally:
        await sandbox.close()
    assert evaluation.valid, evaluation.feedback
    assert len(evaluation.verdicts) == 40
    # The seed starts from best fit: at least as good as first fit's 6.44 % on OR1 + OR2.
    assert 0 < evaluation.score < 6.44
