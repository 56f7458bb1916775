"""Search throughput against a fake LLM endpoint: evaluations per minute vs the ideal min(P/L, E/T).

The scripted endpoint (tests/fake_llm.py, run in a process of its own) answers
every request with a one-line diff after a fixed latency L; the candidate program sleeps a fixed T seconds per
evaluation. With P proposal tasks and E evaluation slots, the loop can do at
most P/L proposals and E/T evaluations per second, so the ideal rate is
min(P/L, E/T). The measured rate is taken in steady state: from the database's
timestamps of the first to the last evaluated candidate (the seed's evaluation
and start-up are left out). The sandbox is `process`; its own cost per
evaluation S (starting the runner and the candidate's interpreter, verifying)
comes on top of T. S is measured first, on the same candidate with T = 0, and
the last column compares with min(P/L, E/(T+S)): how close the loop comes to
what the sandbox allows. The second evaluation of each new champion
(verification.recheck_champion) is turned off here: it is verification work,
not throughput, and would hold an evaluation slot for another T seconds.

    python bench/throughput.py                       # L=0.5 s, T=1.0 s, several (P, E)
    python bench/throughput.py --latency 1 --candidate-seconds 2 --settings 2x2,4x4 --evaluations 40
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncio  # noqa: E402

import evolve  # noqa: E402
from evolve.config import compose_config  # noqa: E402
from evolve.evaluation import Evaluator  # noqa: E402
from evolve.problem import load_problem  # noqa: E402
from evolve.sandbox.factory import limits_from, make_sandbox  # noqa: E402
from tests.fake_llm import author_in_process, tiny_problem  # noqa: E402


def sandbox_cost(workdir: Path, repeats: int = 5) -> float:
    """Seconds one evaluation of a candidate that does nothing takes (median)."""
    cfg = compose_config([*tiny_problem(workdir / "problem-zero", sleep=0.0, heldout=False), "sandbox=process",
                          "sandbox.allow_root=true"])  # the bench's own trusted candidates
    problem = load_problem(cfg)

    async def timed() -> list[float]:
        sandbox = make_sandbox(cfg, "bench")
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "bench")
        times = []
        try:
            for _ in range(repeats):
                started = time.monotonic()
                await evaluator.evaluate(problem.seed_code, "search")
                times.append(time.monotonic() - started)
        finally:
            await sandbox.close()
        return sorted(times)

    times = asyncio.run(timed())
    return times[len(times) // 2]


def measure(latency: float, seconds: float, proposers: int, evaluators: int, evaluations: int,
            workdir: Path) -> tuple[float, float]:
    """(steady-state evaluations per minute, overall evaluations per minute) for one setting."""
    run_dir = workdir / f"run-p{proposers}-e{evaluators}"
    problem = tiny_problem(workdir / f"problem-p{proposers}-e{evaluators}", sleep=seconds, heldout=False)
    os.environ.setdefault("EVOLVE_BENCH_KEY", "bench")
    with author_in_process(seed=proposers * 100 + evaluators, latency=latency) as url:
        started = time.monotonic()
        evolve.run([
            f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", f"budget.evaluations={evaluations}",
            *problem, f"search.proposers={proposers}", f"search.evaluators={evaluators}",
            f"search.queue_size={max(proposers, evaluators)}",
            "verification.recheck_champion=false",  # a champion's second evaluation would occupy a slot for T
            "llm=openai", f"llm.base_url={url}", "llm.api_key_env=EVOLVE_BENCH_KEY",
            "llm.models=[{name:fake}]", f"llm.max_concurrency={proposers}", "llm.timeout=30",
        ])
        overall = time.monotonic() - started
    with sqlite3.connect(run_dir / "evolve.db") as db:
        stamps = [datetime.fromisoformat(row[0]) for row in
                  db.execute("SELECT created FROM programs WHERE parent_id IS NOT NULL ORDER BY created")]
    span = (stamps[-1] - stamps[0]).total_seconds()
    steady = (len(stamps) - 1) / span * 60 if span > 0 else float("nan")
    return steady, len(stamps) / overall * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="L: seconds the endpoint takes per reply")
    parser.add_argument("--candidate-seconds", type=float, default=1.0, help="T: seconds a candidate runs")
    parser.add_argument("--settings", default="1x1,2x2,4x2,2x4,4x4,8x4", help="PxE pairs, comma-separated")
    parser.add_argument("--evaluations", type=int, default=30, help="evaluations per setting")
    args = parser.parse_args()
    settings = [tuple(int(x) for x in item.split("x")) for item in args.settings.split(",")]
    latency, seconds = args.latency, args.candidate_seconds
    with tempfile.TemporaryDirectory(prefix="evolve-bench-") as tmp:
        cost = sandbox_cost(Path(tmp))
        print(f"L = {latency} s per reply, T = {seconds} s per candidate, sandbox cost S = {cost:.3f} s per "
              f"evaluation, {args.evaluations} evaluations per setting, sandbox=process, {os.cpu_count()} cores")
        print(f"{'P':>3} {'E':>3} {'ideal/min':>10} {'steady/min':>11} {'overall/min':>12} {'of ideal':>9} "
              f"{'ideal(T+S)/min':>15} {'of ideal(T+S)':>14}")
        for proposers, evaluators in settings:
            ideal = min(proposers / latency, evaluators / seconds) * 60
            reachable = min(proposers / latency, evaluators / (seconds + cost)) * 60
            steady, overall = measure(latency, seconds, proposers, evaluators, args.evaluations, Path(tmp))
            print(f"{proposers:>3} {evaluators:>3} {ideal:>10.1f} {steady:>11.1f} {overall:>12.1f} "
                  f"{steady / ideal:>9.0%} {reachable:>15.1f} {steady / reachable:>14.0%}", flush=True)


if __name__ == "__main__":
    main()
