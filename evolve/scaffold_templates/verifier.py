"""{{name}}: the verifier. It runs on the host, never inside the sandbox.

`verify(case, run, settings)` judges one case. `run.output` is whatever the
candidate's entry function returned, as untrusted JSON data: check its type,
shape and every value before using it, and recompute the score yourself from
the answer (never trust a score the candidate reports). `case.private` holds
data the candidate never sees (here: each instance's optimum).

Return a Verdict: valid=False (with feedback saying why) disqualifies the
program; otherwise `score` must be a finite number. `metrics` are stored with
the evaluation; `feedback` is shown to the proposer in the next prompt.
"""

from __future__ import annotations

from typing import Any

from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    if run.status != "ok":  # error, timeout, crashed, oversize, ...: no answer to judge
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    values, weights = case.inputs["values"], case.inputs["weights"]
    chosen = run.output
    if not isinstance(chosen, list):
        return Verdict(False, feedback=f"expected a list of item indices, got {type(chosen).__name__}")
    for index in chosen:
        if type(index) is not int or not 0 <= index < len(values):  # bools, floats, strings are not indices
            return Verdict(False, feedback=f"{str(index)[:40]!r} is not an item index in [0, {len(values)})")
    if len(set(chosen)) != len(chosen):
        return Verdict(False, feedback="an item is packed more than once")
    weight = sum(weights[i] for i in chosen)
    if weight > case.inputs["capacity"]:
        return Verdict(False, feedback=f"total weight {weight} exceeds the capacity {case.inputs['capacity']}")
    value = sum(values[i] for i in chosen)
    optimum = case.private["optimum"]
    return Verdict(True, value / optimum, {"value": value, "optimum": optimum, "weight": weight},
                   f"value {value} of optimum {optimum}")


def aggregate(verdicts: list[Verdict], settings: dict[str, Any]) -> float:
    """One score per split from the valid case verdicts (optional: the default is this mean)."""
    return sum(v.score for v in verdicts) / len(verdicts)
