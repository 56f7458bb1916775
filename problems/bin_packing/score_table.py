"""Prints the per-set excess (%) of first fit, best fit and the given programs, scored by the verifier.

    python problems/bin_packing/score_table.py problems/bin_packing/seed.py best.py

The programs run in this process, not in a sandbox: use it on your own files only.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evolve.problem import Case  # noqa: E402
from evolve.sandbox.base import CaseRun  # noqa: E402

SETS = ["OR1", "OR2", "OR3", "OR4", "Weibull 5k"]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_fit(items, capacity):
    return fit(items, capacity, lambda gaps: 0)


def best_fit(items, capacity):
    return fit(items, capacity, lambda gaps: min(range(len(gaps)), key=gaps.__getitem__))


def fit(items, capacity, pick):
    loads, assignment = [], []
    for item in items:
        fits = [b for b, load in enumerate(loads) if load + item <= capacity]
        if fits:
            spot = fits[pick([capacity - loads[b] - item for b in fits])]
        else:
            spot = len(loads)
            loads.append(0)
        loads[spot] += item
        assignment.append(spot)
    return assignment


def table(solvers: dict) -> None:
    verifier = load(HERE / "verifier.py", "bin_packing_verifier")
    data = json.loads((HERE / "cases.json").read_text())
    cases = [Case(c["id"], split, c["inputs"], c["private"]) for split in data for c in data[split]]
    print("| program | " + " | ".join(SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    for label, solve in solvers.items():
        row = []
        for set_name in SETS:
            verdicts = [verifier.verify(case, CaseRun(case.id, "ok", solve(**case.inputs), 0.0), {})
                        for case in cases if case.private["set"] == set_name]
            assert all(v.valid for v in verdicts), [v.feedback for v in verdicts if not v.valid][:1]
            row.append(f"{verifier.set_excess(verdicts):.2f}")
        print(f"| {label} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    solvers = {"first fit": first_fit, "best fit": best_fit}
    for i, arg in enumerate(sys.argv[1:]):
        solvers[arg] = load(Path(arg), f"program_{i}").construct
    table(solvers)
