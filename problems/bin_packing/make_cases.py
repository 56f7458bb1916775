"""Writes cases.json from the benchmark files in data/ (kept unchanged from their sources).

Search: OR-Library sets OR1 (u120) and OR2 (u250). Held out: OR3 (u500), OR4 (u1000) and
FunSearch's Weibull 5k. Run from anywhere: `python problems/bin_packing/make_cases.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SEARCH_SETS = {"OR1": "binpack1.txt", "OR2": "binpack2.txt"}
HELDOUT_SETS = {"OR3": "binpack3.txt", "OR4": "binpack4.txt"}


def read_orlib(path: Path) -> list[dict]:
    """OR-Library format: instance count, then per instance a name, `capacity n best_known`, n items."""
    tokens = path.read_text().split()
    count, position, instances = int(tokens[0]), 1, []
    for _ in range(count):
        name = tokens[position]
        capacity, n, best = (int(t) for t in tokens[position + 1 : position + 4])
        items = [int(t) for t in tokens[position + 4 : position + 4 + n]]
        instances.append({"name": name, "capacity": capacity, "items": items, "best_known": best})
        position += 4 + n
    return instances


def case(set_name: str, name: str, capacity: int, items: list[int], best_known: int | None) -> dict:
    private = {"set": set_name} | ({"best_known": best_known} if best_known is not None else {})
    return {"id": f"{set_name}/{name}", "inputs": {"capacity": capacity, "items": items}, "private": private}


def build() -> dict:
    splits: dict[str, list[dict]] = {"search": [], "heldout": []}
    for split, sets in (("search", SEARCH_SETS), ("heldout", HELDOUT_SETS)):
        for set_name, file in sets.items():
            for inst in read_orlib(DATA / file):
                splits[split].append(case(set_name, inst["name"], inst["capacity"], inst["items"], inst["best_known"]))
    weibull = json.loads((DATA / "funsearch_binpacking.json").read_text())["Weibull 5k"]
    for name, inst in weibull.items():
        assert inst["num_items"] == len(inst["items"])
        splits["heldout"].append(case("Weibull 5k", name, inst["capacity"], inst["items"], None))
    return splits


if __name__ == "__main__":
    (HERE / "cases.json").write_text(json.dumps(build(), separators=(",", ":")) + "\n")
    print(f"wrote {HERE / 'cases.json'}")
