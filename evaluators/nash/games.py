"""Run candidate Nash algorithms on real bimatrix games and measure their actual epsilon.

The held-out check of the `nash_guarantee` problem. The certifier bounds an algorithm's
epsilon over an abstraction of all games; here the algorithm (normalized JSON data, see
program.py) is executed block by block on concrete payoff matrices R (player 1, rows) and
C (player 2, columns) in [0, 1], and its output is scored exactly as the abstraction scores
it: the best point on any line between two constructed profiles that differ in one
player's strategy. Every block is implemented so that it satisfies the constraints the
certifier assumes for it, so a measured epsilon above a certified bound (beyond float
tolerance) means the certificate is wrong.

`worst_games` searches for games on which an algorithm does badly: random games (uniform
payoffs, 0/1 payoffs, payoffs on a coarse grid), then hill climbing from the worst of them,
perturbing payoff entries and the strategies the algorithm draws at random (those are part
of a game instance, so the search plays the adversary for Random1/Random2 too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.optimize import linprog

P1_BLOCKS = {"BestResponse1", "Random1", "EqMix1"}
P2_BLOCKS = {"BestResponse2", "Random2", "EqMix2"}
PROFILE_BLOCKS = {"MaxPayoff", "ZeroSumNE"}
NOT_EXECUTABLE = {"StationaryPoint": "StationaryPoint (a Tsaknakis-Spirakis stationary point) has no executable "
                                     "implementation here"}
KNOWN_BLOCKS = P1_BLOCKS | P2_BLOCKS | PROFILE_BLOCKS | set(NOT_EXECUTABLE)


class NotExecutable(ValueError):
    """The algorithm uses a block this executor cannot run; the message says which."""


@dataclass
class Execution:
    """The strategies one run constructed (shared prefix plus the arm that ran)."""

    p1: dict[str, np.ndarray] = field(default_factory=dict)
    p2: dict[str, np.ndarray] = field(default_factory=dict)
    arm: str = "main"


# ---------------------------------------------------------------------------------------------
# Reading the algorithm


def _all_steps(algorithm: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    branch = algorithm.get("branch")
    steps = list(algorithm.get("steps") or [])
    if branch:
        steps += list(branch.get("then") or []) + list(branch.get("else") or [])
    return steps


def executable(algorithm: Mapping[str, Any]) -> str | None:
    """None if every block of the algorithm can be executed, else the reason it cannot."""
    for step in _all_steps(algorithm):
        block = step.get("block")
        if block in NOT_EXECUTABLE:
            return NOT_EXECUTABLE[block]
        if block not in KNOWN_BLOCKS:
            return f"unknown block {str(block)[:40]!r}"
    return None


def random_names(algorithm: Mapping[str, Any]) -> dict[str, str]:
    """Name -> "p1" or "p2" for every strategy a Random1/Random2 step draws (all arms)."""
    names: dict[str, str] = {}
    for step in _all_steps(algorithm):
        if step["block"] in ("Random1", "Random2"):
            names[step["out"][0]] = "p1" if step["block"] == "Random1" else "p2"
    return names


# ---------------------------------------------------------------------------------------------
# The blocks


def best_response(payoffs: np.ndarray) -> np.ndarray:
    """A pure strategy on the largest entry of `payoffs` (ties: the lowest index)."""
    pure = np.zeros(len(payoffs))
    pure[int(np.argmax(payoffs))] = 1.0
    return pure


def max_payoff(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A pure profile on the largest entry of M (ties: first in row-major order)."""
    i, j = np.unravel_index(int(np.argmax(M)), M.shape)
    return _pure(M.shape[0], int(i)), _pure(M.shape[1], int(j))


def zero_sum_ne(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Nash equilibrium (x*, y*) of the zero-sum game where player 1 maximizes x^T M y.

    One LP for player 1's maximin strategy; player 2's minimax strategy is its dual. HiGHS
    returns a vertex solved by LU, so the saddle gap is ~1e-15; clipping and renormalising
    only removes signed zeros and rounding in the sums.
    """
    m, n = M.shape
    cost = np.zeros(m + 1)
    cost[-1] = -1.0  # maximize the value v
    a_ub = np.hstack([-M.T, np.ones((n, 1))])  # v <= (x^T M)_j for every column j
    a_eq = np.zeros((1, m + 1))
    a_eq[0, :m] = 1.0
    result = linprog(cost, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0],
                     bounds=[(0.0, None)] * m + [(None, None)], method="highs")
    if result.status != 0:  # cannot happen for a finite matrix; say so loudly if it does
        raise RuntimeError(f"zero-sum LP failed: {result.message}")
    return _distribution(result.x[:m]), _distribution(-result.ineqlin.marginals)


def _pure(size: int, index: int) -> np.ndarray:
    pure = np.zeros(size)
    pure[index] = 1.0
    return pure


def _distribution(vector: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(vector, dtype=float), 0.0, None)
    return clipped / clipped.sum()


# ---------------------------------------------------------------------------------------------
# Running an algorithm


def check_game(R: Any, C: Any) -> tuple[np.ndarray, np.ndarray]:
    """R and C as float arrays of one shape with entries in [0, 1], or ValueError saying what is wrong."""
    R, C = np.asarray(R, dtype=float), np.asarray(C, dtype=float)
    if R.ndim != 2 or R.shape != C.shape or min(R.shape) < 1:
        raise ValueError(f"R and C must be matrices of one shape; got shapes {R.shape} and {C.shape}")
    if not (np.isfinite(R).all() and np.isfinite(C).all()) or R.min() < 0 or C.min() < 0 \
            or R.max() > 1 or C.max() > 1:
        raise ValueError("payoffs must lie in [0, 1] (the guarantees are for games normalised to [0, 1])")
    return R, C


def _random_strategy(name: str, player: str, size: int, given: Mapping[str, Any]) -> np.ndarray:
    what = "rows" if player == "p1" else "columns"
    if name not in given:
        raise ValueError(f"no random strategy for {name!r}: give a distribution over the {size} {what}")
    vector = np.asarray(given[name], dtype=float)
    if vector.shape != (size,) or not np.isfinite(vector).all() or vector.min() < 0 \
            or abs(vector.sum() - 1.0) > 1e-9:
        raise ValueError(f"random strategy {name!r} must be a distribution (non-negative, sum 1) over the "
                         f"{size} {what}; got {np.asarray(given[name]).tolist()}")
    return vector / vector.sum()


def execute(algorithm: Mapping[str, Any], R: Any, C: Any, random_strategies: Mapping[str, Any]) -> Execution:
    """Run the shared steps, evaluate the branch condition on this game, run the arm it selects."""
    reason = executable(algorithm)
    if reason is not None:
        raise NotExecutable(f"the algorithm is not executable: {reason}")
    R, C = check_game(R, C)
    run = Execution()
    _run_steps(algorithm.get("steps") or [], R, C, random_strategies, run)
    branch = algorithm.get("branch")
    if branch:
        holds = condition_holds(branch["cond"], R, C, run)
        run.arm = "then" if holds else "else"
        _run_steps(branch["then"] if holds else branch["else"], R, C, random_strategies, run)
    return run


def _run_steps(steps: Sequence[Mapping[str, Any]], R: np.ndarray, C: np.ndarray,
               given: Mapping[str, Any], run: Execution) -> None:
    m, n = R.shape
    for step in steps:
        block, args, out = step["block"], list(step.get("args") or []), list(step["out"])
        if block == "BestResponse1":
            run.p1[out[0]] = best_response(R @ run.p2[args[0]])
        elif block == "BestResponse2":
            run.p2[out[0]] = best_response(run.p1[args[0]] @ C)
        elif block == "Random1":
            run.p1[out[0]] = _random_strategy(out[0], "p1", m, given)
        elif block == "Random2":
            run.p2[out[0]] = _random_strategy(out[0], "p2", n, given)
        elif block == "EqMix1":
            run.p1[out[0]] = (run.p1[args[0]] + run.p1[args[1]]) / 2
        elif block == "EqMix2":
            run.p2[out[0]] = (run.p2[args[0]] + run.p2[args[1]]) / 2
        else:  # MaxPayoff, ZeroSumNE on M = a R + b C
            payoff = step["payoff"]
            M = payoff.get("U1", 0) * R + payoff.get("U2", 0) * C
            x, y = max_payoff(M) if block == "MaxPayoff" else zero_sum_ne(M)
            run.p1[out[0]], run.p2[out[1]] = x, y


def regrets(R: np.ndarray, C: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(f1, f2): how much each player gains by deviating from (x, y)."""
    Ry, xC = R @ y, x @ C
    return float(Ry.max() - x @ Ry), float(xC.max() - xC @ y)


def _term_value(term: Mapping[str, Any], R: np.ndarray, C: np.ndarray, run: Execution) -> float:
    if term.get("fn") is None:
        return float(Fraction(str(term["const"])))
    x, y = run.p1[term["x"]], run.p2[term["y"]]
    fn = term["fn"]
    if fn == "f1":
        return regrets(R, C, x, y)[0]
    if fn == "f2":
        return regrets(R, C, x, y)[1]
    if fn == "U1":
        return float(x @ R @ y)
    if fn == "U2":
        return float(x @ C @ y)
    raise ValueError(f"unknown function {str(fn)[:20]!r} in a branch condition; use f1, f2, U1 or U2")


def condition_holds(cond: Mapping[str, Any], R: np.ndarray, C: np.ndarray, run: Execution) -> bool:
    lhs, rhs = _term_value(cond["lhs"], R, C, run), _term_value(cond["rhs"], R, C, run)
    if cond["op"] == ">=":
        return lhs >= rhs
    if cond["op"] == "<=":
        return lhs <= rhs
    raise ValueError(f"unknown operator {str(cond['op'])[:10]!r} in a branch condition; use '>=' or '<='")


# ---------------------------------------------------------------------------------------------
# The output: the best point on any line


def upper_envelope_min(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per row: min over lambda in [0, 1] of max_k (start_k + lambda (end_k - start_k)), exactly.

    `start` and `end` are (lines, pieces) arrays (a 1-d pair is one line). The envelope of
    the pieces is convex piecewise linear, so its minimum lies at an endpoint or where two
    pieces cross; there are few pieces, so every crossing is tried.
    """
    start, end = np.atleast_2d(start), np.atleast_2d(end)
    slope = end - start
    d_start = start[:, None, :] - start[:, :, None]  # [l, k, j] = start_j - start_k
    d_slope = slope[:, :, None] - slope[:, None, :]  # [l, k, j] = slope_k - slope_j
    with np.errstate(divide="ignore", invalid="ignore"):
        crossings = d_start / d_slope  # where pieces k and j meet
    crossings = np.where(np.isfinite(crossings) & (crossings > 0) & (crossings < 1), crossings, 0.0)
    lambdas = np.concatenate([np.zeros((len(start), 1)), np.ones((len(start), 1)),
                              crossings.reshape(len(start), -1)], axis=1)
    values = (start[:, :, None] + slope[:, :, None] * lambdas[:, None, :]).max(axis=1)
    return values.min(axis=1)


def line_epsilon(R: np.ndarray, C: np.ndarray, x_a: np.ndarray, x_b: np.ndarray, y: np.ndarray) -> float:
    """min over lambda of max(f1, f2) at ((1 - lambda) x_a + lambda x_b, y).

    f1 is linear in lambda; f2 is the maximum over columns j of a linear function, so
    epsilon is the upper envelope of 1 + (number of columns) lines.
    """
    return float(output_lines(R, C, np.array([x_a, x_b]), np.array([y]), pairs=[(0, 1)]).min())


def output_lines(R: np.ndarray, C: np.ndarray, X: np.ndarray, Y: np.ndarray,
                 pairs: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Epsilon of the best point on each line (X[a], y)-(X[b], y), for each pair (a, b) and row y of Y.

    Pieces of a line: player 1's regret (linear in lambda) and, per column j, the gain
    (x^T C)_j - x^T C y of player 2 (linear in lambda; their maximum is f2).
    """
    if pairs is None:
        pairs = [(a, b) for a in range(len(X)) for b in range(a, len(X))]
    RY = R @ Y.T  # (rows, strategies of player 2)
    XC = X @ C
    XRY, XCY = X @ RY, XC @ Y.T
    f1 = RY.max(axis=0)[None, :] - XRY  # [x, y]
    pieces = np.concatenate([f1[:, :, None], XC[:, None, :] - XCY[:, :, None]], axis=2)  # [x, y, piece]
    a, b = np.array(pairs).T
    return upper_envelope_min(pieces[a].reshape(-1, pieces.shape[2]), pieces[b].reshape(-1, pieces.shape[2]))


def output_epsilon(R: np.ndarray, C: np.ndarray, p1: Sequence[np.ndarray], p2: Sequence[np.ndarray]) -> float:
    """The algorithm's epsilon: the best point over all lines (x_a, y)-(x_b, y) and (x, y_a)-(x, y_b)."""
    X, Y = np.array(p1), np.array(p2)
    along_x = output_lines(R, C, X, Y).min()
    along_y = output_lines(C.T, R.T, Y, X).min()  # the transposed game: player 2 varies, f1 and f2 swap
    return max(float(min(along_x, along_y)), 0.0)


def measure(algorithm: Mapping[str, Any], R: Any, C: Any, random_strategies: Mapping[str, Any]) -> float:
    """The measured epsilon of the algorithm on the game (R, C) with the given random strategies.

    Raises NotExecutable for an algorithm with a block that cannot run (see `executable`).
    """
    R, C = check_game(R, C)
    run = execute(algorithm, R, C, random_strategies)
    return output_epsilon(R, C, list(run.p1.values()), list(run.p2.values()))


# ---------------------------------------------------------------------------------------------
# Searching for bad games


@dataclass
class Instance:
    """A game plus the strategies its Random1/Random2 steps draw."""

    R: np.ndarray
    C: np.ndarray
    randoms: dict[str, np.ndarray]
    source: str


KINDS = ("uniform", "binary", "grid")  # payoffs uniform in [0, 1], in {0, 1}, in {0, 1/2, 1}


def _draw_strategy(rng: np.random.Generator, size: int) -> np.ndarray:
    """A pure strategy, a mixture on two entries or a full mixture, a third of the time each."""
    kind = rng.integers(3)
    if kind == 0:
        return _pure(size, int(rng.integers(size)))
    weights = np.zeros(size)
    support = rng.choice(size, size=2, replace=False) if kind == 1 else np.arange(size)
    weights[support] = rng.dirichlet(np.ones(len(support)))
    return weights


def _draw_instance(rng: np.random.Generator, size: int, kind: str, names: Mapping[str, str]) -> Instance:
    if kind == "uniform":
        R, C = rng.random((size, size)), rng.random((size, size))
    elif kind == "binary":
        R, C = (rng.integers(0, 2, (2, size, size))).astype(float)
    else:
        R, C = rng.integers(0, 3, (2, size, size)) / 2.0
    randoms = {name: _draw_strategy(rng, size) for name in names}
    return Instance(R, C, randoms, f"random {kind} {size}x{size}")


def _perturb(rng: np.random.Generator, instance: Instance, scale: float) -> Instance:
    """A neighbour: payoff entries moved, snapped to 0 or 1 or tied to another entry, or a random strategy moved.

    Ties and 0/1 entries matter: worst cases of best-response algorithms sit on them.
    """
    R, C = instance.R.copy(), instance.C.copy()
    randoms = dict(instance.randoms)
    if randoms and rng.random() < 0.25:
        name = list(randoms)[int(rng.integers(len(randoms)))]
        size = len(randoms[name])
        if rng.random() < 0.2:
            randoms[name] = _pure(size, int(rng.integers(size)))
        else:
            randoms[name] = _distribution(np.clip(randoms[name] + rng.normal(0.0, scale, size), 0.0, None) + 1e-12)
        return Instance(R, C, randoms, instance.source)
    for _ in range(int(rng.integers(1, 4))):
        matrix = R if rng.random() < 0.5 else C
        i, j = (int(k) for k in rng.integers(0, matrix.shape[0], 2))
        move = rng.random()
        if move < 0.1:
            matrix[i, j] = float(rng.integers(2))
        elif move < 0.2:  # tie with another entry of its row or column, in either matrix
            other = R if rng.random() < 0.5 else C
            k = int(rng.integers(matrix.shape[0]))
            matrix[i, j] = other[i, k] if rng.random() < 0.5 else other[k, j]
        else:
            matrix[i, j] = float(np.clip(matrix[i, j] + rng.normal(0.0, scale), 0.0, 1.0))
    return Instance(R, C, randoms, instance.source)


def _score(algorithm: Mapping[str, Any], instance: Instance) -> tuple[float, str]:
    run = execute(algorithm, instance.R, instance.C, instance.randoms)
    eps = output_epsilon(instance.R, instance.C, list(run.p1.values()), list(run.p2.values()))
    return eps, run.arm


# Default budgets, about 1-2 s on a 2-core machine: a game costs ~0.2 ms to run, ~2 ms with an LP.
CHEAP_BUDGET = {"random_games": 150, "climbs": 5, "steps": 800}
LP_BUDGET = {"random_games": 50, "climbs": 3, "steps": 250}


def default_budget(algorithm: Mapping[str, Any]) -> dict[str, int]:
    """The default search budget: smaller when the algorithm solves an LP (ZeroSumNE) per game."""
    uses_lp = any(step.get("block") == "ZeroSumNE" for step in _all_steps(algorithm))
    return dict(LP_BUDGET if uses_lp else CHEAP_BUDGET)


def worst_games(algorithm: Mapping[str, Any], seed: int = 0, sizes: Sequence[int] = (3, 4, 5),
                random_games: int | None = None, climbs: int | None = None, steps: int | None = None,
                kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    """The worst measured epsilon over random games and hill-climbed games, deterministic for a seed.

    `random_games` games are drawn across `sizes` and payoff `kinds` (see KINDS); the `climbs` worst of them
    each start a hill climb of `steps` perturbations that keeps every change not making
    epsilon smaller (so it can cross plateaus). Budgets left None come from
    `default_budget`. Returns {"worst_eps", "games", "worst",
    "arms", "seconds"}; "worst" holds the game (R, C, size, random strategies, its source
    and the arm that ran). For an algorithm that cannot be executed, "worst_eps" is None
    and "reason" says why.
    """
    began = time.perf_counter()
    reason = executable(algorithm)
    if reason is not None:
        return {"worst_eps": None, "games": 0, "worst": None, "arms": {}, "seconds": 0.0, "reason": reason}
    budget = default_budget(algorithm)
    random_games = budget["random_games"] if random_games is None else random_games
    climbs = budget["climbs"] if climbs is None else climbs
    steps = budget["steps"] if steps is None else steps
    if not sizes or min(sizes) < 1 or random_games < 1 or climbs < 0 or steps < 0:
        raise ValueError("worst_games needs sizes >= 1, random_games >= 1, climbs >= 0 and steps >= 0")
    if not kinds or set(kinds) - set(KINDS):
        raise ValueError(f"unknown game kind(s) in {list(kinds)}; choose from {list(KINDS)}")
    rng = np.random.default_rng(seed)
    names = random_names(algorithm)
    arms: dict[str, int] = {}
    scored: list[tuple[float, int, Instance, str]] = []
    for k in range(random_games):
        instance = _draw_instance(rng, int(sizes[k % len(sizes)]), kinds[(k // len(sizes)) % len(kinds)], names)
        eps, arm = _score(algorithm, instance)
        arms[arm] = arms.get(arm, 0) + 1
        scored.append((eps, k, instance, arm))
    scored.sort(key=lambda item: (-item[0], item[1]))
    worst_eps, _, worst, worst_arm = scored[0]
    for climb in range(min(climbs, len(scored))):
        eps, _, current, arm = scored[climb]
        current = Instance(current.R, current.C, current.randoms, current.source + ", hill-climbed")
        scale = 0.2
        for _ in range(steps):
            candidate = _perturb(rng, current, scale)
            candidate_eps, candidate_arm = _score(algorithm, candidate)
            arms[candidate_arm] = arms.get(candidate_arm, 0) + 1
            if candidate_eps > eps:  # a step size that pays is tried larger, one that fails smaller
                scale = min(0.5, scale * 1.5)
            elif candidate_eps < eps:
                scale = max(0.002, scale * 0.95)
            if candidate_eps >= eps:
                current, eps, arm = candidate, candidate_eps, candidate_arm
        if eps > worst_eps:
            worst_eps, worst, worst_arm = eps, current, arm
    return {"worst_eps": worst_eps, "games": random_games + min(climbs, len(scored)) * steps,
            "worst": {"R": worst.R.tolist(), "C": worst.C.tolist(), "size": worst.R.shape[0],
                      "random_strategies": {name: v.tolist() for name, v in worst.randoms.items()},
                      "source": worst.source, "arm": worst_arm},
            "arms": arms, "seconds": time.perf_counter() - began}
