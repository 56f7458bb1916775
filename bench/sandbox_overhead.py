"""Per-evaluation wall time of a trivial candidate on each sandbox tier.

    python bench/sandbox_overhead.py [--runs 100] [--tiers bare,process,bwrap,docker-pool,docker-fresh]

Tiers
    bare          one `python -I -c` subprocess that defines and calls the candidate: the floor
    process       the process backend (runner + candidate interpreter, rlimits, pids cgroup)
    bwrap         the bubblewrap backend
    docker-pool   the Docker backend's warm pool (each container's one serve runner: no `docker exec` per evaluation)
    docker-fresh  the Docker backend with a new container per evaluation

Each evaluation is timed from the caller's side, one at a time, after two
warm-up runs; the figures are the median and 95th percentile over --runs.
Target: the warm pool adds no more than 100 ms over the bare subprocess.
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

from evolve.sandbox.base import SandboxJob, SandboxLimits  # noqa: E402

CANDIDATE = "def main(x):\n    return {'answer': 2 * x}\n"
JOB = SandboxJob(CANDIDATE, "main", (("c1", {"x": 21}),), SandboxLimits(case_timeout=10, memory_mb=512))
TIERS = ("bare", "process", "bwrap", "docker-pool", "docker-fresh")


async def bare_once() -> None:
    code = CANDIDATE + "import json\nprint(json.dumps(main(21)))\n"
    process = await asyncio.create_subprocess_exec(sys.executable, "-I", "-c", code,
                                                   stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert out.strip() == b'{"answer": 42}', out


def make(tier: str):
    if tier == "process":
        from evolve.sandbox.process import ProcessSandbox

        return ProcessSandbox()
    if tier == "bwrap":
        from evolve.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox()
    from evolve.sandbox.docker import DockerSandbox, DockerSettings
    from evolve.sandbox.image import default_tag

    settings = DockerSettings(image=default_tag(), pool_size=1, recycle_after=10**6,
                              fresh_container=tier == "docker-fresh", memory_mb=512)
    return DockerSandbox(settings, f"bench-{uuid.uuid4().hex[:8]}")


async def measure(tier: str, runs: int) -> list[float]:
    sandbox = None if tier == "bare" else make(tier)

    async def once() -> None:
        if sandbox is None:
            await bare_once()
            return
        result = await sandbox.run(JOB)
        assert result.runs[0].status == "ok" and result.runs[0].output == {"answer": 42}, result

    try:
        for _ in range(2):
            await once()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await once()
            times.append(time.perf_counter() - started)
        return times
    finally:
        if sandbox is not None:
            await sandbox.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tiers", default=",".join(TIERS))
    args = parser.parse_args()
    tiers = [tier for tier in args.tiers.split(",") if tier]
    unknown = set(tiers) - set(TIERS)
    if unknown:
        parser.error(f"unknown tier(s) {sorted(unknown)}; choose from {', '.join(TIERS)}")
    print(f"trivial candidate, {args.runs} sequential evaluations per tier (ms)")
    print(f"{'tier':<14}{'median':>9}{'p95':>9}{'over bare':>11}")
    bare_median = None
    for tier in tiers:
        times = asyncio.run(measure(tier, args.runs))
        median, p95 = statistics.median(times) * 1000, percentile(times, 0.95) * 1000
        if tier == "bare":
            bare_median = median
        extra = f"{median - bare_median:+.0f}" if bare_median is not None and tier != "bare" else ""
        print(f"{tier:<14}{median:>9.0f}{p95:>9.0f}{extra:>11}", flush=True)


if __name__ == "__main__":
    main()
