"""Exact checks of circles in the unit square, shared by verifiers of packing problems.

Values come from a candidate's JSON output (untrusted): `real_array` accepts only
finite int/float entries in exactly the stated shape; `circles_fault` names the
first circle that leaves the square or overlaps another, each within `tolerance`
(records sit exactly on tangencies).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def real_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A float array of exactly `shape` built from JSON lists of real numbers only; ValueError says why not."""
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


def circles_fault(centers: np.ndarray, radii: np.ndarray, tolerance: float) -> str:
    """Why these circles are not a packing in [0, 1]^2 ('' when they are one)."""
    n = len(radii)
    negative = np.flatnonzero(radii < 0)
    if negative.size:
        return f"radius {negative[0]} is negative ({radii[negative[0]]:.6g})"
    outside = (centers - radii[:, None] < -tolerance) | (centers + radii[:, None] > 1 + tolerance)
    if outside.any():
        i = int(np.flatnonzero(outside.any(axis=1))[0])
        return f"circle {i} at {centers[i].tolist()} with r={radii[i]:.6g} leaves the square"
    gaps = np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=2) - (radii[:, None] + radii[None, :])
    i_idx, j_idx = np.triu_indices(n, 1)
    overlaps = np.flatnonzero(gaps[i_idx, j_idx] < -tolerance)
    if overlaps.size:
        i, j = int(i_idx[overlaps[0]]), int(j_idx[overlaps[0]])
        return f"circles {i} and {j} overlap by {-gaps[i, j]:.3g}"
    return ""
