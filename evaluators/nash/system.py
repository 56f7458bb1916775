"""Compile one arm of an algorithm to the constraint system that holds in every game.

Variables, for every pair of strategies (x, y) the arm knows about:
  U1[x,y], U2[x,y]  payoffs;  M1[y] = player 1's best-response payoff against y,
  M2[x] likewise for player 2;  so the regrets are f1(x,y) = M1[y] - U1[x,y] and
  f2(x,y) = M2[x] - U2[x,y], which is exactly the brief's regret identity
  f1(x1,y) - f1(x2,y) = U1(x2,y) - U1(x1,y) with one variable fewer per pair.
A block's "for all x" is instantiated at every constructed player 1 strategy and,
for each constructed player 2 strategy y, at a virtual best response b1(y) with
f1(b1(y), y) = 0 (likewise for player 2). StationaryPoint adds one variable
rho in [0, 1] that multiplies linear terms; everything else is linear.

Constraints are kept as `Relation`s (expr op 0, optionally minus rho * rho_expr),
exact rationals throughout, so the SMT encoding and the numeric adversary read
the same system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations_with_replacement

from evaluators.nash.program import BLOCKS, P1, P2, Algorithm, Condition, Step, Term, mirrored

Coefficients = dict[str, Fraction]
MISSING = "?"


class Lin:
    """A linear expression over named variables with rational coefficients."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: Coefficients | None = None, const: Fraction | int = 0) -> None:
        self.terms = {k: v for k, v in (terms or {}).items() if v != 0}
        self.const = Fraction(const)

    @staticmethod
    def var(name: str) -> "Lin":
        return Lin({name: Fraction(1)})

    def __add__(self, other: "Lin | int | Fraction") -> "Lin":
        other = _lin(other)
        terms = dict(self.terms)
        for k, v in other.terms.items():
            terms[k] = terms.get(k, Fraction(0)) + v
        return Lin(terms, self.const + other.const)

    __radd__ = __add__

    def __neg__(self) -> "Lin":
        return Lin({k: -v for k, v in self.terms.items()}, -self.const)

    def __sub__(self, other: "Lin | int | Fraction") -> "Lin":
        return self + (-_lin(other))

    def __rsub__(self, other: "Lin | int | Fraction") -> "Lin":
        return _lin(other) - self

    def __mul__(self, k: int | Fraction) -> "Lin":
        return Lin({n: v * k for n, v in self.terms.items()}, self.const * k)

    __rmul__ = __mul__

    def value(self, assignment: dict[str, Fraction]) -> Fraction:
        return self.const + sum((v * assignment[k] for k, v in self.terms.items()), Fraction(0))


def _lin(value: "Lin | int | Fraction") -> Lin:
    return value if isinstance(value, Lin) else Lin(const=value)


@dataclass(frozen=True)
class Relation:
    """expr - rho * rho_expr  (op)  0, with op one of '<=', '==', '<'."""

    expr: Lin
    op: str
    rho: str | None = None
    rho_expr: Lin | None = None


@dataclass(frozen=True)
class Line:
    """Two constructed profiles differing in one player's strategy (equal ends: one profile)."""

    p: tuple[str, str]
    q: tuple[str, str]


@dataclass
class ArmSystem:
    name: str
    xs: list[str]  # every player 1 strategy: constructed, then virtual
    ys: list[str]
    constructed_x: list[str]
    constructed_y: list[str]
    relations: list[Relation] = field(default_factory=list)
    rhos: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    pairs: set[tuple[str, str]] = field(default_factory=set)  # profiles that have payoff variables
    alternative: "ArmSystem | None" = None  # the same arm in another form, raced against it (see smt.decide_arm)

    def variables(self) -> list[str]:
        pairs = sorted(self.pairs)
        names = [f"U1[{x},{y}]" for x, y in pairs] + [f"U2[{x},{y}]" for x, y in pairs]
        names += [f"M1[{y}]" for y in self.ys] + [f"M2[{x}]" for x in self.xs]
        return names + list(self.rhos)

    # The expressions every block speaks in. A profile without variables (a virtual best
    # response against another strategy) yields MISSING, and a relation using it is dropped:
    # a quantifier is instantiated only where all its terms exist.
    def U(self, k: int, x: str, y: str) -> Lin:
        name = f"U{k}[{x},{y}]"
        # Each missing profile keeps its own name: two different ones must never cancel out.
        return Lin.var(name if (x, y) in self.pairs else MISSING + name)

    def f(self, k: int, x: str, y: str) -> Lin:
        return Lin.var(f"M1[{y}]") - self.U(1, x, y) if k == 1 else Lin.var(f"M2[{x}]") - self.U(2, x, y)

    def payoff(self, combination: tuple[int, int], x: str, y: str) -> Lin:
        return combination[0] * self.U(1, x, y) + combination[1] * self.U(2, x, y)

    def term(self, term: Term) -> Lin:
        if term.fn is None:
            return Lin(const=term.const)  # type: ignore[arg-type]
        k = int(term.fn[1])
        return self.U(k, term.x, term.y) if term.fn[0] == "U" else self.f(k, term.x, term.y)

    def add(self, lhs: Lin, op: str, rhs: Lin | int | Fraction = 0) -> None:
        """lhs op rhs, with op one of <=, >=, ==, <, >."""
        if op in (">=", ">"):
            lhs, rhs, op = _lin(rhs), lhs, op.replace(">", "<")
        self.relate(Relation(lhs - rhs, op))

    def relate(self, relation: Relation) -> None:
        exprs = [relation.expr] + ([relation.rho_expr] if relation.rho_expr is not None else [])
        if not any(name.startswith(MISSING) for expr in exprs for name in expr.terms):
            self.relations.append(relation)


def compile_arms(algorithm: Algorithm, all_pairs: bool = False) -> list[ArmSystem]:
    """One system per arm, each with an alternative form: the same constraints over canonically
    named strategies (or, when the names already are canonical, the players swapped).

    The solver's time depends wildly on the order of its variables, which follows their names:
    DFM's then arm is proven in 32 s as written and not within minutes canonically named, its
    else arm the other way round. The two forms are raced.
    """
    arms = algorithm.arms()
    systems = [compile_arm(name, steps, cond, holds, all_pairs) for name, steps, cond, holds in arms]
    canonical = [compile_arm(name, steps, cond, holds, all_pairs, canonical=True)
                 for name, steps, cond, holds in arms]
    for system, other, swapped in zip(systems, canonical, mirrored(algorithm).arms()):
        if other.variables() == system.variables():  # already canonical: the players swapped instead
            other = compile_arm(*swapped, all_pairs, canonical=True)
        system.alternative = other
    return systems


def compile_arm(name: str, steps: tuple[Step, ...], cond: Condition | None, holds: bool,
                all_pairs: bool = False, canonical: bool = False) -> ArmSystem:
    """The arm's system. `all_pairs` gives every (x, y) pair variables, virtual ones included: a
    stronger system with the same worst case on the baselines, much slower for the solver, kept
    to cross-check the default one (whose constraints must all hold on its feasible points)."""
    if canonical:
        steps, cond = _canonical(steps, cond)
    player = {}
    for step in steps:
        for out, p in zip(step.out, BLOCKS[step.block].outputs):
            player[out] = p
    cx = [n for n, p in player.items() if p == P1]
    cy = [n for n, p in player.items() if p == P2]
    # Virtual best responses: b1(y) for each constructed y, b2(x) for each constructed x.
    xs = cx + [f"b1({y})" for y in cy]
    ys = cy + [f"b2({x})" for x in cx]
    system = ArmSystem(name, xs, ys, cx, cy)
    # Payoff variables for the constructed profiles and each virtual best response against
    # the strategy it answers.
    system.pairs = {(x, y) for x in (xs if all_pairs else cx) for y in (ys if all_pairs else cy)}
    system.pairs |= {(f"b1({y})", y) for y in cy} | {(x, f"b2({x})") for x in cx}
    _inherent(system)
    for y in cy:
        system.add(system.f(1, f"b1({y})", y), "==", 0)
    for x in cx:
        system.add(system.f(2, x, f"b2({x})"), "==", 0)
    for index, step in enumerate(steps):
        BLOCK_CONSTRAINTS[step.block](system, step, index)
    if cond is not None:
        lhs, rhs = system.term(cond.lhs), system.term(cond.rhs)
        if holds:
            system.add(lhs, cond.op, rhs)
        else:  # the strict negation: the two arms cover every game exactly once
            system.add(lhs, "<" if cond.op == ">=" else ">", rhs)
    system.lines = _lines(cx, cy)
    return system


def _canonical(steps: tuple[Step, ...], cond: Condition | None) -> tuple[tuple[Step, ...], Condition | None]:
    """Strategies renamed x0, x1, ... and y0, y1, ... in the order they are constructed.

    The solver's running time depends on the order of its variables, which follows their
    names: this gives each arm a second ordering, fixed by its structure alone.
    """
    names: dict[str, str] = {}
    counts = {P1: 0, P2: 0}
    for step in steps:
        for out, p in zip(step.out, BLOCKS[step.block].outputs):
            names[out] = f"{'x' if p == P1 else 'y'}{counts[p]}"
            counts[p] += 1
    renamed = tuple(Step(s.block, tuple(names[a] for a in s.args), tuple(names[o] for o in s.out), s.payoff)
                    for s in steps)
    if cond is None:
        return renamed, None

    def term(t: Term) -> Term:
        return t if t.fn is None else Term(t.fn, names[t.x], names[t.y])

    return renamed, Condition(term(cond.lhs), cond.op, term(cond.rhs))


def _inherent(s: ArmSystem) -> None:
    """Payoffs in [0, 1]: U >= 0, f >= 0 and U + f <= 1 (that is, U <= M <= 1)."""
    for x, y in sorted(s.pairs):
        for k in (1, 2):
            s.add(s.U(k, x, y), ">=", 0)
            s.add(s.f(k, x, y), ">=", 0)
    for y in s.ys:
        s.add(Lin.var(f"M1[{y}]"), "<=", 1)
    for x in s.xs:
        s.add(Lin.var(f"M2[{x}]"), "<=", 1)


def _lines(cx: list[str], cy: list[str]) -> list[Line]:
    lines = []
    for y in cy:
        for a, b in combinations_with_replacement(cx, 2):
            lines.append(Line((a, y), (b, y)))
    for x in cx:
        for a, b in combinations_with_replacement(cy, 2):
            if a != b:  # single profiles were listed above
                lines.append(Line((x, a), (x, b)))
    return lines


# ---------------------------------------------------------------- the block library's constraints

def _best_response1(s: ArmSystem, step: Step, _: int) -> None:
    (s2,), (x1,) = step.args, step.out
    for x in s.xs:
        s.add(s.U(1, x, s2), "<=", s.U(1, x1, s2))


def _best_response2(s: ArmSystem, step: Step, _: int) -> None:
    (s1,), (y1,) = step.args, step.out
    for y in s.ys:
        s.add(s.U(2, s1, y), "<=", s.U(2, s1, y1))


def _random(s: ArmSystem, step: Step, _: int) -> None:
    return None  # the adversary chooses: no constraint


def _eq_mix1(s: ArmSystem, step: Step, _: int) -> None:
    (a, b), (x,) = step.args, step.out
    for y in s.ys:
        for k in (1, 2):
            s.add(s.U(k, a, y) + s.U(k, b, y), "==", 2 * s.U(k, x, y))
        s.add(s.f(2, a, y) + s.f(2, b, y), ">=", 2 * s.f(2, x, y))  # player 2's regret is convex in x


def _eq_mix2(s: ArmSystem, step: Step, _: int) -> None:
    (a, b), (y,) = step.args, step.out
    for x in s.xs:
        for k in (1, 2):
            s.add(s.U(k, x, a) + s.U(k, x, b), "==", 2 * s.U(k, x, y))
        s.add(s.f(1, x, a) + s.f(1, x, b), ">=", 2 * s.f(1, x, y))


def _zero_sum_ne(s: ArmSystem, step: Step, _: int) -> None:
    (xs_, ys_), c = step.out, step.payoff
    for x in s.xs:
        s.add(s.payoff(c, x, ys_), "<=", s.payoff(c, xs_, ys_))  # type: ignore[arg-type]
    for y in s.ys:
        s.add(s.payoff(c, xs_, y), ">=", s.payoff(c, xs_, ys_))  # type: ignore[arg-type]


def _max_payoff(s: ArmSystem, step: Step, _: int) -> None:
    (x1, y1), c = step.out, step.payoff
    for x in s.xs:
        for y in s.ys:
            s.add(s.payoff(c, x, y), "<=", s.payoff(c, x1, y1))  # type: ignore[arg-type]


def _stationary_point(s: ArmSystem, step: Step, index: int) -> None:
    """Tsaknakis–Spirakis: f1 = f2 at (xs, ys) and the dual certificate (rho, w, z) of stationarity."""
    xs_, ys_, w, z = step.out
    rho = f"rho{index}"
    s.rhos.append(rho)
    s.add(Lin.var(rho), ">=", 0)
    s.add(Lin.var(rho), "<=", 1)
    s.add(s.f(1, xs_, ys_), "==", s.f(2, xs_, ys_))
    for x in s.xs:
        s.add(s.U(1, x, ys_), "<=", s.U(1, w, ys_))
    for y in s.ys:
        s.add(s.U(2, xs_, y), "<=", s.U(2, xs_, z))
    value = s.f(1, xs_, ys_)
    for x in s.xs:
        for y in s.ys:
            d1 = s.U(1, w, y) - s.U(1, x, ys_) - s.U(1, xs_, y) + s.U(1, xs_, ys_)
            d2 = s.U(2, x, z) - s.U(2, xs_, y) - s.U(2, x, ys_) + s.U(2, xs_, ys_)
            # value <= rho*d1 + (1-rho)*d2  <=>  value - d2 - rho*(d1 - d2) <= 0
            s.relate(Relation(value - d2, "<=", rho, d1 - d2))


BLOCK_CONSTRAINTS = {
    "BestResponse1": _best_response1,
    "BestResponse2": _best_response2,
    "Random1": _random,
    "Random2": _random,
    "EqMix1": _eq_mix1,
    "EqMix2": _eq_mix2,
    "ZeroSumNE": _zero_sum_ne,
    "MaxPayoff": _max_payoff,
    "StationaryPoint": _stationary_point,
}
