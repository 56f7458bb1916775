"""Verifier for cap sets in F_3^n: exact check of the cap property, score = size.

The candidate returns the cap set itself: a list of vectors, each a list of n
integers in {0, 1, 2}. The answer is valid only if every vector is well formed,
no vector repeats, and no three distinct vectors lie on a line, i.e. for every
pair x != y the third point -(x + y) mod 3 is not in the set. Anything else
(wrong type or length, bools, floats, out-of-range digits, duplicates, a line)
makes the answer invalid, with feedback naming the first offending entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun

ROWS_PER_CHUNK = 64  # pair check in row blocks: bounded memory, early exit on the first line


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    n = int(case.inputs["n"])
    try:
        vectors = parse_vectors(run.output, n)
    except ValueError as problem:
        return Verdict(False, feedback=str(problem))
    line = find_line(vectors)
    if line is not None:
        x, y, z = (vectors[i].tolist() for i in line)
        return Verdict(False, feedback=f"not a cap set: {x} + {y} + {z} = 0 mod 3 (vectors {line[0]}, "
                                       f"{line[1]} and {line[2]} lie on a line)")
    size = len(vectors)
    best = case.private.get("best_known")
    metrics = {"n": n, "size": size, "seconds": run.seconds}
    note = ""
    if best is not None:
        metrics["best_known"] = best
        note = f" (best known {best})"
    return Verdict(True, float(size), metrics, f"cap set of size {size} in F_3^{n}{note}")


def parse_vectors(output: Any, n: int) -> np.ndarray:
    """An (m, n) int8 array of distinct vectors over {0, 1, 2}, or ValueError saying what is wrong."""
    if not isinstance(output, list):
        raise ValueError(f"expected a list of vectors, got {type(output).__name__}")
    if len(output) > 3**n:
        raise ValueError(f"{len(output)} vectors, but F_3^{n} has only {3**n}")
    for i, vector in enumerate(output):
        if not isinstance(vector, list) or len(vector) != n:
            got = f"length {len(vector)}" if isinstance(vector, list) else type(vector).__name__
            raise ValueError(f"vector {i} must be a list of {n} digits; got {got}")
        for digit in vector:
            if type(digit) is not int or not 0 <= digit <= 2:
                raise ValueError(f"vector {i} contains {str(digit)[:40]!r}; digits must be the integers 0, 1 or 2")
    vectors = np.array(output, dtype=np.int8).reshape(len(output), n)
    index = vectors.astype(np.int64) @ (3 ** np.arange(n - 1, -1, -1, dtype=np.int64))
    unique, first, counts = np.unique(index, return_index=True, return_counts=True)
    if len(unique) != len(index):
        repeated = int(first[np.flatnonzero(counts > 1)[0]])
        raise ValueError(f"vector {repeated} ({vectors[repeated].tolist()}) appears more than once")
    return vectors


def find_line(vectors: np.ndarray) -> tuple[int, int, int] | None:
    """Indices (i, j, k) of three distinct vectors with x + y + z = 0 mod 3, or None for a cap set."""
    m, n = vectors.shape
    if m < 3:
        return None
    powers = 3 ** np.arange(n - 1, -1, -1, dtype=np.int64)
    index = vectors.astype(np.int64) @ powers
    position = np.full(3**n, -1, dtype=np.int64)  # vector index -> its row, -1 when absent
    position[index] = np.arange(m)
    for start in range(0, m, ROWS_PER_CHUNK):
        rows = vectors[start : start + ROWS_PER_CHUNK]
        third = (-(rows[:, None, :] + vectors[None, :, :])) % 3  # int8: values stay in -4..0 before mod
        where = position[third.astype(np.int64) @ powers]  # (chunk, m)
        # x + x + z = 0 gives z = x: a pair needs two different vectors.
        where[np.arange(len(rows)), np.arange(start, start + len(rows))] = -1
        hits = np.argwhere(where >= 0)
        if hits.size:
            i, j = int(hits[0, 0]) + start, int(hits[0, 1])
            return i, j, int(where[hits[0, 0], hits[0, 1]])
    return None
