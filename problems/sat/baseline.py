"""Baseline table: solved count and PAR-2 of solvers on the SAT benchmark, both splits.

    python problems/sat/baseline.py [--repeats 3] [--program NAME=PATH ...]

Every program runs through the same path as a search candidate: the process
sandbox, the runner's outside timing (CPU time of the candidate's process tree),
the verifier and its PAR-2 aggregate. Each program is measured `--repeats`
times, interleaved, and the median PAR-2 is reported with the range. Defaults: the seed and MiniSat 2.2 (needs `pip install python-sat`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from pathlib import Path

from evolve.config import compose_config
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem
from evolve.sandbox.base import SandboxLimits
from evolve.sandbox.process import ProcessSandbox

HERE = Path(__file__).resolve().parent
DEFAULTS = {"seed": HERE / "seed.py", "minisat22 (python-sat)": HERE / "reference_minisat.py"}


async def measure(programs: dict[str, str], repeats: int, overrides: list[str]) -> dict[tuple[str, str], list]:
    problem = load_problem(compose_config(["problem=sat", *overrides]))
    evaluator = Evaluator(problem, ProcessSandbox(), SandboxLimits(case_timeout=problem.case_timeout), "baseline")
    results: dict[tuple[str, str], list[Evaluation]] = {}
    for _ in range(repeats):
        for name, code in programs.items():
            for split in ("search", "heldout"):
                results.setdefault((name, split), []).append(await evaluator.evaluate(code, split))
    return results


def row(name: str, split: str, runs: list[Evaluation]) -> str:
    if not all(run.valid for run in runs):
        bad = next(run for run in runs if not run.valid)
        return f"| {name} | {split} | INVALID | - | {bad.feedback.splitlines()[0][:80]} |"
    scores = [run.score for run in runs]
    solved = [sum(bool(v.metrics.get("solved")) for v in run.verdicts.values()) for run in runs]
    total = len(runs[0].verdicts)
    solved_text = f"{min(solved)}/{total}" if min(solved) == max(solved) else f"{min(solved)}-{max(solved)}/{total}"
    return (f"| {name} | {split} | {solved_text} | {statistics.median(scores):.3f} | "
            f"{min(scores):.3f} - {max(scores):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--program", action="append", default=[], metavar="NAME=PATH",
                        help="another program to measure (e.g. a run's best)")
    parser.add_argument("--no-defaults", action="store_true", help="measure only the --program entries")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. problem.case_timeout=2")
    args = parser.parse_args()
    paths = {} if args.no_defaults else dict(DEFAULTS)
    for item in args.program:
        name, _, path = item.partition("=")
        if not name or not Path(path).is_file():
            parser.error(f"--program {item!r}: expected NAME=PATH of an existing program file")
        paths[name] = Path(path)
    programs = {name: path.read_text() for name, path in paths.items()}
    before = os.getloadavg()[0]
    results = asyncio.run(measure(programs, args.repeats, args.overrides))
    print(f"{os.cpu_count()} cores, {args.repeats} interleaved repeats, 1-min load average {before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print("| program | split | solved | PAR-2 (median, s) | range (s) |")
    print("|---|---|---|---|---|")
    for (name, split), runs in results.items():
        print(row(name, split, runs))


if __name__ == "__main__":
    main()
