"""Cap set verifier: valid, invalid and hostile answers; the seed runs in a real sandbox."""

from __future__ import annotations

import itertools
import random

import pytest

from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.problem import HELDOUT, SEARCH, Case, load_problem, load_verifier
from evolve.sandbox.base import CaseRun
from evolve.sandbox.factory import limits_from, make_sandbox
from evolve.paths import PROBLEMS


verifier = load_verifier(PROBLEMS / "cap_set" / "verifier.py")


def judge(output, n=4, status="ok"):
    case = Case("t", SEARCH, {"n": n}, {"best_known": 20})
    return verifier.verify(case, CaseRun("t", status, output, 0.1), {})


def binary_cube(n):
    """{0, 1}^n is a cap set: x + y + z = 0 mod 3 over {0, 1} forces x = y = z."""
    return [list(v) for v in itertools.product((0, 1), repeat=n)]


def is_cap_brute_force(vectors):
    chosen = set(map(tuple, vectors))
    for x, y, z in itertools.combinations(chosen, 3):
        if all((a + b + c) % 3 == 0 for a, b, c in zip(x, y, z)):
            return False
    return True


def test_a_valid_cap_set_scores_its_size():
    verdict = judge(binary_cube(4))
    assert verdict.valid and verdict.score == 16
    assert verdict.metrics["size"] == 16 and verdict.metrics["best_known"] == 20
    assert "16" in verdict.feedback


def test_the_empty_set_and_tiny_sets_are_valid():
    assert judge([]).valid and judge([]).score == 0
    assert judge([[0, 1, 2, 0], [2, 2, 2, 2]]).score == 2


def test_a_line_is_rejected_and_named():
    # (0,0,0,0) + (1,1,1,1) + (2,2,2,2) = 0 mod 3.
    cap = binary_cube(4) + [[2, 2, 2, 2]]
    verdict = judge(cap)
    assert not verdict.valid
    assert "line" in verdict.feedback and "[2, 2, 2, 2]" in verdict.feedback


def test_the_pair_check_agrees_with_brute_force_on_random_sets():
    rng = random.Random(7)
    points = [list(v) for v in itertools.product((0, 1, 2), repeat=3)]
    for _ in range(200):
        sample = rng.sample(points, rng.randint(0, 12))
        assert judge(sample, n=3).valid == is_cap_brute_force(sample)


# A maximum cap of F_3^4 (20 points, the largest possible there).
CAP_20 = ["0010", "0012", "0021", "0022", "0100", "0101", "0200", "0201", "1001", "1022",
          "1111", "1112", "1201", "1222", "2000", "2012", "2100", "2112", "2220", "2222"]


def test_a_maximum_cap_is_accepted_and_one_more_point_breaks_it():
    cap = [[int(d) for d in word] for word in CAP_20]
    assert is_cap_brute_force(cap)
    verdict = judge(cap)
    assert verdict.valid and verdict.score == 20
    for extra in itertools.product((0, 1, 2), repeat=4):
        if list(extra) not in cap:
            assert not judge(cap + [list(extra)]).valid


@pytest.mark.parametrize(
    "output, reason",
    [
        ({"cap": []}, "list of vectors"),
        ("0000", "list of vectors"),
        (None, "list of vectors"),
        ([[0, 1, 2]], "list of 4 digits"),
        ([[0, 1, 2, 0, 1]], "list of 4 digits"),
        ([(0, 1)], "list of 4 digits"),
        ([[0, 1, 2, 3]], "digits must be"),
        ([[0, 1, 2, -1]], "digits must be"),
        ([[0, 1, 2, 1.0]], "digits must be"),
        ([[0, 1, 2, True]], "digits must be"),
        ([[0, 1, 2, "1"]], "digits must be"),
        ([[0, 1, 2, None]], "digits must be"),
        ([[0, 1, 2, [1]]], "digits must be"),
        ([[0, 1, 2, 10**30]], "digits must be"),
        ([[0, 1, 2, 0], [1, 1, 1, 1], [0, 1, 2, 0]], "more than once"),
        ([[0, 0, 0, 0]] * 82, "has only 81"),
    ],
)
def test_malformed_or_hostile_answers_are_invalid_with_a_reason(output, reason):
    verdict = judge(output)
    assert not verdict.valid
    assert reason in verdict.feedback


def test_a_whole_space_answer_is_rejected_quickly():
    everything = [list(v) for v in itertools.product((0, 1, 2), repeat=8)]
    verdict = judge(everything, n=8)
    assert not verdict.valid and "line" in verdict.feedback


@pytest.mark.parametrize("status", ["error", "timeout", "crashed", "oversize", "sandbox"])
def test_a_failed_run_is_invalid(status):
    verdict = verifier.verify(Case("t", SEARCH, {"n": 4}), CaseRun("t", status, None, 1.0, "boom"), {})
    assert not verdict.valid and status in verdict.feedback


async def test_the_seed_builds_a_verified_cap_set_in_the_process_sandbox():
    cfg = compose_config(["problem=cap_set", "sandbox=process", "sandbox.allow_root=true"])
    problem = load_problem(cfg)
    sandbox = make_sandbox(cfg, "test")
    try:
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "test-evaluator")
        search = await evaluator.evaluate(problem.seed_code, SEARCH)
        heldout = await evaluator.evaluate(problem.seed_code, HELDOUT)
    finally:
        await sandbox.close()
    assert search.valid, search.feedback
    # The seed's weights are untuned: it does no better than {0, 1}^8, leaving room to evolve.
    assert search.score == 256
    assert heldout.valid and set(heldout.verdicts) == {"n6", "n7", "n9"}
    assert all(v.metrics["size"] >= 2 ** v.metrics["n"] for v in heldout.verdicts.values())
