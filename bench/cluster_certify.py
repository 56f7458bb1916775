"""What a certification call and a verification cost on a local Ray cluster, against this machine.

    python bench/cluster_certify.py [--repeat 5]

Starts a cluster on this machine (a head with no CPUs, two worker nodes of one CPU each) and prints
medians of wall seconds:
- nash_guarantee's DMP baseline: one gate at 1/3 and one certify, through the local certify worker
  and as a cluster task (evolve/cluster/certify.py): the difference is the task's overhead;
- one judgement of a 4-case output by the driver's verifier processes and by a node's NodeVerifier
  (evolve/cluster/verify.py), warm (the verification processes already started).
Figures from a shared 2-core machine are noisy; the overhead is what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evolve.certification import Certifier  # noqa: E402
from evolve.cluster.certify import ClusterCertifier  # noqa: E402
from evolve.cluster.connect import connect, disconnect  # noqa: E402
from evolve.cluster.verify import node_verifiers  # noqa: E402
from evolve.config import compose_config  # noqa: E402
from evolve.problem import Case, load_problem  # noqa: E402
from evolve.sandbox.base import CaseRun  # noqa: E402
from evolve.verifier_process import VerifierProcesses  # noqa: E402
from tests.cluster_support import LocalCluster, write_problem  # noqa: E402


def median_seconds(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        asyncio.run(call())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    cluster = LocalCluster(workers=2)
    ray = connect(cluster.address, 30)
    try:
        problem = load_problem(compose_config(["problem=nash_guarantee"]))
        dmp = json.loads((ROOT / "problems/nash_guarantee/baselines/dmp.json").read_text())["algorithm"]
        verdict = problem.verify(Case("constraints", "search", {}, {"seed": 1}),
                                 CaseRun("constraints", "ok", dmp, 0.0, ""), problem.settings)
        subject = verdict.metrics["subject"]
        local = Certifier(problem.verifier_source, problem.settings, 120, 120, 10)
        remote = ClusterCertifier.from_local(local, ray)
        print(f"{'call':<28}{'local s':>10}{'cluster s':>11}{'overhead s':>12}")
        for name, call in (("gate(dmp, 1/3)", lambda c: c.gate(subject, "1/3")),
                           ("certify(dmp)", lambda c: c.certify(subject, None, verdict.score))):
            here = median_seconds(lambda: call(local), repeat)
            there = median_seconds(lambda: call(remote), repeat)
            print(f"{name:<28}{here:>10.3f}{there:>11.3f}{there - here:>12.3f}")

        folder = write_problem(Path(tempfile.mkdtemp(prefix="bench-verify-")) / "scaled", delay=0.0,
                               verify_on="node")
        cfg = compose_config([f"problem={folder}", f"cluster.address={cluster.address}"])
        scaled = load_problem(cfg)
        job = {"settings": {}, "cases": [{"id": c.id, "split": c.split, "inputs": c.inputs, "private": c.private}
                                         for c in scaled.split("search")],
               "runs": [{"case_id": c.id, "status": "ok", "output": {"value": 2.0 * c.inputs["x"]}, "seconds": 0.0,
                         "message": "", "cpu_seconds": 0.0} for c in scaled.split("search")], "reference_runs": None}

        async def judged(judge, times: list[float]) -> None:
            for _ in range(repeat * 4):
                started = time.perf_counter()
                reply = await judge.judge(job)
                assert "verdicts" in reply, reply
                times.append(time.perf_counter() - started)

        async def both() -> tuple[float, float]:
            driver, node = VerifierProcesses(scaled.verifier_source, 10), await node_verifiers(cfg, scaled, "bench")
            try:
                here: list[float] = []
                there: list[float] = []
                await judged(driver, [])  # warm: processes started
                await judged(node, [])
                await judged(driver, here)
                await judged(node, there)
                return statistics.median(here), statistics.median(there)
            finally:
                driver.close()
                node.close()

        here, there = asyncio.run(both())
        print(f"{'judge 4 cases (warm)':<28}{here:>10.4f}{there:>11.4f}{there - here:>12.4f}")
    finally:
        disconnect()
        cluster.shutdown()


if __name__ == "__main__":
    main()
