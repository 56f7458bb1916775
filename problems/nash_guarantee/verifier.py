"""Verifier for certified approximate-Nash algorithms (a certifying verifier).

The candidate's `algorithm()` returns data (see evaluators/nash/program.py); no
candidate code runs on the host. Per split:
- search: validate, compile every arm to its constraint system, and run the seeded
  numeric adversary. The score is the largest output epsilon it finds: a lower
  bound on the algorithm's worst case, so optimistic for the candidate.
- heldout: the adversary with disjoint seeds and more starts, and, when every block
  can be executed, random and hill-climbed real games (size 3-5). The score is the
  worst of both; it must never exceed the algorithm's certificate.
`gate` and `certify` (run by the engine in a killable worker process) make the
exact claims with Z3: only they can make a champion.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun

try:
    from evaluators.nash import games, smt
    from evaluators.nash.adversary import attack, polish
    from evaluators.nash.program import AlgorithmError, parse_algorithm
    from evaluators.nash.system import ArmSystem, compile_arms
except ImportError as error:  # z3-solver or scipy missing
    raise ImportError(f"{error}; the nash_guarantee problem needs `pip install 'evolve[nash]'`") from None


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    try:
        algorithm = parse_algorithm(run.output)
    except AlgorithmError as reason:
        return Verdict(False, feedback=f"invalid algorithm: {reason}")
    systems = compile_arms(algorithm)
    subject = algorithm.to_data()
    if case.split == "heldout":
        return _heldout(case, systems, subject)
    seed = int(case.private.get("seed", 0))
    found = attack(systems, seed=seed, starts=int(settings.get("search_starts", 8)))
    metrics = {"subject": subject, "adversary": {"epsilon": found.epsilon, "arm": found.arm, "seed": seed,
                                                 "starts": found.starts, "seconds": round(found.seconds, 3)}}
    return Verdict(True, found.epsilon, metrics,
                   f"the adversary found a game-like instance with epsilon {found.epsilon:.6f} (arm "
                   f"'{found.arm}'); this is optimistic: only an SMT certificate makes a champion")


def _heldout(case: Case, systems: list[ArmSystem], subject: dict[str, Any]) -> Verdict:
    seeds = [int(s) for s in case.private.get("seeds", [1001])]
    starts = int(case.private.get("starts", 32))
    adversary = max((attack(systems, seed=s, starts=starts) for s in seeds), key=lambda r: r.epsilon)
    metrics: dict[str, Any] = {"subject": subject,
                               "adversary": {"epsilon": adversary.epsilon, "arm": adversary.arm, "seeds": seeds,
                                             "starts": starts, "seconds": round(adversary.seconds, 3)}}
    score, notes = adversary.epsilon, [f"held-out adversary: {adversary.epsilon:.6f}"]
    reason = games.executable(subject)
    if reason is None:
        budget = case.private.get("games", {})
        worst = games.worst_games(subject, seed=int(budget.get("seed", 7)), **{
            k: int(v) for k, v in budget.items() if k in ("random_games", "climbs", "steps")})
        metrics["games"] = {k: worst[k] for k in ("worst_eps", "games", "seconds")} | {
            "worst_size": worst["worst"]["size"]}
        score = max(score, worst["worst_eps"])
        notes.append(f"worst of {worst['games']} real games: {worst['worst_eps']:.6f}")
    else:
        metrics["games"] = {"skipped": reason}
        notes.append(f"real games skipped: {reason}")
    return Verdict(True, score, metrics, "; ".join(notes))


def gate(subject: Any, bound: str, settings: dict[str, Any], time_limit: float) -> dict[str, Any]:
    """One SMT call at the champion's bound minus the margin: better (proven), or a witness that it is not."""
    systems = compile_arms(parse_algorithm(subject))
    query = Fraction(bound) - Fraction(str(settings.get("gate_margin", "1/1000000")))
    decision = smt.decide(systems, query, time_limit)
    result: dict[str, Any] = {"seconds": decision.seconds, "solver": smt.solver_version(),
                              "detail": {"query": exact_text(query), "call": decision.record()}}
    if decision.status == smt.SAT:
        return result | {"status": "witness", "value": exact_text(decision.value), "value_float": float(decision.value)}
    if decision.status == smt.UNSAT:
        return result | {"status": "proven", "value": exact_text(query), "value_float": float(query)}
    return result | {"status": "unknown", "value": None, "value_float": None}


def certify(subject: Any, settings: dict[str, Any], upper: str | None, lower: float | None,
            time_limit: float) -> dict[str, Any]:
    """Bisection to the stated width within the time limit: a proven bound, or uncertified."""
    algorithm = parse_algorithm(subject)
    systems = compile_arms(algorithm)
    started = time.monotonic()
    cert = smt.certify(systems, width=Fraction(str(settings.get("width", "1/1000000"))), time_budget=time_limit,
                       call_timeout=float(settings.get("call_timeout", 300)),
                       upper=None if upper is None else Fraction(upper), estimate=lower,
                       hint=algorithm.bound_hint, polish=polish)
    proven = cert.upper < 1 or upper is not None  # 1 is the trivial bound, not a certificate
    detail = {"calls": [d.record() for d in cert.calls], "stopped": cert.stopped, "lower_exact": exact_text(cert.lower)}
    return {
        "status": "proven" if proven else "uncertified",
        "bound": exact_text(cert.upper) if proven else None,
        "bound_float": float(cert.upper) if proven else None,
        "lower": float(cert.lower),
        "width": float(cert.width()) if proven else None,
        "calls": len(cert.calls),
        "seconds": time.monotonic() - started,
        "solver": smt.solver_version(),
        "detail": detail,
    }


def exact_text(value: Fraction | None) -> str:
    """A rational as an exact decimal when it has one of at most 12 places, else p/q."""
    if value is None:
        return ""
    for places in range(13):
        scaled = value * 10**places
        if scaled.denominator == 1:
            digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
            sign = "-" if value < 0 else ""
            return sign + (digits[:-places] + "." + digits[-places:] if places else digits)
    return f"{value.numerator}/{value.denominator}"
