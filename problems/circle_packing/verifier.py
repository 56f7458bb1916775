"""Verifier for circle packing in the unit square: exact checks, sum of radii.

Every circle must lie inside [0, 1]^2 and no two may overlap, each within the
stated tolerance (records sit exactly on tangencies). Any malformed value
(wrong shape or count, NaN, inf, negative radius, non-number) makes the answer
invalid with feedback that says which value and why. The checks themselves are
shared geometry (evaluators/geometry.py).
"""

from __future__ import annotations

from typing import Any

from evaluators.geometry import circles_fault, real_array
from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    n = int(case.inputs["n"])
    tolerance = float(settings.get("tolerance", 1e-9))
    output = run.output
    if not isinstance(output, dict) or set(output) != {"centers", "radii"}:
        return Verdict(False, feedback='expected {"centers": [[x, y], ...], "radii": [...]}')
    try:
        centers = real_array(output["centers"], (n, 2), "centers")
        radii = real_array(output["radii"], (n,), "radii")
    except ValueError as problem:
        return Verdict(False, feedback=str(problem))
    fault = circles_fault(centers, radii, tolerance)
    if fault:
        return Verdict(False, feedback=fault)
    total = float(radii.sum())
    return Verdict(True, total, {"sum_radii": total, "seconds": run.seconds}, f"sum of radii {total:.6f} for n={n}")
