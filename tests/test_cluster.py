"""Evaluation on a Ray cluster: a real cluster of a head and two worker nodes on this machine.

The driver (the `evolve run` process, or this test process) proposes, verifies and stores; the
nodes run candidates in their own bubblewrap sandbox. Nodes come and go while a search runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from evolve.cluster.connect import ClusterError, connect, disconnect
from evolve.cluster.nodes import Member, NodeRegistry
from evolve.cluster.sandbox import RaySandbox
from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.problem import SANDBOX_PART, load_problem
from evolve.sandbox.base import SandboxJob
from evolve.sandbox.bwrap import BwrapSandbox
from evolve.sandbox.factory import limits_from
from tests.cluster_support import (RUN_OVERRIDES, LocalCluster, cluster_fixture, other_install, processes_running,
                                   write_problem)
from tests.conftest import query, wait_for

pytestmark = pytest.mark.timeout(240)


cluster = cluster_fixture(driver=False)  # RaySandbox and `evolve run` connect on their own


@pytest.fixture(scope="module")
def problem_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_problem(tmp_path_factory.mktemp("problem") / "scaled")


def evolve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolve", *args]


@contextlib.contextmanager
def search_in_background(cluster: LocalCluster, problem: Path, run_dir: Path, log: Path,
                         *overrides: str) -> Iterator[subprocess.Popen]:
    """`evolve run` on the cluster in a process of its own, its output in `log`; killed on the way out if the
    test left it running."""
    with log.open("w") as out:
        engine = subprocess.Popen(evolve_command("run", f"problem={problem}", f"run.dir={run_dir}", *RUN_OVERRIDES,
                                                 "budget.evaluations=1000", "search.evaluators=2",
                                                 f"cluster.address={cluster.address}", *overrides),
                                  stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            yield engine
        finally:
            if engine.poll() is None:
                engine.kill()
                engine.wait(timeout=30)


def interrupt(engine: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops a run, and wait for it to end."""
    engine.send_signal(signal.SIGINT)
    engine.wait(timeout=90)


def events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(data) for (data,) in query(run_dir, f"SELECT data FROM events WHERE kind = '{kind}'")]


def assert_each_candidate_stored_once_and_valid(run_dir: Path) -> None:
    assert query(run_dir, "SELECT code_hash FROM programs GROUP BY code_hash HAVING COUNT(*) > 1") == []
    assert query(run_dir, "SELECT program_id FROM proposals WHERE program_id IS NOT NULL "
                         "GROUP BY program_id HAVING COUNT(*) > 1") == []
    # One search evaluation per program; a champion's re-check (verification.recheck_champion) is the one more.
    champions = {event["program_id"] for event in events(run_dir, "champion")}
    counts = dict(query(run_dir, "SELECT program_id, COUNT(*) FROM evaluations WHERE split = 'search' "
                                "GROUP BY program_id"))
    (programs,) = query(run_dir, "SELECT COUNT(*) FROM programs")[0]
    assert len(counts) == programs
    assert all(count == 1 or (count == 2 and program in champions) for program, count in counts.items()), counts
    # Every mutation of this problem is a valid program: an invalid one could only be a lost node's doing.
    assert query(run_dir, "SELECT id, feedback FROM evaluations WHERE NOT valid") == []


def test_an_unreachable_cluster_is_a_one_line_error_and_nothing_is_written(tmp_path: Path, problem_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(evolve_command("run", f"problem={problem_dir}", f"run.dir={run_dir}", *RUN_OVERRIDES,
                                         "cluster.address=127.0.0.1:9", "cluster.connect_timeout=5"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0] and "cluster.address" in lines[0], done.stderr
    assert not run_dir.exists()


# Python's own way to make a package unimportable, as on a machine installed without the extra.
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from evolve.cli import app; app()"


def test_a_cluster_without_the_ray_extra_is_a_one_line_error_naming_the_fix(tmp_path: Path,
                                                                            problem_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "run", f"problem={problem_dir}", f"run.dir={run_dir}",
                           *RUN_OVERRIDES, "cluster.address=127.0.0.1:6379"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'evolve-search[ray]'" in lines[0], done.stderr
    assert not run_dir.exists()


def test_a_search_without_a_cluster_never_imports_ray(tmp_path: Path, problem_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "run", f"problem={problem_dir}",
                           f"run.dir={tmp_path / 'run'}", *RUN_OVERRIDES, "budget.evaluations=2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_search_runs_its_candidates_on_both_worker_nodes(tmp_path: Path, cluster: LocalCluster,
                                                            problem_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(evolve_command("run", f"problem={problem_dir}", f"run.dir={run_dir}", *RUN_OVERRIDES,
                                         "budget.evaluations=4", "search.evaluators=2",
                                         f"cluster.address={cluster.address}"),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    workers = {cluster.node_id(node) for node in cluster.workers}
    assert {event["node"] for event in events(run_dir, "node_joined")} == workers  # the head has no CPUs
    (usage,) = events(run_dir, "cluster_usage")
    assert {node["node"] for node in usage["nodes"] if node["jobs"] > 0} == workers
    # The run's sandbox identity is the nodes' shared tier, so a resume on another tier is recorded.
    (parts,) = query(run_dir, "SELECT evaluator_parts FROM runs")[0]
    assert json.loads(parts)[SANDBOX_PART].startswith("ray:bwrap-")
    assert_each_candidate_stored_once_and_valid(run_dir)


@pytest.mark.slow
def test_one_candidates_cases_fanned_out_over_both_nodes_score_as_on_this_machine(
        cluster: LocalCluster, problem_dir: Path) -> None:
    cfg = compose_config([f"problem={problem_dir}", "sandbox=bwrap", f"cluster.address={cluster.address}",
                          "cluster.cases_per_task=1"])
    problem = load_problem(cfg)
    code = problem.seed_code.replace("SCALE = 2.0", "SCALE = 2.5")

    async def evaluate(sandbox) -> tuple[Any, Any]:
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "same-hash")
        try:
            return await evaluator.evaluate(code, "search"), getattr(sandbox, "usage", lambda: None)()
        finally:
            evaluator.close()
            await sandbox.close()

    spread, usage = asyncio.run(evaluate(RaySandbox(cfg, "fan-out")))
    here, _ = asyncio.run(evaluate(BwrapSandbox(scratch_mb=16)))
    assert spread.valid and here.valid
    assert spread.score == here.score and spread.verdicts == here.verdicts
    # One candidate, four cases: each worker node ran some of them.
    assert sorted(node["cases"] for node in usage) in ([1, 3], [2, 2])


@pytest.mark.slow
def test_a_node_lost_mid_run_loses_nothing_and_a_node_that_joins_gets_work(
        tmp_path: Path, cluster: LocalCluster, problem_dir: Path) -> None:
    slow_problem = write_problem(tmp_path / "slow", cases=4, delay=2.0)  # chunks long in flight
    run_dir = tmp_path / "run"
    with search_in_background(cluster, slow_problem, run_dir, tmp_path / "run.log", "cluster.retries=2") as engine:
        victim = cluster.workers[0]
        wait_for(lambda: cluster.running_candidate(victim), 90, "no candidate ran on the first node")
        lost = cluster.node_id(victim)
        cluster.remove(victim)  # its candidate was running: its chunk must go to another node
        newcomer = cluster.add()
        wait_for(lambda: cluster.running_candidate(newcomer), 90, "no candidate ran on the node that joined")
        interrupt(engine)
    output = (tmp_path / "run.log").read_text()
    assert engine.returncode == 130, output  # interrupted by us, not failed
    (node_lost,) = events(run_dir, "node_lost")
    assert node_lost["node"] == lost
    assert [event["node"] for event in events(run_dir, "task_retried")] and \
        {event["node"] for event in events(run_dir, "task_retried")} == {lost}
    assert cluster.node_id(newcomer) in {event["node"] for event in events(run_dir, "node_joined")}
    (usage,) = events(run_dir, "cluster_usage")
    assert {node["node"]: node["jobs"] for node in usage["nodes"]}[cluster.node_id(newcomer)] > 0
    assert_each_candidate_stored_once_and_valid(run_dir)
    (status,) = query(run_dir, "SELECT status FROM runs")[0]
    assert status == "interrupted"


@pytest.mark.slow
def test_a_node_that_joins_a_run_judging_on_the_nodes_gets_candidates_and_a_verifier(
        tmp_path: Path, cluster: LocalCluster) -> None:
    # One registry watches the cluster for both the sandbox and the node verifiers (evolve/cluster/nodes.py).
    judged_on_nodes = write_problem(tmp_path / "judged", cases=4, delay=0.5, verify_on="node")
    run_dir = tmp_path / "run"
    newcomer = None
    try:
        with search_in_background(cluster, judged_on_nodes, run_dir, tmp_path / "run.log",
                                  "cluster.cases_per_task=1") as engine:
            wait_for(lambda: any(cluster.running_candidate(node) for node in cluster.workers), 90, "no candidate ran")
            newcomer = cluster.add()
            wait_for(lambda: cluster.running_candidate(newcomer), 90, "no candidate ran on the node that joined")
            wait_for(lambda: any(cluster.runs(newcomer, pid) for pid in processes_running("evolve.verify_worker")),
                     90, "no verifier ran on the node that joined")
            interrupt(engine)
    finally:
        if newcomer is not None:
            cluster.remove(newcomer)  # the module's cluster keeps its two worker nodes
    output = (tmp_path / "run.log").read_text()
    assert engine.returncode == 130, output
    assert newcomer is not None
    joined = newcomer.node_id
    assert joined in {event["node"] for event in events(run_dir, "node_joined")}
    assert joined in {event["node_id"] for event in events(run_dir, "verify_node_joined")}
    assert not events(run_dir, "verify_node_refused") and not events(run_dir, "node_refused")
    (usage,) = events(run_dir, "cluster_usage")
    assert {node["node"]: node["jobs"] for node in usage["nodes"]}[joined] > 0
    assert_each_candidate_stored_once_and_valid(run_dir)


@pytest.mark.slow
def test_the_registry_tells_each_watcher_who_joined_and_left_and_a_forgotten_node_again(cluster: LocalCluster) -> None:
    ray = connect(cluster.address, timeout=30)

    async def eventually(condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(90):
                while not condition():
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{what} within 90 s") from None

    async def scenario() -> tuple[dict[str, Member], str, list[tuple[str, str]], list[tuple[str, str]]]:
        registry = NodeRegistry(ray, period=0.2)
        workers = {node.node_id for node in cluster.workers}

        def settled() -> dict[str, Member] | None:
            """The workers and the head, once a node an earlier test removed is no longer listed (Ray notices
            in about 1.5 s here)."""
            alive = registry.alive()
            return alive if workers <= alive.keys() and len(alive) == len(workers) + 1 else None

        start = await asyncio.to_thread(wait_for, settled, 60, "the cluster did not settle")
        heard: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
        watches = {name: registry.watch(lambda member, news=news: news.append(("joined", member.node_id)),
                                        lambda node_id, news=news: news.append(("left", node_id)), start)
                   for name, news in heard.items()}
        newcomer = cluster.add()  # in this thread: Ray starts a node with signal handlers
        node_id = newcomer.node_id
        try:
            await eventually(lambda: all(("joined", node_id) in news for news in heard.values()),
                             "the watchers did not hear of the node that joined")
            watches["a"].forget(node_id)  # `a` gave up on it while Ray still lists it: it hears of it again
            await eventually(lambda: heard["a"].count(("joined", node_id)) == 2, "the forgotten node was not offered")
        finally:
            cluster.remove(newcomer)
        await eventually(lambda: all(("left", node_id) in news for news in heard.values()),
                         "the watchers did not hear of the node that left")
        registry.close()
        return start, node_id, heard["a"], heard["b"]

    try:
        start, node_id, a, b = asyncio.run(scenario())
    finally:
        disconnect()
    workers = {node.node_id for node in cluster.workers}
    assert {node_id for node_id, member in start.items() if member.cpus > 0} == workers
    assert [member.cpus for node_id, member in start.items() if node_id not in workers] == [0.0]  # the head
    assert all(member.host not in ("", "?") for member in start.values())
    assert a == [("joined", node_id), ("joined", node_id), ("left", node_id)]
    assert b == [("joined", node_id), ("left", node_id)]


@pytest.mark.slow
def test_a_node_running_another_evolve_is_refused_named_and_given_no_work(
        tmp_path: Path, cluster: LocalCluster, problem_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray puts the driver's working directory on its workers' import path: from a checkout, that would
    # be this evolve on every node of this one machine. A driver elsewhere shares no folder with them.
    monkeypatch.chdir(tmp_path)
    stranger = cluster.add(env_vars={"PYTHONPATH": str(other_install(tmp_path / "other"))})
    try:
        cfg = compose_config([f"problem={problem_dir}", "sandbox=bwrap", f"cluster.address={cluster.address}",
                              "cluster.cases_per_task=1"])
        seen: list[tuple[str, dict[str, Any]]] = []

        async def record(kind: str, **data: Any) -> None:
            seen.append((kind, data))

        async def scenario() -> list[dict[str, Any]]:
            sandbox = RaySandbox(cfg, "refusal")
            await sandbox.listen(record)
            try:
                job = SandboxJob("def main(x, delay, **_):\n    return {'value': x}\n", "main",
                                 tuple((f"c{i}", {"x": i, "delay": 0}) for i in range(6)), limits_from(cfg))
                result = await sandbox.run(job)
                assert [run.status for run in result.runs] == ["ok"] * 6
                return sandbox.usage()
            finally:
                await sandbox.close()

        usage = asyncio.run(scenario())
        refused = [data for kind, data in seen if kind == "node_refused"]
        assert [event["node"] for event in refused] == [cluster.node_id(stranger)]
        assert "runner" in refused[0]["reason"] and refused[0]["host"]
        assert cluster.node_id(stranger) not in {node["node"] for node in usage}
        assert sum(node["cases"] for node in usage) == 6
    finally:
        cluster.remove(stranger)


@pytest.mark.slow
def test_a_task_lost_more_often_than_the_retries_allow_stops_the_run_with_a_cluster_error(
        cluster: LocalCluster, problem_dir: Path) -> None:
    cfg = compose_config([f"problem={problem_dir}", "sandbox=bwrap", f"cluster.address={cluster.address}",
                          "cluster.retries=0", "cluster.cases_per_task=8"])

    async def scenario() -> str:
        sandbox = RaySandbox(cfg, "retries")
        try:
            job = SandboxJob("import time\ndef main(**_):\n    time.sleep(3)\n    return 1\n", "main",
                             (("c1", {}),), limits_from(cfg))
            running = asyncio.create_task(sandbox.run(job))
            node = await asyncio.to_thread(wait_for, lambda: next(
                (n for n in cluster.workers if cluster.running_candidate(n)), None), 60, "the candidate did not start")
            await asyncio.to_thread(cluster.remove, node)
            with pytest.raises(ClusterError) as raised:
                await running
            return str(raised.value)
        finally:
            await sandbox.close()

    message = asyncio.run(scenario())
    assert "cluster.retries=0" in message and "evolve resume" in message
    cluster.add()  # the module's cluster keeps two worker nodes


@pytest.mark.slow
def test_a_driver_killed_with_sigkill_leaves_nothing_running_and_resumes_with_nothing_lost(
        tmp_path: Path, cluster: LocalCluster) -> None:
    slow_problem = write_problem(tmp_path / "slow", cases=4, delay=1.0)
    run_dir = tmp_path / "run"
    with search_in_background(cluster, slow_problem, run_dir, tmp_path / "run.log") as engine:
        def stored() -> int:
            try:  # the file exists a moment before its tables do
                return query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE split = 'search'")[0][0]
            except sqlite3.OperationalError:
                return 0

        wait_for(lambda: stored() >= 3 and any(cluster.running_candidate(n) for n in cluster.workers), 90,
                 "no evaluations stored with a candidate running on a node")
        engine.kill()  # SIGKILL: no clean-up code runs in the driver
        engine.wait(timeout=30)
    # Ray ends the workers a dead driver owned, and with them the candidates they were running.
    wait_for(lambda: not any(cluster.running_candidate(n) for n in cluster.workers), 60,
             "the killed driver's candidates still run")
    (before,) = query(run_dir, "SELECT COUNT(*) FROM programs")[0]
    done = subprocess.run(evolve_command("resume", str(run_dir), f"budget.evaluations={before + 3}"),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert_each_candidate_stored_once_and_valid(run_dir)
    (programs,) = query(run_dir, "SELECT COUNT(*) FROM programs")[0]
    assert programs > before
    assert events(run_dir, "sandbox_changed") == []  # the same nodes' tier: one identity across sessions


@pytest.mark.slow
def test_a_compiled_candidate_is_built_on_a_node_once_and_its_build_reused(tmp_path: Path,
                                                                             cluster: LocalCluster) -> None:
    from tests.compiled_support import make_compiled_problem

    problem = make_compiled_problem(tmp_path / "compiled", [{}, {}, {}])
    cfg = compose_config([f"problem={tmp_path / 'compiled' / 'problem.yaml'}", "sandbox=bwrap",
                          f"cluster.address={cluster.address}"])

    async def scenario() -> tuple[Any, Any]:
        sandbox = RaySandbox(cfg, "compiled")
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "compiled")
        try:
            return (await evaluator.evaluate(problem.seed_code, "search"),
                    await evaluator.evaluate(problem.seed_code, "search"))
        finally:
            evaluator.close()
            await sandbox.close()

    first, second = asyncio.run(scenario())
    assert first.valid and first.score == 1.0, first.feedback
    # The second evaluation ran the files the first one's build made (sent back from the node): same stamp.
    stamps = {verdict.metrics["build"] for verdict in first.verdicts.values()}
    assert len(stamps) == 1 and stamps == {verdict.metrics["build"] for verdict in second.verdicts.values()}
    assert second.valid


@pytest.mark.slow
@pytest.mark.docker
def test_docker_nodes_run_a_search_in_their_warm_pools_and_leave_no_container(
        tmp_path: Path, cluster: LocalCluster, problem_dir: Path) -> None:
    from evolve.session import sandbox_label
    from tests.sandbox_support import ensure_image, run_containers

    ensure_image()
    run_dir = tmp_path / "run"
    on_docker = [override for override in RUN_OVERRIDES if not override.startswith("sandbox=")] + ["sandbox=docker"]
    done = subprocess.run(evolve_command("run", f"problem={problem_dir}", f"run.dir={run_dir}", *on_docker,
                                         "budget.evaluations=3", "search.evaluators=2",
                                         f"cluster.address={cluster.address}"),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    (parts,) = query(run_dir, "SELECT evaluator_parts FROM runs")[0]
    assert json.loads(parts)[SANDBOX_PART].startswith("ray:docker:")
    (usage,) = events(run_dir, "cluster_usage")
    assert all(node["jobs"] > 0 for node in usage["nodes"]) and len(usage["nodes"]) == 2
    assert_each_candidate_stored_once_and_valid(run_dir)
    assert run_containers(sandbox_label(run_dir)) == []  # each node's pool removed its containers


@pytest.mark.slow
def test_a_run_started_on_this_machine_continues_on_the_cluster_with_the_change_recorded(
        tmp_path: Path, cluster: LocalCluster, problem_dir: Path) -> None:
    run_dir = tmp_path / "run"
    here = subprocess.run(evolve_command("run", f"problem={problem_dir}", f"run.dir={run_dir}", *RUN_OVERRIDES,
                                         "budget.evaluations=2"), capture_output=True, text=True, timeout=120)
    assert here.returncode == 0, here.stderr
    there = subprocess.run(evolve_command("resume", str(run_dir), "budget.evaluations=4",
                                          f"cluster.address={cluster.address}"),
                           capture_output=True, text=True, timeout=180)
    assert there.returncode == 0, there.stderr
    (changed,) = events(run_dir, "sandbox_changed")
    assert changed["old"].startswith("bwrap-") and changed["new"] == "ray:" + changed["old"]
    (usage,) = events(run_dir, "cluster_usage")
    assert all(node["jobs"] > 0 for node in usage["nodes"])
    assert_each_candidate_stored_once_and_valid(run_dir)


@pytest.mark.slow
def test_nodes_refuse_plain_processes_as_root_and_a_run_with_no_usable_node_writes_nothing(
        tmp_path: Path, cluster: LocalCluster, problem_dir: Path) -> None:
    run_dir = tmp_path / "run"
    as_processes = [override for override in RUN_OVERRIDES if not override.startswith("sandbox=")]
    done = subprocess.run(evolve_command("run", f"problem={problem_dir}", f"run.dir={run_dir}", *as_processes,
                                         "sandbox=process", f"cluster.address={cluster.address}"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    # Each worker node is named with its reason: the nodes run as root here, like this test.
    assert "can run candidates" in lines[0] and "sandbox.allow_root" in lines[0]
    assert all(cluster.node_id(node)[:12] in lines[0] for node in cluster.workers)
    assert not run_dir.exists()
