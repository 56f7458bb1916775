"""Score stability under load: the same SAT solver scored on a quiet machine and on a busy one.

    python bench/score_stability.py [--repeats 10] [--program PATH] [--reference PATH] [--hogs N]
                                    [--other-python PATH]

Each repeat evaluates PROGRAM (default: the SAT seed) on the search split through the process
sandbox and the SAT verifier, calibrated against REFERENCE (default: the seed) run right next to
it on the same sandbox, and reports three scores of the same evaluation:

  wall PAR-2        the runner's wall-clock time per solved instance (what SAT used to score)
  CPU PAR-2         the CPU time of the candidate's process tree (what SAT scores now)
  calibrated        CPU PAR-2 per case divided by the reference's (problem.reference)

first with the machine as it is, then with more CPU hogs than cores, each in its own session
(`setsid`): Linux's autogroup scheduling shares the CPU between sessions first, so hogs inside
the bench's own session would barely slow it. The hogs are killed, by process group, at the end.
With --other-python, a third condition runs the sandbox on another interpreter (an older CPython
is slower on the same code): a stand-in for a slower machine, for the calibrated score.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evolve.config import compose_config  # noqa: E402
from evolve.evaluation import Evaluation, Evaluator  # noqa: E402
from evolve.problem import load_problem  # noqa: E402
from evolve.sandbox.base import SandboxLimits  # noqa: E402
from evolve.sandbox.process import ProcessSandbox  # noqa: E402

SEED = ROOT / "problems" / "sat" / "seed.py"
HOG = "while True: pass"


def scores(evaluation: Evaluation, penalty: float) -> tuple[float, float, float]:
    """(wall PAR-2, CPU PAR-2, calibrated score) of one calibrated evaluation."""
    verdicts = list(evaluation.verdicts.values())
    wall = [v.metrics["seconds"] if v.metrics.get("solved") else penalty for v in verdicts]
    cpu = [v.metrics["raw_score"] for v in verdicts]
    return statistics.fmean(wall), statistics.fmean(cpu), float(evaluation.score)  # type: ignore[arg-type]


async def measure(program: str, reference: Path, repeats: int,
                  python: str | None = None) -> list[tuple[float, float, float]]:
    problem = load_problem(compose_config(["problem=sat", f"problem.reference={reference}"]))
    penalty = problem.settings["par_factor"] * problem.settings["time_limit"]
    sandbox = ProcessSandbox(python=python)
    evaluator = Evaluator(problem, sandbox, SandboxLimits(case_timeout=problem.case_timeout), "bench")
    out = []
    for _ in range(repeats):
        evaluation = await evaluator.evaluate(program, "search")
        if not evaluation.valid:
            sys.exit(f"the program is invalid on the search split: {evaluation.feedback[:300]}")
        out.append(scores(evaluation, penalty))
    return out


def start_hogs(count: int) -> list[subprocess.Popen]:
    """`count` busy loops, each the leader of its own session."""
    return [subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        try:
            os.killpg(hog.pid, signal.SIGKILL)  # its own group: started with start_new_session
        except ProcessLookupError:
            pass
        hog.wait()


def summary(values: list[float]) -> tuple[float, float, float, float]:
    median = statistics.median(values)
    return median, min(values), max(values), (max(values) - min(values)) / median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--program", type=Path, default=SEED, help="the solver scored (default: the seed)")
    parser.add_argument("--reference", type=Path, default=SEED, help="the calibration reference (default: the seed)")
    parser.add_argument("--hogs", type=int, default=(os.cpu_count() or 1) + 2, help="CPU hogs under load")
    parser.add_argument("--other-python", help="a third condition: the sandbox on this interpreter")
    args = parser.parse_args()
    program = args.program.read_text()

    conditions = [("idle", 0, None), (f"{args.hogs} hogs", args.hogs, None)]
    if args.other_python:
        conditions.append((f"idle, {Path(args.other_python).name} {interpreter(args.other_python)}", 0,
                           args.other_python))
    results = {}
    for condition, count, python in conditions:
        hogs = start_hogs(count)
        try:
            time.sleep(1.0 if hogs else 0.0)
            load = os.getloadavg()[0]
            started = time.monotonic()
            results[condition] = asyncio.run(measure(program, args.reference, args.repeats, python))
            print(f"{condition}: {args.repeats} evaluations in {time.monotonic() - started:.0f} s, "
                  f"load average at start {load:.1f}", flush=True)
        finally:
            stop_hogs(hogs)

    where = args.program.relative_to(ROOT) if args.program.is_relative_to(ROOT) else args.program
    print(f"\nprogram {where}, reference {args.reference.name}, {os.cpu_count()} cores, "
          f"sandbox interpreter {interpreter(sys.executable)} unless named\n")
    names = ("wall-time PAR-2 (s)", "CPU-time PAR-2 (s)", "calibrated (x reference)")
    print("| condition | " + " | ".join(names) + " |")
    print("|---|---|---|---|")
    idle = results["idle"]
    for condition, rows in results.items():
        cells = []
        for index in range(3):
            median, low, high, spread = summary([r[index] for r in rows])
            moved = median / statistics.median(r[index] for r in idle) - 1
            cells.append(f"{median:.4f} ({low:.4f} - {high:.4f}); spread {spread:.1%}"
                         + ("" if condition == "idle" else f"; moved {moved:+.1%}"))
        print(f"| {condition} | " + " | ".join(cells) + " |")
    print("\nspread = (max - min) / median over the repeats; moved = the median against the idle median")


def interpreter(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    main()
