"""Verifier for circle packing in the unit square: exact checks, sum of radii.

Every circle must lie inside [0, 1]^2 and no two may overlap, each within the
stated tolerance (records sit exactly on tangencies). Any malformed value
(wrong shape or count, NaN, inf, negative radius, non-number) makes the answer
invalid with feedback that says which value and why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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
        centers = _numbers(output["centers"], (n, 2), "centers")
        radii = _numbers(output["radii"], (n,), "radii")
    except ValueError as problem:
        return Verdict(False, feedback=str(problem))
    negative = np.flatnonzero(radii < 0)
    if negative.size:
        return Verdict(False, feedback=f"radius {negative[0]} is negative ({radii[negative[0]]:.6g})")
    outside = (centers - radii[:, None] < -tolerance) | (centers + radii[:, None] > 1 + tolerance)
    if outside.any():
        i = int(np.flatnonzero(outside.any(axis=1))[0])
        return Verdict(False, feedback=f"circle {i} at {centers[i].tolist()} with r={radii[i]:.6g} leaves the square")
    gaps = np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=2) - (radii[:, None] + radii[None, :])
    i_idx, j_idx = np.triu_indices(n, 1)
    overlaps = np.flatnonzero(gaps[i_idx, j_idx] < -tolerance)
    if overlaps.size:
        i, j = int(i_idx[overlaps[0]]), int(j_idx[overlaps[0]])
        return Verdict(False, feedback=f"circles {i} and {j} overlap by {-gaps[i, j]:.3g}")
    total = float(radii.sum())
    return Verdict(True, total, {"sum_radii": total, "seconds": run.seconds}, f"sum of radii {total:.6f} for n={n}")


def _numbers(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A float array of exactly `shape` built from JSON lists of real numbers only."""
    flat: list[float] = []

    def walk(item: Any, depth: int) -> None:
        if depth == len(shape):
            if type(item) not in (int, float):
                raise ValueError(f"{name} contains {type(item).__name__} {str(item)[:40]!r}, expected a number")
            if not math.isfinite(item):
                raise ValueError(f"{name} contains a non-finite value ({item})")
            flat.append(float(item))
            return
        if not isinstance(item, list) or len(item) != shape[depth]:
            got = f"length {len(item)}" if isinstance(item, list) else type(item).__name__
            raise ValueError(f"{name} must have shape {shape}; got {got} at depth {depth}")
        for element in item:
            walk(element, depth + 1)

    walk(value, 0)
    return np.array(flat, dtype=float).reshape(shape)
