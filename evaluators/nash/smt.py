"""Exact decisions "epsilon <= eps0" with Z3, and certification by bisection.

For a line between profiles P and Q, with A_k = f_k(P) - eps0 and B_k = f_k(Q) - eps0,
every point of the line has max(f1, f2) > eps0 iff
  (A1>0 and B1>0) or (A2>0 and B2>0)
  or (A1>0>=B1 and A2<=0<B2 and A1*B2 > A2*B1) or (the same with players swapped),
a formula with no division. Asserting it for every line of an arm, plus the arm's
constraints, asks for a game-like assignment on which the algorithm's output is
worse than eps0: `sat` gives an exact witness, `unsat` proves epsilon <= eps0 for
the abstraction, `unknown` proves nothing. Exact rationals throughout.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Callable

import z3

from evaluators.nash.system import ArmSystem, Lin, Relation
from evolve.certify_worker import killed_with_parent

SAT, UNSAT, UNKNOWN = "sat", "unsat", "unknown"
Polish = Callable[[ArmSystem, dict[str, Fraction]], float]


def solver_version() -> str:
    return f"z3 {z3.get_version_string()}"


@dataclass(frozen=True)
class Decision:
    status: str  # sat | unsat | unknown
    eps0: Fraction
    seconds: float
    arm: str = ""  # the arm with the witness (sat) or that gave up (unknown)
    value: Fraction | None = None  # the witness's exact epsilon (> eps0), when sat
    reason: str = ""
    assignment: dict[str, Fraction] | None = field(default=None, repr=False, compare=False)  # the witness
    form: ArmSystem | None = field(default=None, repr=False, compare=False)  # the system it is an assignment of

    def record(self) -> dict[str, Any]:
        return {"eps0": str(self.eps0), "status": self.status, "arm": self.arm, "seconds": round(self.seconds, 3),
                "value": None if self.value is None else float(self.value), "reason": self.reason}


class _Encoder:
    def __init__(self, system: ArmSystem) -> None:
        self.system = system
        self.vars = {name: z3.Real(name) for name in system.variables()}

    def lin(self, expr: Lin) -> z3.ArithRef:
        parts = [_q(c) * self.vars[name] for name, c in expr.terms.items()]
        if expr.const != 0 or not parts:
            parts.append(_q(expr.const))
        return z3.Sum(parts) if len(parts) > 1 else parts[0]

    def relation(self, r: Relation) -> z3.BoolRef:
        lhs = self.lin(r.expr)
        if r.rho is not None:
            lhs = lhs - self.vars[r.rho] * self.lin(r.rho_expr)  # type: ignore[arg-type]
        return {"<=": lhs <= 0, "==": lhs == 0, "<": lhs < 0}[r.op]

    def worse_than(self, eps0: Fraction) -> list[z3.BoolRef]:
        """Every line's best point has max(f1, f2) > eps0."""
        s, e = self.system, _q(eps0)
        formulas = []
        for line in s.lines:
            a1, a2 = (self.lin(s.f(k, *line.p)) - e for k in (1, 2))
            if line.p == line.q:
                formulas.append(z3.Or(a1 > 0, a2 > 0))
                continue
            b1, b2 = (self.lin(s.f(k, *line.q)) - e for k in (1, 2))
            formulas.append(z3.Or(
                z3.And(a1 > 0, b1 > 0),
                z3.And(a2 > 0, b2 > 0),
                z3.And(a1 > 0, b1 <= 0, a2 <= 0, b2 > 0, a1 * b2 > a2 * b1),
                z3.And(a2 > 0, b2 <= 0, a1 <= 0, b1 > 0, a2 * b1 > a1 * b2),
            ))
        return formulas


def decide_arm(system: ArmSystem, eps0: Fraction, timeout: float) -> Decision:
    """A race between the arm and its alternative form (see system.compile_arms): the same
    question, but the solver's time on the two differs wildly (seconds against many minutes),
    so both run at once, each in a forked process, and the first definite answer wins."""
    if system.alternative is None:
        return _decide_once(system, eps0, timeout)
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    racers = []
    for form in (system, system.alternative):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_race, args=(form, eps0, timeout, send), daemon=True)
        process.start()
        send.close()
        racers.append((process, receive))
    answers: list[Decision] = []
    try:
        pending = [receive for _, receive in racers]
        while pending:
            for ready in multiprocessing.connection.wait(pending, timeout=timeout + 5):
                pending.remove(ready)  # type: ignore[arg-type]
                try:
                    decision = ready.recv()  # type: ignore[union-attr]
                except EOFError:  # the racer died (out of memory, killed): it has no answer
                    continue
                if decision.status != UNKNOWN:
                    return replace(decision, seconds=time.monotonic() - started, arm=system.name)
                answers.append(decision)
            if time.monotonic() - started > timeout + 5:
                break
    finally:
        for process, receive in racers:
            if process.is_alive():
                process.kill()
            process.join()
            receive.close()
    reason = "; ".join(sorted({a.reason for a in answers})) or "timeout"
    return Decision(UNKNOWN, eps0, time.monotonic() - started, system.name, reason=reason)


def _race(form: ArmSystem, eps0: Fraction, timeout: float, send: Any) -> None:
    killed_with_parent()  # a racer must not outlive its caller (a worker killed at its time limit)
    send.send(_decide_once(form, eps0, timeout))
    send.close()


def _decide_once(system: ArmSystem, eps0: Fraction, timeout: float) -> Decision:
    started = time.monotonic()
    encoder = _Encoder(system)
    solver = z3.SolverFor("QF_NRA") if system.rhos else z3.Solver()
    solver.set("timeout", max(1, int(timeout * 1000)))
    solver.add(*[encoder.relation(r) for r in system.relations])
    solver.add(*encoder.worse_than(eps0))
    result = solver.check()
    seconds = time.monotonic() - started
    if result == z3.unsat:
        return Decision(UNSAT, eps0, seconds, system.name)
    if result == z3.sat:
        assignment = _assignment(solver.model(), encoder.vars)
        return Decision(SAT, eps0, seconds, system.name, epsilon(system, assignment), assignment=assignment,
                        form=system)
    reason = solver.reason_unknown()
    return Decision(UNKNOWN, eps0, seconds, system.name, reason="timeout" if "timeout" in reason or "canceled" in reason
                    else reason)


def decide(systems: list[ArmSystem], eps0: Fraction, timeout: float) -> Decision:
    """epsilon <= eps0 over all arms? unsat in every arm proves it; one sat arm refutes it."""
    started, spent = time.monotonic(), 0.0
    last: Decision | None = None
    for system in systems:
        last = decide_arm(system, eps0, max(0.001, timeout - spent))
        spent = time.monotonic() - started
        if last.status != UNSAT:
            return replace(last, seconds=spent)
    return Decision(UNSAT, eps0, spent)


def epsilon(system: ArmSystem, assignment: dict[str, Fraction]) -> Fraction:
    """The arm's output epsilon at an assignment: min over lines of the best interpolated point."""
    best: Fraction | None = None
    for line in system.lines:
        a1, a2 = (system.f(k, *line.p).value(assignment) for k in (1, 2))
        b1, b2 = (system.f(k, *line.q).value(assignment) for k in (1, 2))
        value = line_value(a1, a2, b1, b2)
        best = value if best is None else min(best, value)
    return best if best is not None else Fraction(1)


def line_value(a1: Any, a2: Any, b1: Any, b2: Any) -> Any:
    """min over lambda of max(f1, f2) with f linear between (a1, a2) at one end and (b1, b2) at the other."""
    value = min(max(a1, a2), max(b1, b2))
    da, db = a1 - a2, b1 - b2
    if da * db < 0:  # the regrets cross inside the line
        value = min(value, (a1 * b2 - a2 * b1) / (da - db))
    return value


def _assignment(model: z3.ModelRef, variables: dict[str, z3.ArithRef]) -> dict[str, Fraction]:
    values = {}
    for name, var in variables.items():
        v = model.eval(var, model_completion=True)
        if z3.is_rational_value(v):
            values[name] = Fraction(v.numerator_as_long(), v.denominator_as_long())
        else:  # an algebraic number (nonlinear witness): a rational within 1e-30
            values[name] = Fraction(v.approx(30).as_fraction())
    return values


def _q(value: Fraction) -> z3.RatNumRef:
    return z3.Q(value.numerator, value.denominator)


# ---------------------------------------------------------------- certification

@dataclass
class Certificate:
    upper: Fraction  # smallest proven bound (1 holds for every algorithm: nothing proven yet)
    lower: Fraction  # largest exact witness value (0 when none)
    calls: list[Decision] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""  # why the bisection ended early, if it did

    def width(self) -> Fraction:
        return self.upper - self.lower


def certify(systems: list[ArmSystem], *, width: Fraction, time_budget: float, call_timeout: float,
            upper: Fraction | None = None, lower: Fraction = Fraction(0), estimate: float | None = None,
            hint: Fraction | None = None, polish: Polish | None = None) -> Certificate:
    """Bisection on epsilon to `width` within `time_budget`, starting from a proven `upper` (if any).

    Guesses go first: the proof hint, then just above the numeric estimate. A guess
    that is proven is probably tight, so the next query sits just below it (a witness
    there closes the gap in one call). A witness found on the way is handed to
    `polish` (a local numeric climb from it): its value becomes the next guess,
    which saves most of the slow calls that only nudge the witness side up.
    Then plain bisection.
    """
    started = time.monotonic()
    cert = Certificate(upper if upper is not None else Fraction(1), lower)  # epsilon <= 1 always holds
    guesses = [hint] if hint else []
    if estimate is not None:  # the estimate itself is often exact (1/2, 3/4), else just above it
        guesses += [_snap(Fraction(estimate)), _snap(Fraction(estimate) + width / 2)]
    probe_below = upper is not None
    while True:
        hi = cert.upper
        if hi - cert.lower <= width:
            break
        left = time_budget - (time.monotonic() - started)
        if left <= 0.05:
            cert.stopped = f"time budget of {time_budget:g} s spent"
            break
        guesses = [q for q in guesses if cert.lower < q < hi]
        if probe_below and hi - width > cert.lower:
            query, probe_below = _snap(hi - width * Fraction(9, 10)), False
        elif guesses:
            query, probe_below = guesses.pop(0), True
        else:
            query = _snap((cert.lower + hi) / 2)
            if not cert.lower < query < hi:
                query = (cert.lower + hi) / 2
        decision = decide(systems, query, min(call_timeout, left))
        cert.calls.append(decision)
        if decision.status == UNSAT:
            cert.upper = query
        elif decision.status == SAT:
            cert.lower = max(cert.lower, decision.value)  # type: ignore[type-var]
            probe_below = False
            if polish is not None and decision.assignment is not None:
                climbed = Fraction(polish(decision.form, decision.assignment))  # type: ignore[arg-type]
                if climbed > cert.lower + cert.width() / 8:  # only a real jump is worth a guess
                    guesses = [_snap(climbed), _snap(climbed + width / 2)]
        else:
            cert.stopped = f"the solver gave up at {query} ({decision.reason or 'unknown'})"
            break
    cert.seconds = time.monotonic() - started
    return cert


def _snap(value: Fraction) -> Fraction:
    """A short decimal near value (bounds read better as 0.3819661 than as a 60-digit fraction)."""
    return Fraction(round(value * 10**10), 10**10)
