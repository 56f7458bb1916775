"""Verifier for sat_c: the compiled solver's DIMACS output, every answer checked, PAR-2 on CPU time.

The candidate reads the case's DIMACS text on stdin and prints, SAT Competition style,
    s SATISFIABLE      followed by `v` lines holding one literal per variable and a final 0
    s UNSATISFIABLE
    s UNKNOWN          (or no `s` line at all): gave up, unsolved
The rules are the Python SAT problem's (problems/sat/verifier.py), with the same shared checks
(evaluators/sat_answers.py, evaluators/dimacs.py): a model must give every variable exactly once
and satisfy every clause; an UNSAT answer is accepted only on a case whose trusted label (computed
when the benchmark was built by two reference solvers that agreed) says UNSAT, and the label is tied
to the formula by a hash recomputed here; a wrong or malformed answer invalidates the program, as in
the SAT Competition; a timeout, crash, non-zero exit or no answer is a valid, unsolved case scored
par_factor x the time limit (PAR-2); a solved case scores the CPU time of the candidate's whole
process tree (`run.cpu_seconds`, measured outside the candidate).
"""

from __future__ import annotations

from typing import Any

from evaluators.dimacs import DimacsError, instance_hash, parse_dimacs
from evaluators.sat_answers import LabelError, falsified_clause, last_line, model_fault, par_score, solved, unsolved
from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun

UNSOLVED_STATUSES = {"timeout": "timed out", "error": "exited with an error", "crashed": "the process died"}
_formulas: dict[str, tuple[int, list[list[int]]]] = {}  # parsed once per process: DIMACS text -> formula


class OutputError(ValueError):
    """The candidate's output does not follow the DIMACS answer format."""


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    limit = float(settings["time_limit"])
    penalty = float(settings.get("par_factor", 2.0)) * limit
    num_vars, clauses = _formula(case)
    label = case.private.get("label")
    if label not in ("SAT", "UNSAT"):
        raise LabelError(f"case {case.id!r} has no trusted label ('SAT' or 'UNSAT') in its private data")
    if run.status in UNSOLVED_STATUSES:
        detail = last_line(run.message) if run.status == "error" else ""
        reason = UNSOLVED_STATUSES[run.status] + (f" after {limit:g} s" if run.status == "timeout" else "")
        return unsolved(penalty, f"unsolved: {reason}{': ' + detail if detail else ''}", run.status)
    if run.status != "ok":
        return Verdict(False, feedback=f"invalid: {run.status}: {run.message}".strip())
    try:
        answer = parse_answer(run.output)
    except OutputError as error:
        return Verdict(False, feedback=f"malformed output: {error}")
    if answer is None:
        return unsolved(penalty, "unsolved: no answer (s UNKNOWN)", "none")
    if answer == "UNSAT":
        if label == "UNSAT":
            return solved(run, "UNSAT")
        return Verdict(False, feedback="WRONG: the UNSAT claim is not correct")
    fault = model_fault(answer, num_vars) or falsified_clause(answer, clauses)
    if fault:
        # Nothing about the label: a wrong model says nothing of whether a model exists.
        return Verdict(False, feedback=f"WRONG model: {fault}")
    if label == "UNSAT":
        raise LabelError(f"case {case.id!r} is labelled UNSAT but a model satisfies every clause; "
                         "the benchmark is wrong: rebuild it with problems/sat_c/build_benchmark.py")
    return solved(run, "SAT")


def aggregate(verdicts: list[Verdict], settings: dict[str, Any]) -> float:
    """PAR-2: mean CPU seconds per formula, an unsolved one counting as par_factor x the time limit."""
    return par_score(verdicts)


def parse_answer(output: Any) -> list[int] | str | None:
    """The solver's stdout as a model (list of literals), "UNSAT" or None (no answer)."""
    if not isinstance(output, str):
        raise OutputError(f"expected the solver's stdout as text, got {type(output).__name__}")
    status: list[str] = []
    values: list[str] = []
    for number, line in enumerate(output.splitlines(), start=1):
        if line.startswith("s "):
            status.append(line[2:].strip())
        elif line.startswith("v ") or line == "v":
            values.extend(line[1:].split())
        elif line.strip() and not line.startswith("c"):
            raise OutputError(f"line {number} {line[:40]!r} is not a comment (c), status (s) or value (v) line")
    if len(status) > 1:
        raise OutputError(f"{len(status)} status lines; print exactly one 's ...' line")
    if not status or status[0] == "UNKNOWN":
        if values:
            raise OutputError("value lines without 's SATISFIABLE'")
        return None
    if status[0] == "UNSATISFIABLE":
        if values:
            raise OutputError("value lines after 's UNSATISFIABLE'")
        return "UNSAT"
    if status[0] != "SATISFIABLE":
        raise OutputError(f"unknown status {status[0][:30]!r}: use SATISFIABLE, UNSATISFIABLE or UNKNOWN")
    literals = []
    for token in values:
        try:
            literals.append(int(token))
        except ValueError:
            raise OutputError(f"value {token[:20]!r} is not an integer literal") from None
    if not literals or literals[-1] != 0 or 0 in literals[:-1]:
        raise OutputError("the model must end with a single 0 after the last literal")
    return literals[:-1]


def _formula(case: Case) -> tuple[int, list[list[int]]]:
    """The case's formula, checked against the hash its label was stored with."""
    text = case.inputs.get("dimacs")
    if not isinstance(text, str):
        raise LabelError(f"case {case.id!r} has no DIMACS text in inputs['dimacs']; "
                         "rebuild cases.json with problems/sat_c/build_benchmark.py")
    if text not in _formulas:
        try:
            cnf = parse_dimacs(text, case.id)
        except DimacsError as error:
            raise LabelError(f"case {case.id!r}: its DIMACS text is malformed ({error}); "
                             "rebuild cases.json with problems/sat_c/build_benchmark.py") from None
        clauses = [list(clause) for clause in cnf.clauses]
        if instance_hash(cnf.num_vars, clauses) != case.private.get("sha256"):
            raise LabelError(f"case {case.id!r}: the formula does not match the hash its label was stored with; "
                             "rebuild cases.json with problems/sat_c/build_benchmark.py")
        _formulas[text] = (cnf.num_vars, clauses)
    return _formulas[text]
