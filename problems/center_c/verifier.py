"""Verifier of center_c: the printed centre's mean absolute distance to the case's values (minimize)."""

import math

from evolve.problem import Verdict


def verify(case, run, settings) -> Verdict:
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    centre = run.output
    if isinstance(centre, bool) or not isinstance(centre, (int, float)) or not math.isfinite(centre):
        return Verdict(False, feedback=f"the program printed {str(centre)[:80]!r}, not a finite number")
    values = [float(text) for text in case.inputs["values"].split()]
    distance = sum(abs(centre - value) for value in values) / len(values)
    median = sorted(values)[len(values) // 2]
    best = sum(abs(median - value) for value in values) / len(values)
    return Verdict(True, distance, {"centre": centre, "median": median},
                   feedback=f"mean distance {distance:.4f} (the median would give {best:.4f})")
