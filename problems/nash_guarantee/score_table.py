"""Certifies the baseline algorithms with the problem's own verifier and prints the README table.

    python problems/nash_guarantee/score_table.py [dmp kps bbm ts dfm] [--width 1/1000000]

Each baseline (baselines/*.json, data only) goes through the same steps as a candidate:
validation, the search adversary (its estimate seeds the bisection), then certification by
bisection with Z3 to the stated width. Times are wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evolve.problem import Case, load_verifier  # noqa: E402
from evolve.sandbox.base import CaseRun  # noqa: E402

verifier = load_verifier(HERE / "verifier.py")
ORDER = ["dmp", "kps", "bbm", "ts", "dfm"]


def blocks(algorithm: dict) -> str:
    steps = list(algorithm.get("steps", []))
    names = [s["block"] for s in steps]
    if algorithm.get("branch"):
        branch = algorithm["branch"]
        names.append("branch(" + ", ".join(s["block"] for s in branch["then"]) + " / "
                     + ", ".join(s["block"] for s in branch["else"]) + ")")
    return ", ".join(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=ORDER)
    parser.add_argument("--width", default="1/1000000")
    parser.add_argument("--time-limit", type=float, default=1800.0)
    args = parser.parse_args()
    settings = {"search_starts": 8, "width": args.width, "call_timeout": args.time_limit}
    print("| algorithm | blocks | literature | certified here | witness (lower) | SMT calls | time |")
    print("|---|---|---|---|---|---|---|")
    for name in args.names:
        data = json.loads((HERE / "baselines" / f"{name}.json").read_text())
        started = time.monotonic()
        case = Case("constraints", "search", {}, {"seed": 1})
        verdict = verifier.verify(case, CaseRun("constraints", "ok", data["algorithm"], 0.0, ""), settings)
        if not verdict.valid:
            raise SystemExit(f"{name}: {verdict.feedback}")
        result = verifier.certify(verdict.metrics["subject"], settings, None, verdict.score, args.time_limit)
        seconds = time.monotonic() - started
        bound = f"≤ {result['bound']}" if result["status"] == "proven" else "uncertified"
        hint = " (hint)" if data["algorithm"].get("hints") else ""
        print(f"| {data['name']} | {blocks(data['algorithm'])} | {data['literature']} | {bound}{hint} | "
              f"{result['lower']:.7f} | {result['calls']} | {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
