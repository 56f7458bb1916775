"""Verifier for bin packing: every item packed exactly once, no bin over capacity.

The candidate returns its packing as the bin of each item: a list with one
integer per item, in the order the items were given (`assignment[i]` is the
bin of item i; bin labels are any integers in [0, number of items)). One label
per item means no item is dropped or packed twice. The verifier sums each bin's
load exactly and counts the bins used. It does not check that the packing came
from an online rule; a better offline packing is simply a better answer.

Score per instance: excess bins over the L1 bound ceil(sum(items) / capacity),
in percent. `aggregate` follows the published figures (FunSearch): per
benchmark set, (mean bins - mean L1 bound) / mean L1 bound, then the mean over
the sets in the split. Lower is better.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from evolve.problem import Case, Verdict
from evolve.sandbox.base import CaseRun


def verify(case: Case, run: CaseRun, settings: dict[str, Any]) -> Verdict:
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}".strip())
    items = np.asarray(case.inputs["items"], dtype=np.int64)
    capacity = int(case.inputs["capacity"])
    try:
        assignment = parse_assignment(run.output, len(items))
    except ValueError as problem:
        return Verdict(False, feedback=str(problem))
    loads = np.zeros(len(items), dtype=np.int64)
    np.add.at(loads, assignment, items)
    over = np.flatnonzero(loads > capacity)
    if over.size:
        b = int(over[0])
        return Verdict(False, feedback=f"bin {b} holds {int(loads[b])} > capacity {capacity} "
                                       f"(items {np.flatnonzero(assignment == b)[:10].tolist()})")
    bins = int(np.count_nonzero(np.bincount(assignment, minlength=len(items))))
    bound = l1_bound(items, capacity)
    excess = 100.0 * (bins - bound) / bound
    metrics = {"set": case.private.get("set", ""), "bins": bins, "l1_bound": bound, "seconds": run.seconds}
    if "best_known" in case.private:
        metrics["best_known"] = case.private["best_known"]
    return Verdict(True, excess, metrics, f"{bins} bins, L1 bound {bound} ({excess:.2f}% excess)")


def aggregate(verdicts: list[Verdict], settings: dict[str, Any]) -> float:
    """Mean over benchmark sets of each set's excess of mean bins over mean L1 bound, in percent."""
    by_set: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_set[verdict.metrics.get("set", "")].append(verdict)
    return float(np.mean([set_excess(group) for group in by_set.values()]))


def set_excess(verdicts: list[Verdict]) -> float:
    bins = np.mean([v.metrics["bins"] for v in verdicts])
    bound = np.mean([v.metrics["l1_bound"] for v in verdicts])
    return float(100.0 * (bins - bound) / bound)


def l1_bound(items: np.ndarray, capacity: int) -> int:
    """ceil(total size / capacity): no packing can use fewer bins (at least 1 for non-empty input)."""
    return max(1, -(-int(items.sum()) // capacity))


def parse_assignment(output: Any, count: int) -> np.ndarray:
    """The bin label of each item as an int64 array, or ValueError saying what is wrong."""
    if not isinstance(output, list):
        raise ValueError(f"expected a list with the bin of each item, got {type(output).__name__}")
    if len(output) != count:
        raise ValueError(f"expected one bin per item ({count} items), got {len(output)} entries: "
                         "every item must be packed exactly once")
    for i, label in enumerate(output):
        if type(label) is not int or not 0 <= label < count:
            raise ValueError(f"item {i} has bin {str(label)[:40]!r}; bins must be integers in [0, {count})")
    return np.asarray(output, dtype=np.int64)
