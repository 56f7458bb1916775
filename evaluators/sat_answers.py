"""Checks of a SAT solver's answer against its formula, and the PAR-2 verdicts, shared by SAT verifiers.

A model is a list of integer literals: each variable 1..n exactly once, as v
(true) or -v (false). model_fault and falsified_clause return why the answer
fails ('' when it holds), in words a candidate's feedback can show.
"""

from __future__ import annotations

from typing import Any

from evolve.problem import Verdict
from evolve.sandbox.base import CaseRun


class LabelError(RuntimeError):
    """The benchmark itself is inconsistent: a fault of the problem, never of the candidate."""


def solved(run: CaseRun, answer: str) -> Verdict:
    """A correct answer scores the CPU seconds the solver took."""
    cpu = float(run.cpu_seconds)
    return Verdict(True, cpu, {"solved": True, "answer": answer, "cpu_seconds": cpu, "seconds": float(run.seconds)},
                   f"solved ({answer}) in {cpu:.3f} s of CPU")


def unsolved(penalty: float, feedback: str, reason: str) -> Verdict:
    """No answer (timeout, crash, unknown) is valid and scores the PAR penalty."""
    return Verdict(True, penalty, {"solved": False, "answer": None, "reason": reason}, feedback)


def par_score(verdicts: list[Verdict]) -> float:
    """PAR-2: mean CPU seconds per formula, an unsolved one counting as its penalty."""
    return sum(v.score for v in verdicts) / len(verdicts)


def last_line(message: str) -> str:
    """The last non-blank line of an error message, cut to 200 characters."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""

SHOWN_ITEMS = 5  # how many offending variables a message lists


def model_fault(model: list[Any], num_vars: int) -> str:
    """Why `model` is not a full, consistent assignment ('' when it is one)."""
    seen: dict[int, int] = {}
    for position, literal in enumerate(model):
        if type(literal) is not int:
            return f"entry {position} is {type(literal).__name__} {str(literal)[:20]!r}, not an integer literal"
        if literal == 0 or abs(literal) > num_vars:
            return f"literal {literal} (entry {position}) is outside ±1..{num_vars}"
        var = abs(literal)
        if var in seen:
            kind = "both signs" if seen[var] != literal else "twice"
            return f"variable {var} is assigned {kind}"
        seen[var] = literal
    if len(seen) < num_vars:
        missing = [v for v in range(1, num_vars + 1) if v not in seen]
        shown = ", ".join(map(str, missing[:SHOWN_ITEMS])) + (", ..." if len(missing) > SHOWN_ITEMS else "")
        return f"partial assignment: {len(missing)} of {num_vars} variables unassigned ({shown})"
    return ""


def falsified_clause(model: list[int], clauses: list[list[int]]) -> str:
    """The first clause a (well-formed) model leaves false ('' when it satisfies all)."""
    true = set(model)
    for index, clause in enumerate(clauses):
        if not any(literal in true for literal in clause):
            return f"clause {index + 1} {clause} is falsified"
    return ""
