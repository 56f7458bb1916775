"""What verifying in a killable worker process costs per evaluation, against a thread.

One evaluation of the circle packing seed's output (n=26, one case) is judged
  - in a thread of this process, as the engine did before (the verifier's own time), and
  - through `VerifierProcesses` (a long-lived `python -m evolve.verify_worker`): the same
    plus the JSON round trip over a pipe.
Also measured: the worker's start-up (loading the verifier), paid once, and again after
a worker is killed at its time limit.

    python bench/verifier_overhead.py [--evaluations 300] [--problem circle_packing]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolve.config import compose_config  # noqa: E402
from evolve.problem import SEARCH, load_problem, load_verifier  # noqa: E402
from evolve.sandbox.base import CaseRun  # noqa: E402
from evolve.verifier_process import VerifierProcesses  # noqa: E402
from evolve.verify_worker import judge  # noqa: E402


def seed_output(problem) -> list[CaseRun]:
    """The seed's outputs on the search cases, computed here (no sandbox: only verification is timed)."""
    module = types.ModuleType("bench_seed")
    exec(compile(problem.seed_code, "seed.py", "exec"), module.__dict__)  # noqa: S102 - the project's own seed
    entry = getattr(module, problem.entry)
    return [CaseRun(case.id, "ok", _plain(entry(**case.inputs)), 0.1) for case in problem.split(SEARCH)]


def _plain(value):
    import json

    return json.loads(json.dumps(value, default=lambda v: v.tolist()))


async def measure(problem_name: str, evaluations: int) -> None:
    problem = load_problem(compose_config([f"problem={problem_name}"]))
    cases = problem.split(SEARCH)
    runs = seed_output(problem)
    job = {"settings": problem.settings, "cases": [dataclasses.asdict(c) for c in cases],
           "runs": [dataclasses.asdict(r) for r in runs]}  # built once: the Evaluator's copy-free build is cheaper
    module = load_verifier(problem.verifier_path)

    thread = []
    for _ in range(evaluations):
        started = time.perf_counter()
        reply = await asyncio.to_thread(judge, module, problem.verifier_path.name, job)
        thread.append(time.perf_counter() - started)
    assert reply.get("score") is not None, reply

    processes = VerifierProcesses(problem.verifier_source, timeout=60.0)
    started = time.perf_counter()
    first = await processes.judge(job)
    startup = time.perf_counter() - started
    assert first.get("score") == reply["score"], first
    worker = []
    for _ in range(evaluations):
        started = time.perf_counter()
        await processes.judge(job)
        worker.append(time.perf_counter() - started)
    # A worker killed at its limit is replaced by a fresh one on the next evaluation.
    processes.idle[0].kill()
    processes.idle.clear()
    started = time.perf_counter()
    await processes.judge(job)
    replaced = time.perf_counter() - started
    processes.close()

    median_thread, median_worker = statistics.median(thread), statistics.median(worker)
    print(f"problem {problem_name}, {len(cases)} case(s), {evaluations} evaluations, medians:")
    print(f"  verify in a thread:        {median_thread * 1000:7.2f} ms")
    print(f"  verify in the worker:      {median_worker * 1000:7.2f} ms")
    print(f"  overhead per evaluation:   {(median_worker - median_thread) * 1000:7.2f} ms")
    print(f"  worker start-up (first):   {startup * 1000:7.1f} ms")
    print(f"  worker start-up (replaced):{replaced * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--problem", default="circle_packing")
    args = parser.parse_args()
    asyncio.run(measure(args.problem, args.evaluations))


if __name__ == "__main__":
    main()
