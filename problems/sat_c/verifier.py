"""Verifier for sat_c: the compiled solver's DIMACS output, every answer checked, PAR-2 on CPU time.

The candidate reads the case's DIMACS text on stdin and prints, SAT Competition style,
    s SATISFIABLE      followed by `v` lines holding one literal per variable and a final 0
    s UNSATISFIABLE
    s UNKNOWN          (or no `s` line at all): gave up, unsolved
This module turns that text into the answer the Python SAT problem's verifier judges
(`evaluators/sat.py`: a model list, "UNSAT" or None) and lets it decide, so both problems apply the
same rules: a model must give every variable exactly once and satisfy every clause; an UNSAT answer
is accepted only on a case whose trusted label (computed when the benchmark was built by two
reference solvers that agreed) says UNSAT, and the label is tied to the formula by its hash; any
wrong or malformed answer invalidates the program; a timeout, crash or no answer scores 2 x the
time limit; a solved case scores the CPU time of the candidate's whole process tree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from evaluators import sat
from evaluators.dimacs import DimacsError, parse_dimacs
from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun

aggregate = sat.aggregate  # PAR-2: the mean of the per-case scores
_formulas: dict[str, tuple[int, list[list[int]]]] = {}  # parsed once per process: DIMACS text -> formula


class OutputError(ValueError):
    """The candidate's output does not follow the DIMACS answer format."""


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    num_vars, clauses = _formula(case)
    as_python = Case(case.id, case.split, {"num_vars": num_vars, "clauses": clauses}, case.private)
    if run.status != "ok":
        return sat.verify(as_python, run, settings)
    try:
        answer = parse_answer(run.output)
    except OutputError as error:
        return Verdict(False, feedback=f"malformed output: {error}")
    return sat.verify(as_python, dataclasses.replace(run, output=answer), settings)


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
    key = case.inputs.get("dimacs")
    if not isinstance(key, str) or key not in _formulas:
        try:
            cnf = parse_dimacs(case.inputs["dimacs"], case.id)
        except (KeyError, DimacsError) as error:
            raise sat.LabelError(f"case {case.id!r}: no readable DIMACS formula in its inputs ({error}); "
                                 "rebuild cases.json with problems/sat_c/build_benchmark.py") from None
        formula = (cnf.num_vars, [list(clause) for clause in cnf.clauses])
        # evaluators/sat.py recomputes the hash on every case; a mismatch is a fault of the benchmark
        sat._formula(Case(case.id, case.split, {"num_vars": formula[0], "clauses": formula[1]}, case.private))
        _formulas[key] = formula
    return _formulas[key]
