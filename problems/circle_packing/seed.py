"""Circle packing: place n circles in the unit square, maximizing the sum of radii.

The evolvable part chooses where the centres go; `largest_radii` (fixed) then
gives each circle the largest radius that keeps the packing valid.
"""

import math

import numpy as np


# EVOLVE-BLOCK-START
def place_centers(n: int) -> np.ndarray:
    """Centres on a slightly shrunken square grid, row by row."""
    side = math.ceil(math.sqrt(n))
    margin = 0.1
    step = (1.0 - 2 * margin) / max(side - 1, 1)
    centers = []
    for i in range(n):
        row, col = divmod(i, side)
        centers.append([margin + col * step, margin + row * step])
    return np.array(centers, dtype=float)
# EVOLVE-BLOCK-END


def largest_radii(centers: np.ndarray) -> np.ndarray:
    """Radii bounded by the walls, then shrunk pairwise until nothing overlaps."""
    centers = np.clip(centers, 0.0, 1.0)
    radii = np.minimum.reduce([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]])
    for i in range(len(centers)):
        for j in range(i + 1, len(centers)):
            gap = float(np.linalg.norm(centers[i] - centers[j]))
            if radii[i] + radii[j] > gap:
                scale = gap / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii


def construct(n: int) -> dict:
    centers = np.clip(place_centers(n)[:n], 0.0, 1.0)
    radii = largest_radii(centers) * (1 - 1e-12)
    return {"centers": centers.tolist(), "radii": radii.tolist()}
