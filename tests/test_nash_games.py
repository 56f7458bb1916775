"""Executing Nash algorithms on real games: measured epsilon, the blocks, and the search for bad games."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from evaluators.nash.games import (NotExecutable, execute, executable, measure, output_epsilon, regrets,
                                   worst_games, zero_sum_ne)

TOLERANCE = 1e-7  # the tolerance the held-out check compares measured and certified epsilon with


def step(block: str, args: tuple[str, ...] = (), out: tuple[str, ...] = (),
         payoff: dict[str, int] | None = None) -> dict[str, Any]:
    return {"block": block, "args": list(args), "out": list(out), "payoff": payoff}


def term(fn: str, x: str, y: str) -> dict[str, str]:
    return {"fn": fn, "x": x, "y": y}


DMP = {"steps": [step("Random1", out=("x",)), step("BestResponse2", ("x",), ("y",)),
                 step("BestResponse1", ("y",), ("x2",))], "branch": None, "hints": {}}
KPS = {"steps": [step("MaxPayoff", out=("x1", "y1"), payoff={"U1": 1, "U2": 0}),
                 step("MaxPayoff", out=("x2", "y2"), payoff={"U1": 0, "U2": 1}),
                 step("EqMix1", ("x1", "x2"), ("x",)), step("EqMix2", ("y1", "y2"), ("y",))],
       "branch": None, "hints": {}}
BBM = {"steps": [step("ZeroSumNE", out=("xs", "ys"), payoff={"U1": 1, "U2": -1})],
       "branch": {"cond": {"lhs": term("f1", "xs", "ys"), "op": ">=", "rhs": term("f2", "xs", "ys")},
                  "then": [step("BestResponse1", ("ys",), ("r",)), step("BestResponse2", ("r",), ("b",))],
                  "else": [step("BestResponse2", ("xs",), ("r",)), step("BestResponse1", ("r",), ("b",))]},
       "hints": {}}
LITERATURE = {"DMP": 0.5, "KPS": 0.75, "BBM": (3 - math.sqrt(5)) / 2}
BASELINES = {"DMP": DMP, "KPS": KPS, "BBM": BBM}
BUDGET = {"random_games": 50, "climbs": 3, "steps": 250}  # what the default gives an LP algorithm


def pure(size: int, index: int) -> np.ndarray:
    return np.eye(size)[index]


def test_dmp_from_a_pure_equilibrium_row_measures_zero() -> None:
    rng = np.random.default_rng(5)
    R, C = rng.random((4, 4)) * 0.9, rng.random((4, 4)) * 0.9
    R[2, 1], C[2, 1] = 1.0, 1.0  # (row 2, column 1) is a strict pure equilibrium
    assert measure(DMP, R, C, {"x": pure(4, 2)}) == 0.0
    others = [measure(DMP, R, C, {"x": pure(4, i)}) for i in (0, 1, 3)]
    assert max(others) > 0.0  # a random game has no reason to be solved from every row


def test_line_minimisation_on_a_hand_checked_2x2_game() -> None:
    # From row 0, player 2 is indifferent and takes column 0 (lowest index); player 1 answers row 1.
    # On the line (row 0, col 0)-(row 1, col 0): f1 = 0.7 (1 - t), f2 = t, so the best point is
    # t = 0.7 / 1.7 with epsilon 7/17, between grid points of any decimal grid.
    R = np.array([[0.0, 0.0], [0.7, 0.0]])
    C = np.array([[1.0, 1.0], [0.0, 1.0]])
    run = execute(DMP, R, C, {"x": [1.0, 0.0]})
    assert run.p2["y"].tolist() == [1.0, 0.0] and run.p1["x2"].tolist() == [0.0, 1.0]
    assert measure(DMP, R, C, {"x": [1.0, 0.0]}) == pytest.approx(7 / 17, abs=1e-12)
    # The worst case of DMP: f1 = 1 at the start, f2 = 1 after the best response, 1/2 in the middle.
    R[1, 0] = 1.0
    assert measure(DMP, R, C, {"x": [1.0, 0.0]}) == pytest.approx(0.5, abs=1e-12)


def grid_minimum(R: np.ndarray, C: np.ndarray, x_a: np.ndarray, x_b: np.ndarray, y: np.ndarray,
                 grid: np.ndarray) -> float:
    """min over the grid of max(f1, f2) at ((1 - t) x_a + t x_b, y), straight from the definition."""
    mixtures = (1 - grid)[:, None] * x_a + grid[:, None] * x_b
    f1 = (R @ y).max() - mixtures @ R @ y
    f2 = (mixtures @ C).max(axis=1) - mixtures @ C @ y
    return float(np.maximum(f1, f2).min())


def test_exact_line_minimum_agrees_with_a_dense_grid_of_mixtures() -> None:
    rng = np.random.default_rng(11)
    grid = np.linspace(0.0, 1.0, 4001)
    for _ in range(60):
        m, n = (int(k) for k in rng.integers(2, 6, 2))
        R, C = rng.random((m, n)), rng.random((m, n))
        X = [rng.dirichlet(np.ones(m) * 0.5) for _ in range(int(rng.integers(1, 4)))]
        Y = [rng.dirichlet(np.ones(n) * 0.5) for _ in range(int(rng.integers(1, 4)))]
        exact = output_epsilon(R, C, X, Y)
        brute = min([grid_minimum(R, C, xa, xb, y, grid) for xa in X for xb in X for y in Y]
                    + [grid_minimum(C.T, R.T, ya, yb, x, grid) for ya in Y for yb in Y for x in X])
        assert exact <= brute + 1e-12  # the exact minimum is never above a sampled point
        assert brute - exact <= 2 * (grid[1] - grid[0])  # regrets move at most 2 per unit of t


@pytest.mark.parametrize("kind", ["uniform", "binary"])
def test_zero_sum_ne_satisfies_the_saddle_inequalities(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(60):
        size = int(rng.integers(2, 6))
        R, C = (rng.random((2, size, size)) if kind == "uniform" else rng.integers(0, 2, (2, size, size)) * 1.0)
        a, b = 0, 0
        while a == 0 and b == 0:
            a, b = (int(k) for k in rng.integers(-2, 3, 2))
        M = a * R + b * C
        x, y = zero_sum_ne(M)
        for strategy in (x, y):
            assert strategy.min() >= 0.0 and abs(strategy.sum() - 1.0) < 1e-12
        value = x @ M @ y
        assert (M @ y).max() <= value + 1e-9  # no row does better against y*
        assert (x @ M).min() >= value - 1e-9  # no column does better against x*


def test_bbm_runs_the_arm_its_condition_selects() -> None:
    rng = np.random.default_rng(8)
    seen = set()
    for _ in range(40):
        R, C = rng.random((2, 3, 3))
        run = execute(BBM, R, C, {})
        f1, f2 = regrets(R, C, run.p1["xs"], run.p2["ys"])
        assert run.arm == ("then" if f1 >= f2 else "else")
        if run.arm == "then":
            assert (R @ run.p2["ys"]) @ run.p1["r"] == (R @ run.p2["ys"]).max()
            assert run.p1["r"] @ C @ run.p2["b"] == (run.p1["r"] @ C).max()
        else:
            assert run.p1["xs"] @ C @ run.p2["r"] == (run.p1["xs"] @ C).max()
            assert (R @ run.p2["r"]) @ run.p1["b"] == (R @ run.p2["r"]).max()
        assert set(run.p1) == {"xs", "r" if run.arm == "then" else "b"}
        seen.add(run.arm)
    assert seen == {"then", "else"}


def test_a_branch_on_an_exact_constant() -> None:
    algorithm = {"steps": [step("Random1", out=("x",)), step("Random2", out=("y",))],
                 "branch": {"cond": {"lhs": term("U1", "x", "y"), "op": ">=", "rhs": {"const": "1/3"}},
                            "then": [step("BestResponse1", ("y",), ("z",))],
                            "else": [step("BestResponse2", ("x",), ("z",))]}, "hints": {}}
    R = np.array([[1 / 3, 0.0], [0.0, 1.0]])
    C = np.zeros((2, 2))
    x, y = [1.0, 0.0], [1.0, 0.0]
    assert execute(algorithm, R, C, {"x": x, "y": y}).arm == "then"  # U1 = 1/3 exactly
    R[0, 0] = 0.3
    run = execute(algorithm, R, C, {"x": x, "y": y})
    assert run.arm == "else" and set(run.p2) == {"y", "z"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["DMP", "KPS", "BBM"])
def test_measured_epsilon_never_exceeds_the_literature_bound(name: str) -> None:
    seeds = (0, 1) if name == "BBM" else (0, 1, 2)
    for seed in seeds:
        report = worst_games(BASELINES[name], seed=seed, **BUDGET)
        assert 0.0 < report["worst_eps"] <= LITERATURE[name] + TOLERANCE
        worst = report["worst"]
        # The reported game reproduces the reported epsilon.
        assert measure(BASELINES[name], worst["R"], worst["C"], worst["random_strategies"]) \
            == pytest.approx(report["worst_eps"], abs=1e-12)
        assert report["games"] > 500


def test_hill_climbing_finds_dmp_games_near_one_half() -> None:
    only_random = worst_games(DMP, seed=4, kinds=("uniform",), **{**BUDGET, "climbs": 0})
    climbed = worst_games(DMP, seed=4, kinds=("uniform",), **BUDGET)
    assert only_random["worst_eps"] < 0.45
    assert 0.45 < climbed["worst_eps"] <= 0.5 + TOLERANCE
    assert "hill-climbed" in climbed["worst"]["source"]


def test_worst_games_is_deterministic_for_a_seed() -> None:
    first, second = worst_games(BBM, seed=7, random_games=20, steps=40), worst_games(BBM, seed=7, random_games=20,
                                                                                      steps=40)
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    assert set(first["arms"]) <= {"then", "else"} and sum(first["arms"].values()) == first["games"]


def test_stationary_point_is_not_executable() -> None:
    ts = {"steps": [step("StationaryPoint", out=("xs", "ys", "w", "z"))], "branch": None, "hints": {}}
    assert "StationaryPoint" in executable(ts)
    assert executable(DMP) is None and executable(BBM) is None
    report = worst_games(ts, seed=0)
    assert report["worst_eps"] is None and "StationaryPoint" in report["reason"]
    with pytest.raises(NotExecutable, match="StationaryPoint"):
        measure(ts, np.eye(3), np.eye(3), {})


def test_bad_games_and_strategies_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        measure(DMP, [[2.0, 0.0], [0.0, 1.0]], np.eye(2), {"x": [1.0, 0.0]})
    with pytest.raises(ValueError, match="one shape"):
        measure(DMP, np.eye(2), np.eye(3), {"x": [1.0, 0.0]})
    with pytest.raises(ValueError, match="no random strategy for 'x'"):
        measure(DMP, np.eye(2), np.eye(2), {})
    with pytest.raises(ValueError, match="distribution"):
        measure(DMP, np.eye(2), np.eye(2), {"x": [0.7, 0.7]})
