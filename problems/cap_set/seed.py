"""Cap set in F_3^n, FunSearch's set-up: a greedy construction driven by `priority`.

`build_cap_set` (fixed) scores every vector of {0, 1, 2}^n with `priority`,
then repeatedly adds the highest-priority vector that keeps the set a cap set
(no three distinct vectors x, y, z with x + y + z = 0 mod 3). Only `priority`
evolves; the construction it returns is checked exactly by the verifier.
"""

import itertools

import numpy as np


# EVOLVE-BLOCK-START
def priority(vector: tuple[int, ...], n: int) -> float:
    """How eagerly `vector` is added to the cap set; larger goes first."""
    zeros = vector.count(0)
    ones = vector.count(1)
    twos = vector.count(2)
    # Pairs of coordinates mirrored about the middle that agree / are both zero.
    mirrored = sum(vector[i] == vector[n - 1 - i] for i in range(n // 2))
    mirrored_zeros = sum(vector[i] == vector[n - 1 - i] == 0 for i in range(n // 2))
    score = 1.0 * zeros + 0.5 * ones
    score += 0.5 * zeros * ones
    score -= 0.5 * ones * twos
    score -= 1.0 * mirrored
    score -= 0.5 * mirrored_zeros
    score -= 0.5 * zeros * zeros
    return score
# EVOLVE-BLOCK-END


def build_cap_set(n: int) -> np.ndarray:
    """Greedy: take vectors by decreasing priority, skipping any that would complete a line."""
    vectors = np.array(list(itertools.product((0, 1, 2), repeat=n)), dtype=np.int64)
    # Index of a vector = its digits in base 3 (matches itertools.product's order).
    powers = 3 ** np.arange(n - 1, -1, -1)
    priorities = np.array([float(priority(tuple(v), n)) for v in vectors.tolist()], dtype=float)
    priorities[~np.isfinite(priorities)] = -1e300  # NaN/inf priorities still get a place, last
    available = np.ones(len(vectors), dtype=bool)
    chosen: list[int] = []
    order = np.argsort(-priorities, kind="stable")  # ties keep lexicographic order
    for index in order:
        if not available[index]:
            continue
        chosen.append(int(index))
        # Every third point on a line through the new vector and a chosen one is now forbidden.
        members = vectors[chosen]
        blocked = ((-(members + vectors[index])) % 3) @ powers
        available[blocked] = False
        available[index] = False
    return vectors[chosen]


def construct(n: int) -> list[list[int]]:
    return build_cap_set(n).tolist()
