"""What a compiled candidate costs per evaluation, with and without a build, on each tier.

    python bench/compiled_builds.py [--runs 5] [--tiers process,bwrap,docker-pool]

The bundled example problems/center_c (three C files, `cc -O2`, 3 search cases) is evaluated
on the search split: `built` are evaluations of sources never seen before (each builds: a
distinct constant in the EVOLVE-BLOCK), `cached` are evaluations of sources already built in
this run (the engine sends the built program instead of building). Wall time from the caller's
side, one at a time, after one warm-up; median over --runs, and the build's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.config import compose_config  # noqa: E402
from evolve.evaluation import Evaluator  # noqa: E402
from evolve.paths import PROBLEMS  # noqa: E402
from evolve.problem import load_problem  # noqa: E402
from evolve.sandbox.base import SandboxJob, SandboxLimits  # noqa: E402

TIERS = ("process", "bwrap", "docker-pool")


def make(tier: str):
    if tier == "process":
        from evolve.sandbox.process import ProcessSandbox

        return ProcessSandbox()
    if tier == "bwrap":
        from evolve.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox()
    from evolve.sandbox.docker import DockerSandbox, DockerSettings
    from evolve.sandbox.image import default_tag

    return DockerSandbox(DockerSettings(image=default_tag(), pool_size=1, exec_scratch=True),
                         f"bench-{uuid.uuid4().hex[:8]}")


async def measure(tier: str, runs: int) -> tuple[float, float, float]:
    problem = load_problem(compose_config([f"problem={PROBLEMS / 'center_c' / 'problem.yaml'}"]))
    sandbox = make(tier)
    evaluator = Evaluator(problem, sandbox, SandboxLimits(case_timeout=5.0), "bench")
    variants = [problem.seed_code.replace("double spread = 0.0;", f"double spread = {i / 1000:.3f};")
                for i in range(1, runs + 2)]
    built, cached, build_cpu = [], [], []
    try:
        for index, code in enumerate(variants):
            started = time.perf_counter()
            result = await evaluator.evaluate(code, "search")
            elapsed = time.perf_counter() - started
            assert result.valid, result.feedback
            if index:  # the first is a warm-up
                built.append(elapsed)
            # The build's own CPU time, from a direct job of the same sources (not cached).
            if index == 1:
                job = SandboxJob(code, problem.entry, tuple((c.id, c.inputs) for c in problem.split("search")),
                                 evaluator.limits, program=problem.program)
                build_cpu.append((await sandbox.run(job)).build.cpu_seconds)
        for code in variants[1:]:
            started = time.perf_counter()
            assert (await evaluator.evaluate(code, "search")).valid
            cached.append(time.perf_counter() - started)
    finally:
        evaluator.close()
        await sandbox.close()
    return statistics.median(built), statistics.median(cached), build_cpu[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tiers", default=",".join(TIERS))
    args = parser.parse_args()
    print("| tier | evaluation with a build | evaluation of built sources | build CPU |")
    print("|---|---|---|---|")
    for tier in args.tiers.split(","):
        built, cached, cpu = asyncio.run(measure(tier, args.runs))
        print(f"| {tier} | {built * 1000:.0f} ms | {cached * 1000:.0f} ms | {cpu * 1000:.0f} ms |", flush=True)


if __name__ == "__main__":
    main()
