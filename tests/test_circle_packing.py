"""The circle packing verifier: exact checks, with a reason for every rejection."""

import math
from typing import Any

import pytest

from evolve.paths import PROBLEMS
from evolve.problem import Case, load_verifier
from evolve.sandbox.base import CaseRun

verifier = load_verifier(PROBLEMS / "circle_packing" / "verifier.py")
SETTINGS = {"tolerance": 1e-9}


def judge(output: Any, n: int = 2, status: str = "ok"):
    return verifier.verify(Case("c", "search", {"n": n}), CaseRun("c", status, output, 0.1), SETTINGS)


def test_a_valid_packing_scores_its_sum_of_radii() -> None:
    verdict = judge({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [0.25, 0.25]})
    assert verdict.valid and verdict.score == pytest.approx(0.5)


def test_tangent_circles_within_tolerance_are_accepted() -> None:
    r = 0.25 + 5e-10  # overlaps by 1e-9: exactly the stated tolerance
    assert judge({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [r, 0.25 - 5e-10]}).valid


@pytest.mark.parametrize("output, reason", [
    ({"centers": [[0.3, 0.5], [0.7, 0.5]], "radii": [0.25, 0.2]}, "overlap"),
    ({"centers": [[0.1, 0.5], [0.75, 0.5]], "radii": [0.2, 0.1]}, "leaves the square"),
    ({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [-0.1, 0.1]}, "negative"),
    ({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [math.nan, 0.1]}, "non-finite"),
    ({"centers": [[0.25, math.inf], [0.75, 0.5]], "radii": [0.1, 0.1]}, "non-finite"),
    ({"centers": [[0.25, 0.5]], "radii": [0.1, 0.1]}, "shape"),
    ({"centers": [[0.25, 0.5, 0.1], [0.75, 0.5, 0.1]], "radii": [0.1, 0.1]}, "shape"),
    ({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [0.1, 0.1, 0.1]}, "shape"),
    ({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [True, 0.1]}, "bool"),
    ({"centers": [[0.25, "0.5"], [0.75, 0.5]], "radii": [0.1, 0.1]}, "str"),
    ({"centers": [[0.25, 0.5], [0.75, 0.5]], "radii": [0.1, 0.1], "score": 99}, "expected"),
    ([[0.25, 0.5]], "expected"),
    (None, "expected"),
])
def test_malformed_or_invalid_answers_are_rejected_with_a_reason(output: Any, reason: str) -> None:
    verdict = judge(output)
    assert not verdict.valid
    assert reason in verdict.feedback


def test_a_failed_run_is_invalid_and_says_why() -> None:
    verdict = verifier.verify(Case("c", "search", {"n": 2}), CaseRun("c", "timeout", None, 10, "too slow"), SETTINGS)
    assert not verdict.valid and "timeout" in verdict.feedback and "too slow" in verdict.feedback


def test_the_seed_program_is_valid_for_both_splits() -> None:
    namespace: dict[str, Any] = {}
    exec(compile((PROBLEMS / "circle_packing" / "seed.py").read_text(), "seed", "exec"), namespace)
    for n in (26, 32):
        verdict = judge(namespace["construct"](n), n=n)
        assert verdict.valid, verdict.feedback
        assert verdict.score > 1.0
