"""Search throughput on a Ray cluster of 1, 2 and 4 worker nodes, against the ideal.

    python bench/cluster_throughput.py [--nodes 0 1 2 4] [--per-node 12] [--cost 0.25] [--fan-out 16]

Each configuration is a real cluster started on this machine (tests/cluster_support.py: a head
without CPUs and N worker nodes, each its own raylet and workers) and a real `evolve.run` against
it: the offline proposer (no endpoint), the bubblewrap tier on every node, one slot per node
(`cluster.slots_per_node=1`), `search.evaluators` = the slots. Every candidate is one case of a
fixed cost (the cost is outside the EVOLVE-BLOCK, so mutations do not change it), in two kinds:

- cpu: a busy loop of about `--cost` seconds of CPU;
- wait: `time.sleep(--cost)`, no CPU: what the machinery spreads when the cores are not the limit.

A row "local" is the same search without a cluster (this machine's bubblewrap tier, one
evaluator): the cost of going through Ray is the difference from the 1-node row.

Throughput is counted from the first to the last stored evaluation (start-up excluded), every
sandbox evaluation included (a champion's re-check is one too). Ideal: nodes / cost per second.
On a machine with fewer cores than nodes the cpu kind cannot reach the ideal: say how many cores.

Then case-level fan-out: one candidate of `--fan-out` waiting cases on 1, 2 and 4 nodes (the time of
one evaluation, after a first one that warms the workers up), against cases x cost / nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evolve  # noqa: E402
from tests.cluster_support import LocalCluster  # noqa: E402

SEED = '''import time

# EVOLVE-BLOCK-START
SCALE = 2.0
# EVOLVE-BLOCK-END


def spend(kind, cost):
    if kind == "wait":
        time.sleep(cost)
        return
    end = time.process_time() + cost
    while time.process_time() < end:
        pass


def main(x, kind, cost, **_):
    spend(kind, cost)
    return {"value": SCALE * x}
'''

VERIFIER = '''from evolve.problem import Verdict


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}")
    return Verdict(True, -abs(run.output["value"] - 3.0 * case.inputs["x"]))
'''


def write_problem(folder: Path, kind: str, cost: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.py").write_text(SEED)
    (folder / "verifier.py").write_text(VERIFIER)
    (folder / "cases.json").write_text(
        f'{{"search": [{{"id": "c1", "inputs": {{"x": 1, "kind": "{kind}", "cost": {cost}}}}}], "heldout": []}}')
    (folder / "problem.yaml").write_text(
        "name: fixed_cost\ndescription: a candidate of fixed cost\nseed_program: seed.py\nprompt: ''\n"
        "cases: cases.json\nverifier: verifier.py\nentry: main\nobjective: maximize\ncase_timeout: 30.0\n"
        "settings: {}\n")
    return folder


def rate(run_dir: Path) -> tuple[int, float]:
    """(evaluations, evaluations per second between the first and the last one stored)."""
    with sqlite3.connect(run_dir / "evolve.db") as db:
        stamps = [datetime.fromisoformat(created) for (created,) in
                  db.execute("SELECT created FROM evaluations ORDER BY created")]
    span = (stamps[-1] - stamps[0]).total_seconds()
    return len(stamps), (len(stamps) - 1) / span if span > 0 else float("nan")


def driver_cpu() -> float:
    """CPU seconds of this process (the driver: engine, store, Ray's client threads), not its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(nodes: int, kind: str, cost: float, per_node: int, work: Path) -> tuple[int, float, float]:
    """(evaluations, per second, driver CPU ms per evaluation); nodes=0: no cluster, the same search on
    this machine's bubblewrap tier with one evaluator."""
    cluster = LocalCluster(workers=nodes) if nodes else None
    try:
        problem = write_problem(work / f"{kind}-{nodes}" / "problem", kind, cost)
        run_dir = work / f"{kind}-{nodes}" / "run"
        where = [f"cluster.address={cluster.address}", "cluster.slots_per_node=1"] if cluster else []
        cpu = driver_cpu()
        evolve.run([f"problem={problem}", f"run.dir={run_dir}", "sandbox=bwrap", "run.progress=false",
                    "llm.numeric_rate=1.0", "llm.line_rate=0.0", "llm.crossover_rate=0.0",
                    f"budget.evaluations={per_node * max(1, nodes)}", f"search.evaluators={max(1, nodes)}",
                    f"search.proposers={max(2, nodes)}", *where])
        cpu = driver_cpu() - cpu  # the whole run, its start (Ray's connection, the node workers) included
        count, per_second = rate(run_dir)
        return count, per_second, 1000 * cpu / count
    finally:
        if cluster is not None:
            cluster.shutdown()


def fan_out(nodes: int, cases: int, cost: float, work: Path) -> float:
    """Seconds to evaluate one candidate of `cases` waiting cases, spread over `nodes` one-slot nodes
    (the second of two evaluations: the first warms the nodes' workers up)."""
    import asyncio

    from evolve.cluster.sandbox import RaySandbox
    from evolve.config import compose_config
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem
    from evolve.sandbox.factory import limits_from

    cluster = LocalCluster(workers=nodes)
    try:
        folder = write_problem(work / f"fan-{nodes}", "wait", cost)
        data = {"search": [{"id": f"c{i}", "inputs": {"x": i, "kind": "wait", "cost": cost}} for i in range(cases)],
                "heldout": []}
        (folder / "cases.json").write_text(json.dumps(data))
        cfg = compose_config([f"problem={folder}", "sandbox=bwrap", f"cluster.address={cluster.address}",
                              "cluster.slots_per_node=1"])
        problem = load_problem(cfg)

        async def timed() -> float:
            sandbox = RaySandbox(cfg, "fan-out-bench")
            evaluator = Evaluator(problem, sandbox, limits_from(cfg), "bench")
            try:
                await evaluator.evaluate(problem.seed_code, "search")
                started = time.monotonic()
                evaluation = await evaluator.evaluate(problem.seed_code, "search")
                assert evaluation.valid, evaluation.feedback
                return time.monotonic() - started
            finally:
                evaluator.close()
                await sandbox.close()

        return asyncio.run(timed())
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[0, 1, 2, 4], help="0: this machine, no cluster")
    parser.add_argument("--per-node", type=int, default=10, help="candidates per node (the budget grows with N)")
    parser.add_argument("--cost", type=float, default=0.25, help="seconds per candidate")
    parser.add_argument("--kinds", nargs="*", default=["cpu", "wait"], choices=["cpu", "wait"],
                        help="candidate kinds to measure throughput with (none: only the fan-out)")
    parser.add_argument("--fan-out", type=int, default=16, metavar="CASES",
                        help="also time one candidate of CASES waiting cases spread over the nodes (0: skip)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start; "
          f"one slot per node, {args.cost} s per candidate")
    print(f"{'kind':<5} {'nodes':>5} {'evaluations':>11} {'cand/s':>7} {'ideal':>6} {'of ideal':>8} "
          f"{'driver CPU ms/eval':>18}")
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as work:
        for kind in args.kinds:
            for nodes in args.nodes:
                started = time.monotonic()
                count, measured, cpu_ms = measure(nodes, kind, args.cost, args.per_node, Path(work))
                ideal = max(1, nodes) / args.cost
                print(f"{kind:<5} {nodes or 'local':>5} {count:>11} {measured:>7.2f} {ideal:>6.2f} "
                      f"{measured / ideal:>8.0%} {cpu_ms:>18.1f}   "
                      f"({time.monotonic() - started:.0f} s with the cluster's start)",
                      flush=True)
        if args.fan_out:
            print(f"\none candidate of {args.fan_out} cases of {args.cost} s each, its cases spread over the nodes:")
            print(f"{'nodes':>5} {'seconds':>8} {'ideal':>6} {'speed-up':>8}")
            single = None
            for nodes in [n for n in args.nodes if n > 0]:
                seconds = fan_out(nodes, args.fan_out, args.cost, Path(work))
                single = single or seconds * nodes
                ideal = args.fan_out * args.cost / nodes
                print(f"{nodes:>5} {seconds:>8.2f} {ideal:>6.2f} {single / seconds if nodes > 1 else 1.0:>7.2f}x",
                      flush=True)


if __name__ == "__main__":
    main()
