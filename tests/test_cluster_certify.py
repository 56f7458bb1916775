"""Certification calls (gate / certify) as tasks on a real local Ray cluster (evolve/cluster/certify.py).

The cluster: a head with no CPUs and two worker nodes of one CPU each, so every call runs on a
worker node. A call gives the same certified bound as on this machine; a call past its time limit,
or one the driver gives up on, leaves no process behind on any node.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

import evolve
from evolve.certification import Certifier
from evolve.cluster.certify import ClusterCertifier
from evolve.config import compose_config
from evolve.paths import ROOT
from evolve.problem import Case, load_problem
from evolve.sandbox.base import CaseRun
from evolve.verifier_source import VerifierSource
from evolve.sandbox.process import ProcessSandbox
from tests.cluster_support import LocalCluster, alive, cluster_fixture, process_group
from tests.conftest import query, wait_for
from tests.test_certification import FIXTURE, Script, overrides, program

pytestmark = pytest.mark.slow

# A verifier whose certify() starts a child process, says who it is, and would then take ten minutes.
SLOW_VERIFIER = '''import json, os, subprocess, time
from pathlib import Path

from evolve.problem import Verdict


def verify(case, run, settings):
    return Verdict(True, 1.0, metrics={"subject": {}})


def gate(subject, bound, settings, time_limit):
    return certify(subject, settings, None, None, time_limit)


def certify(subject, settings, upper, lower, time_limit):
    child = subprocess.Popen(["sleep", "600"])
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\\0", b" ").decode()
    Path(settings["pids"]).write_text(json.dumps({"worker": os.getpid(), "group": os.getpgid(0),
                                                  "child": child.pid, "parent": parent}))
    time.sleep(600)
'''


cluster = cluster_fixture(driver=True)  # the tests submit Ray tasks of their own and hand `ray` to the certifier


def on_cluster(local: Certifier, events: list | None = None) -> ClusterCertifier:
    import ray

    async def record(kind: str, **data) -> None:
        if events is not None:
            events.append((kind, data))

    return ClusterCertifier.from_local(local, ray, retries=1, record=record)


def slow_certifier(tmp_path: Path, seconds: float) -> Certifier:
    path = tmp_path / "slow_verifier.py"
    path.write_text(SLOW_VERIFIER)
    return Certifier(VerifierSource.read(path), {"pids": str(tmp_path / "pids.json")}, seconds, seconds, 1.0)


def no_process_left(pids: dict) -> bool:
    return not alive(pids["worker"]) and not alive(pids["child"]) and not process_group(pids["group"])


def test_a_certify_call_on_the_cluster_proves_the_same_bound_as_on_this_machine(cluster: LocalCluster) -> None:
    problem = load_problem(compose_config(["problem=nash_guarantee"]))
    dmp = json.loads((ROOT / "problems" / "nash_guarantee" / "baselines" / "dmp.json").read_text())["algorithm"]
    verdict = problem.verify(Case("constraints", "search", {}, {"seed": 1}),
                             CaseRun("constraints", "ok", dmp, 0.0, ""), problem.settings)
    subject = verdict.metrics["subject"]
    local = Certifier(problem.verifier_source, problem.settings, 120, 120, 10)
    here = asyncio.run(local.certify(subject, None, verdict.score))
    there = asyncio.run(on_cluster(local).certify(subject, None, verdict.score))
    assert here.status == there.status == "proven"
    assert there.bound == here.bound and there.bound_float == here.bound_float == 0.5
    assert (there.lower, there.width, there.calls, there.solver) == (here.lower, here.width, here.calls, here.solver)
    gate_here = asyncio.run(local.gate(subject, "1/3"))  # DMP's 1/2 is provably not below 1/3
    gate_there = asyncio.run(on_cluster(local).gate(subject, "1/3"))
    assert gate_here.status == gate_there.status == "witness"
    assert gate_there.value == gate_here.value


def test_a_call_past_its_time_limit_is_killed_on_its_node_with_everything_it_started(
        cluster: LocalCluster, tmp_path: Path) -> None:
    result = asyncio.run(on_cluster(slow_certifier(tmp_path, 1.0)).certify({}, None, 2.0))
    assert result.status == "uncertified" and result.lower == 2.0
    assert "ran past its time limit of 1 s (+1 s grace) and was killed" in result.detail["reason"]
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert "ray::" in pids["parent"]  # the worker ran under a Ray task, not under this process
    wait_for(lambda: no_process_left(pids), 30, "the certify worker or its child outlived the call")


def test_a_call_the_driver_gives_up_on_leaves_no_process_on_any_node(cluster: LocalCluster, tmp_path: Path) -> None:
    certifier = on_cluster(slow_certifier(tmp_path, 600.0))
    pids_file = tmp_path / "pids.json"

    async def stopped_midway() -> None:
        call = asyncio.create_task(certifier.certify({}, None, None))
        await asyncio.to_thread(wait_for, pids_file.exists, 60, "the solver call did not start")
        call.cancel()  # as Ctrl-C or a stopped run does
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(stopped_midway())
    pids = json.loads(pids_file.read_text())
    wait_for(lambda: no_process_left(pids), 30, "the cancelled call's processes outlived it")


def test_the_driver_bounds_its_wait_when_no_node_answers_and_withdraws_the_call(cluster: LocalCluster,
                                                                                tmp_path: Path) -> None:
    import ray

    def occupy(started: str) -> None:
        Path(started).touch()
        time.sleep(120)

    marks = [tmp_path / f"busy{i}" for i in range(len(cluster.workers))]
    blockers = [ray.remote(num_cpus=1)(occupy).remote(str(mark)) for mark in marks]
    wait_for(lambda: all(mark.exists() for mark in marks), 60, "not every CPU of the cluster was taken")
    local = slow_certifier(tmp_path, 1.0)
    certifier = ClusterCertifier(local.verifier, local.settings, 1.0, 1.0, 1.0, ray=ray, slack=1.0)
    try:
        result = asyncio.run(certifier.certify({}, None, None))
    finally:
        for blocker in blockers:
            ray.cancel(blocker, force=True)
    assert result.status == "uncertified" and "ran past its time limit of 1 s" in result.detail["reason"]
    time.sleep(3)  # had the withdrawn call still been queued, it would have started on a freed CPU by now
    assert not (tmp_path / "pids.json").exists()


def test_a_run_certifies_and_verifies_on_the_cluster_with_the_same_stored_results(cluster: LocalCluster,
                                                                                  tmp_path: Path) -> None:
    proposals = [program(0.5, 0.7), program(0.4, 0.45, "unknown"), program(0.55, 0.58), program(0.56, 0.57, "uncertified")]

    def stored(run_dir: Path) -> list[tuple]:
        return query(run_dir, "SELECT p.code, p.score, c.kind, c.status, c.bound FROM programs p "
                              "LEFT JOIN certificates c ON c.program_id = p.id ORDER BY p.code, c.id")

    here = evolve.run(overrides(FIXTURE, tmp_path / "here", 4), proposer=Script(proposals), sandbox=ProcessSandbox())
    there = evolve.run(overrides(FIXTURE, tmp_path / "there", 4, f"cluster.address={cluster.address}",
                                 "cluster.verify_on=node"),
                       proposer=Script(proposals), sandbox=ProcessSandbox())
    assert here.status == there.status == "finished" and there.best_score == here.best_score == pytest.approx(0.58)
    assert stored(there.run_dir) == stored(here.run_dir)
    assert ("certify", "proven", "29/50") in [row[2:] for row in stored(there.run_dir)]
    kinds = [kind for (kind,) in query(there.run_dir, "SELECT kind FROM events ORDER BY id")]
    assert "certify_on_cluster" in kinds and "verify_nodes" in kinds
    assert not {"certify_retried", "verify_node_refused", "verify_node_lost"} & set(kinds)


def test_a_node_lost_during_a_call_sends_it_to_another_node_and_records_it(cluster: LocalCluster,
                                                                           tmp_path: Path) -> None:
    certifier = slow_certifier(tmp_path, 600.0)
    events: list = []
    pids_file = tmp_path / "pids.json"

    async def lose_the_node() -> None:
        call = asyncio.create_task(on_cluster(certifier, events).certify({}, None, None))
        first = json.loads((await asyncio.to_thread(wait_for, lambda: pids_file.exists() and pids_file.read_text(),
                                                    60, "the first attempt did not start")))
        pids_file.unlink()
        node = next(n for n in cluster.workers if cluster.runs(n, first["worker"]))
        cluster.remove(node)
        second = json.loads(await asyncio.to_thread(wait_for, lambda: pids_file.exists() and pids_file.read_text(),
                                                    90, "no retry started on the other node"))
        assert second["worker"] != first["worker"]
        # The lost node's worker died with it; what its verifier started is the lost machine's (here: ours).
        wait_for(lambda: not alive(first["worker"]), 30, "the lost node's worker outlived it")
        os.kill(first["child"], signal.SIGKILL)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        wait_for(lambda: no_process_left(second), 30, "the retried call's processes outlived it")

    asyncio.run(lose_the_node())
    assert [kind for kind, _ in events] == ["certify_retried"]
    assert events[0][1]["hook"] == "certify" and events[0][1]["attempt"] == 1

