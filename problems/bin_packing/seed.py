"""Online bin packing, FunSearch's set-up: items arrive one by one, `priority` picks the bin.

`pack` (fixed) starts with one empty bin per item and, for each item in turn,
asks `priority(item, bins)` to score every bin that still has room for it
(`bins` holds their remaining capacities); the item goes into the bin with the
highest score (ties: the lowest-numbered bin). A constant priority is first
fit; `-(bins - item)` is best fit. Only `priority` evolves; the verifier checks
the packing it returns and counts the bins.
"""

import numpy as np


# EVOLVE-BLOCK-START
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Score of each bin with room for `item` (its remaining capacity in `bins`); highest wins."""
    gap = bins - item  # room the bin keeps if the item goes in
    score = -1.0 * gap  # best fit: the tightest bin first
    score -= 5.0 * (gap > 0) * (gap < 15.0)  # slivers too small for later items are wasted
    score += 0.05 * gap ** 2 / item  # ...while a roomy bin stays useful
    score -= 2.0 * (bins == bins.max())  # the roomiest bins (often empty ones) come last
    return score
# EVOLVE-BLOCK-END


def pack(items: list[int], capacity: int) -> list[int]:
    """The bin of each item, packed online in the given order."""
    bins = np.full(len(items), capacity, dtype=float)
    assignment = []
    for item in items:
        fits = np.flatnonzero(bins >= item)
        # A scalar score applies to every bin; any other shape mismatch is an error.
        scores = np.broadcast_to(np.asarray(priority(item, bins[fits]), dtype=float), fits.shape)
        best = int(fits[np.argmax(scores)])
        bins[best] -= item
        assignment.append(best)
    return assignment


def construct(items: list[int], capacity: int) -> list[int]:
    return pack(items, capacity)
