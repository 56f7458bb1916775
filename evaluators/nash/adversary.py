"""A cheap numeric adversary over an arm's constraints: the search score.

It looks for an assignment satisfying the arm's constraints (rho fixed per start,
so they are linear) on which the algorithm's output epsilon is large, by
sequential linear programming: start at the LP vertex of a random objective, then
repeatedly maximize t subject to the constraints, t below a linearization of
every line's value, and a trust region, keeping a step only if the true epsilon
grows. Every value it reports is the epsilon of a feasible point, so it is a
lower bound on the arm's worst case: optimistic for the candidate. It never makes
a champion on its own; that takes the SMT certificate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from evaluators.nash.system import ArmSystem, Lin

FEASIBILITY_TOL = 1e-9


@dataclass(frozen=True)
class AdversaryResult:
    epsilon: float  # the largest output epsilon found (max over arms)
    arm: str
    starts: int
    seconds: float
    point: dict[str, float] | None = None  # the feasible assignment that has it (rho included)


class _ArmLP:
    """An arm's constraints as dense matrices, with rho fixed at a chosen value."""

    def __init__(self, system: ArmSystem) -> None:
        self.system = system
        self.names = [n for n in system.variables() if n not in system.rhos]
        self.index = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        self.line_rows = np.zeros((len(system.lines), 4, n))
        self.line_consts = np.zeros((len(system.lines), 4))
        for li, line in enumerate(system.lines):
            for j, (k, profile) in enumerate(((1, line.p), (2, line.p), (1, line.q), (2, line.q))):
                self.line_rows[li, j], self.line_consts[li, j] = self._dense(system.f(k, *profile))

    def _dense(self, expr: Lin, rho_values: dict[str, float] | None = None) -> tuple[np.ndarray, float]:
        row = np.zeros(len(self.names))
        const = float(expr.const)
        for name, c in expr.terms.items():
            if name in self.index:
                row[self.index[name]] += float(c)
            else:  # a rho appearing linearly (its bounds): a constant once fixed
                const += float(c) * (rho_values or {}).get(name, 0.0)
        return row, const

    def matrices(self, rho_values: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ub_rows, ub_rhs, eq_rows, eq_rhs = [], [], [], []
        for r in self.system.relations:
            row, const = self._dense(r.expr, rho_values)
            if r.rho is not None:
                rrow, rconst = self._dense(r.rho_expr, rho_values)  # type: ignore[arg-type]
                row, const = row - rho_values[r.rho] * rrow, const - rho_values[r.rho] * rconst
            if not row.any():
                if (r.op == "==" and abs(const) > FEASIBILITY_TOL) or (r.op != "==" and const > FEASIBILITY_TOL):
                    raise _Infeasible
                continue
            (eq_rows if r.op == "==" else ub_rows).append(row)
            (eq_rhs if r.op == "==" else ub_rhs).append(-const)
        n = len(self.names)
        return (np.array(ub_rows).reshape(-1, n), np.array(ub_rhs), np.array(eq_rows).reshape(-1, n),
                np.array(eq_rhs))

    def epsilon(self, v: np.ndarray) -> float:
        ends = self.line_rows @ v + self.line_consts  # (lines, 4): a1, a2, b1, b2
        return float(min(_line_value(*e) for e in ends))

    def linearized_pieces(self, v: np.ndarray, slack: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows g and offsets h with t <= g.v + h, for every piece of every line near the minimum."""
        ends = self.line_rows @ v + self.line_consts
        values = np.array([_line_value(*e) for e in ends])
        cutoff = values.min() + slack
        rows, offsets = [], []
        for li in np.flatnonzero(values <= cutoff):
            a1, a2, b1, b2 = ends[li]
            ra1, ra2, rb1, rb2 = self.line_rows[li]
            ca1, ca2, cb1, cb2 = self.line_consts[li]
            # Endpoint pieces: max(a1, a2) >= the larger one, a conservative linear piece.
            rows.append(ra1 if a1 >= a2 else ra2)
            offsets.append(ca1 if a1 >= a2 else ca2)
            rows.append(rb1 if b1 >= b2 else rb2)
            offsets.append(cb1 if b1 >= b2 else cb2)
            da, db = a1 - a2, b1 - b2
            if da * db < 0:  # crossing piece (a1*b2 - a2*b1)/(da - db): first-order expansion
                denom = da - db
                value = (a1 * b2 - a2 * b1) / denom
                grad = ((b2 - value) * ra1 + (-b1 + value) * ra2 + (-a2 - value) * rb1 + (a1 + value) * rb2) / denom
                rows.append(grad)
                offsets.append(value - grad @ v)
        return np.array(rows), np.array(offsets)


class _Infeasible(Exception):
    pass


def _line_value(a1: float, a2: float, b1: float, b2: float) -> float:
    value = min(max(a1, a2), max(b1, b2))
    da, db = a1 - a2, b1 - b2
    if da * db < 0:
        value = min(value, (a1 * b2 - a2 * b1) / (da - db))
    return value


def attack(systems: list[ArmSystem], seed: int, starts: int = 8, iterations: int = 25) -> AdversaryResult:
    """The largest output epsilon found over all arms (a feasible point's exact-in-floats value)."""
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    best, best_arm, best_point = 0.0, systems[0].name, None
    for system in systems:
        value, point = _attack_arm(_ArmLP(system), rng, starts, iterations)
        if value > best:
            best, best_arm, best_point = value, system.name, point
    return AdversaryResult(best, best_arm, starts, time.monotonic() - started, best_point)


def _attack_arm(lp: _ArmLP, rng: np.random.Generator, starts: int,
                iterations: int) -> tuple[float, dict[str, float] | None]:
    """Multistart SLP with kicks; rho (if any) stratified over [0, 1], then refined near the best one."""
    best, best_rho, best_point = 0.0, 0.5, None
    n = len(lp.names)
    for start_index in range(starts):
        rho = _rho_schedule(start_index, starts, best_rho, rng)
        rho_values = {r: rho for r in lp.system.rhos}
        try:
            a_ub, b_ub, a_eq, b_eq = lp.matrices(rho_values)
        except _Infeasible:
            continue
        vertex = _vertex(rng.normal(size=n), a_ub, b_ub, a_eq, b_eq)
        if vertex is None:
            continue  # this arm (with this rho) admits no game: nothing to gain here
        v, value = _climb(lp, vertex, iterations, a_ub, b_ub, a_eq, b_eq)
        for _ in range(KICKS):  # the polytope is convex: a blend with another vertex stays feasible
            other = _vertex(rng.normal(size=n), a_ub, b_ub, a_eq, b_eq)
            if other is None:
                break
            alpha = float(rng.choice([0.05, 0.2, 0.5]))
            kicked, kicked_value = _climb(lp, (1 - alpha) * v + alpha * other, iterations, a_ub, b_ub, a_eq, b_eq)
            if kicked_value > value:
                v, value = kicked, kicked_value
        if value > best:
            best, best_rho = value, rho
            best_point = dict(zip(lp.names, map(float, v))) | rho_values
    return best, best_point


KICKS = 2


def polish(system: ArmSystem, assignment: dict, iterations: int = 60) -> float:
    """Climb from a feasible point (an SMT witness), rho held at its value: a better guess for the bisection."""
    lp = _ArmLP(system)
    try:
        a_ub, b_ub, a_eq, b_eq = lp.matrices({r: float(assignment[r]) for r in system.rhos})
    except _Infeasible:
        return 0.0
    start = np.array([float(assignment[name]) for name in lp.names])
    return _climb(lp, start, iterations, a_ub, b_ub, a_eq, b_eq)[1]


def _rho_schedule(index: int, starts: int, best_rho: float, rng: np.random.Generator) -> float:
    half = max(1, starts // 2)
    if index < half:
        return (index + float(rng.random())) / half
    return float(np.clip(best_rho + rng.normal(0, 0.15 / (1 + index - half)), 0.0, 1.0))


def _vertex(cost: np.ndarray, a_ub: np.ndarray, b_ub: np.ndarray, a_eq: np.ndarray,
            b_eq: np.ndarray) -> np.ndarray | None:
    result = linprog(cost, A_ub=a_ub if len(a_ub) else None, b_ub=b_ub if len(b_ub) else None,
                     A_eq=a_eq if len(a_eq) else None, b_eq=b_eq if len(b_eq) else None,
                     bounds=(0, 1), method="highs")
    return result.x if result.status == 0 else None


def _climb(lp: _ArmLP, v: np.ndarray, iterations: int, a_ub: np.ndarray, b_ub: np.ndarray, a_eq: np.ndarray,
           b_eq: np.ndarray) -> tuple[np.ndarray, float]:
    value = lp.epsilon(v)
    radius = 0.25
    for _ in range(iterations):
        step = _improve(lp, v, radius, a_ub, b_ub, a_eq, b_eq)
        if step is not None and lp.epsilon(step) > value + 1e-12:
            v, value = step, lp.epsilon(step)
            radius = min(0.5, radius * 1.5)
        else:
            radius /= 3
            if radius < 1e-7:
                break
    return v, value


def _improve(lp: _ArmLP, v: np.ndarray, radius: float, a_ub: np.ndarray, b_ub: np.ndarray,
             a_eq: np.ndarray, b_eq: np.ndarray) -> np.ndarray | None:
    """One trust-region LP step: maximize t under the linearized line values."""
    rows, offsets = lp.linearized_pieces(v, slack=2 * radius)
    n = len(v)
    # Variables (v, t); minimize -t.
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    piece_rows = np.hstack([-rows, np.ones((len(rows), 1))])  # t - g.v <= h
    ub = np.vstack([np.hstack([a_ub, np.zeros((len(a_ub), 1))]), piece_rows]) if len(a_ub) else piece_rows
    ub_rhs = np.concatenate([b_ub, offsets]) if len(a_ub) else offsets
    eq = np.hstack([a_eq, np.zeros((len(a_eq), 1))]) if len(a_eq) else None
    bounds = [(max(0.0, x - radius), min(1.0, x + radius)) for x in v] + [(None, None)]
    result = linprog(cost, A_ub=ub, b_ub=ub_rhs, A_eq=eq, b_eq=b_eq if len(a_eq) else None,
                     bounds=bounds, method="highs")
    return result.x[:n] if result.status == 0 else None
