"""Verifier for the SAT problem: every answer checked, PAR-2 scoring.

The candidate's `solve(num_vars, clauses)` returns one of
    [l1, l2, ..., ln]   a model: each variable 1..n exactly once, as v (true) or -v (false)
    "UNSAT"             the formula has no model
    None                no answer (gave up)
A model must satisfy every clause. An UNSAT claim is checked against the case's
trusted label (SATLIB's uuf sets are unsatisfiable by construction; generated
instances were labelled by a reference solver when the set was built), and the
label is tied to the formula by a hash the verifier recomputes. Any wrong or
malformed answer makes the verdict invalid, which disqualifies the program, as
in the SAT Competition. A timeout, crash, exception or no answer is a valid,
unsolved instance scored 2 x the time limit (PAR-2); a solved one scores the CPU
time of the candidate's whole process tree on it, measured outside the candidate
(`run.cpu_seconds`): unlike wall time, it does not grow when other work shares the
machine, so the search selects on the solver, not on the load. The formula's hash and the
model checks are shared code (evaluators/dimacs.py, evaluators/sat_answers.py).
"""

from __future__ import annotations

from typing import Any

from evaluators.dimacs import instance_hash
from evaluators.sat_answers import LabelError, falsified_clause, last_line, model_fault, par_score, solved, unsolved
from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun

UNSOLVED_STATUSES = {"timeout", "error", "crashed"}  # the SAT Competition counts these as unsolved


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    limit = float(settings["time_limit"])
    penalty = float(settings.get("par_factor", 2.0)) * limit
    num_vars, clauses = _formula(case)
    label = case.private.get("label")
    if label not in ("SAT", "UNSAT"):
        raise LabelError(f"case {case.id!r} has no trusted label ('SAT' or 'UNSAT') in its private data")

    if run.status in UNSOLVED_STATUSES:
        reason = {"timeout": f"timed out after {limit:g} s", "error": "raised an exception",
                  "crashed": "the process died"}[run.status]
        detail = last_line(run.message) if run.status == "error" else ""
        return unsolved(penalty, f"unsolved: {reason}{': ' + detail if detail else ''}", run.status)
    if run.status != "ok":
        return Verdict(False, feedback=f"invalid: {run.status}: {run.message}".strip())

    output = run.output
    if output is None:
        return unsolved(penalty, "unsolved: returned None (no answer)", "none")
    if output == "UNSAT":
        if label == "UNSAT":
            return solved(run, "UNSAT")
        return Verdict(False, feedback="WRONG: the UNSAT claim is not correct")
    if output == "SAT":
        return Verdict(False, feedback="WRONG: claimed SAT without a model; a SAT answer is the model itself "
                                       "(a list of literals)")
    if isinstance(output, str):
        return Verdict(False, feedback=f"malformed output {output[:30]!r}: return a model (list of literals), "
                                       "'UNSAT' or None")
    if not isinstance(output, list):
        return Verdict(False, feedback=f"malformed output of type {type(output).__name__}: return a model "
                                       "(list of literals), 'UNSAT' or None")
    problem = model_fault(output, num_vars) or falsified_clause(output, clauses)
    if problem:
        # Nothing about the label: a wrong model says nothing of whether a model exists.
        return Verdict(False, feedback=f"WRONG model: {problem}")
    if label == "UNSAT":
        raise LabelError(f"case {case.id!r} is labelled UNSAT but a model satisfies every clause; "
                         "the benchmark is wrong: rebuild it with problems/sat/build_instances.py")
    return solved(run, "SAT")


def aggregate(verdicts: list[Verdict], settings: dict[str, Any]) -> float:
    """PAR-2: mean CPU seconds per instance, an unsolved one counting as 2 x the time limit."""
    return par_score(verdicts)


def _formula(case: Case) -> tuple[int, list[list[int]]]:
    num_vars, clauses = case.inputs["num_vars"], case.inputs["clauses"]
    expected = case.private.get("sha256")
    if instance_hash(num_vars, clauses) != expected:
        raise LabelError(f"case {case.id!r}: the formula does not match the hash its label was stored with; "
                         "rebuild cases.json with problems/sat/build_instances.py")
    return num_vars, clauses
