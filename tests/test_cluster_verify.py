"""Verification on the nodes of a real local Ray cluster, for a problem that opts in (evolve/cluster/verify.py).

Outputs judged on the nodes get the same verdicts and scores as on the driver; a node whose disk
holds another copy of the verifier (same path, other bytes: a node started in its own mount
namespace) is refused, named, and gets no work, while the other nodes keep verifying.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from evolve.cluster.connect import ClusterError
from evolve.cluster.verify import NodeVerifiers, node_verifiers, verification_place
from evolve.config import ConfigError, compose_config
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem
from evolve.sandbox.factory import limits_from
from evolve.sandbox.process import ProcessSandbox
from tests.cluster_support import SEED, VERIFIER, LocalCluster, cluster_fixture, processes_running, write_problem
from tests.conftest import wait_for

cluster = cluster_fixture(driver=True)  # node_with_own_disk asks Ray which nodes joined


def node_problem(folder: Path, verifier: str = VERIFIER) -> Path:
    """The shared test problem (best score 0 at SCALE = 3), judged on the nodes (verify_on: node)."""
    return write_problem(folder, delay=0.0, verifier=verifier, verify_on="node")


@pytest.fixture(scope="module")
def problem_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return node_problem(tmp_path_factory.mktemp("verify") / "scaled")


def run_config(cluster: LocalCluster, folder: Path, *extra: str):
    return compose_config([f"problem={folder}", f"cluster.address={cluster.address}", *extra])


PROGRAMS = [SEED, SEED.replace("2.0", "3.0"), SEED.replace("2.0", "'x'")]  # a good, the best, an invalid one


async def evaluate_all(evaluator: Evaluator) -> list[Evaluation]:
    try:
        return [await evaluator.evaluate(code, "search") for code in PROGRAMS]
    finally:
        evaluator.close()


def comparable(evaluation: Evaluation) -> tuple:
    return evaluation.valid, evaluation.score, evaluation.verdicts, evaluation.feedback, evaluation.rejected


@pytest.mark.slow
def test_outputs_judged_on_the_nodes_score_as_on_the_driver(cluster: LocalCluster, problem_folder: Path) -> None:
    cfg = run_config(cluster, problem_folder)
    problem = load_problem(cfg)
    assert problem.verify_on == "node" and verification_place(cfg, problem.verify_on) == "node"
    sandbox = ProcessSandbox()
    on_driver = asyncio.run(evaluate_all(Evaluator(problem, sandbox, limits_from(cfg), "h", 10)))
    events: list = []

    async def record(kind: str, **data) -> None:
        events.append((kind, data))

    async def on_nodes() -> tuple[list[Evaluation], list[str]]:
        pool = await node_verifiers(cfg, problem, sandbox.identity, record)
        assert isinstance(pool, NodeVerifiers)
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "h", 10)
        evaluator.verifier = pool  # as the session wires it
        accepted = sorted(pool.accepted)
        return await evaluate_all(evaluator), accepted

    judged, accepted = asyncio.run(on_nodes())
    assert sorted(accepted) == sorted(node.node_id for node in cluster.workers)  # the head runs no work
    assert [comparable(e) for e in judged] == [comparable(e) for e in on_driver]
    assert [e.score for e in judged] == [-2.5, 0.0, None]  # mean of -1, -2, -3, -4
    assert events == [("verify_nodes", {"nodes": accepted, "refused": 0})]


def test_the_problem_key_wins_over_the_cluster_setting_and_no_cluster_means_the_driver(problem_folder: Path) -> None:
    def place(problem_key: str | None, *overrides: str) -> str:  # no cluster is reached to decide this
        return verification_place(compose_config([f"problem={problem_folder}", *overrides]), problem_key)

    address = "cluster.address=10.0.0.1:6379"
    assert place("node", address, "cluster.verify_on=driver") == "node"
    assert place("driver", address, "cluster.verify_on=node") == "driver"
    assert place(None, address, "cluster.verify_on=node") == "node"
    assert place(None, address) == "driver"
    assert place("node", "cluster.verify_on=node") == "driver"  # no cluster: this machine judges


@pytest.mark.slow
def test_a_node_with_another_copy_of_the_verifier_is_refused_and_named_and_the_others_keep_verifying(
        cluster: LocalCluster, problem_folder: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(problem_folder, edited)
    (edited / "verifier.py").write_text(VERIFIER.replace("3.0 *", "3.5 *"))  # judges otherwise
    odd_node = cluster.node_with_own_disk(problem_folder, edited)
    cfg = run_config(cluster, problem_folder)
    problem = load_problem(cfg)
    sandbox = ProcessSandbox()
    on_driver = asyncio.run(evaluate_all(Evaluator(problem, sandbox, limits_from(cfg), "h", 10)))
    events: list = []

    async def record(kind: str, **data) -> None:
        events.append((kind, data))

    async def on_nodes() -> tuple[list[Evaluation], NodeVerifiers, list[str]]:
        pool = await node_verifiers(cfg, problem, sandbox.identity, record)
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "h", 10)
        evaluator.verifier = pool
        accepted = sorted(pool.accepted)
        return await evaluate_all(evaluator), pool, accepted

    try:
        judged, pool, accepted = asyncio.run(on_nodes())
    finally:  # the odd node would verify other problems' folders, which it sees as they are
        cluster.stop_own_disk_nodes()
    assert accepted == sorted(node.node_id for node in cluster.workers)  # the odd node gets no work
    reason = pool.refused[odd_node]
    assert reason.startswith("node ") and odd_node[:12] in reason and "verifier.py" in reason
    assert [kind for kind, _ in events] == ["verify_node_refused", "verify_nodes"]
    assert events[0][1]["node_id"] == odd_node and "verifier.py" in events[0][1]["reason"]
    assert [comparable(e) for e in judged] == [comparable(e) for e in on_driver]


@pytest.mark.slow
def test_a_cluster_where_no_node_matches_is_refused_in_one_line(cluster: LocalCluster, tmp_path: Path) -> None:
    folder = node_problem(tmp_path / "elsewhere")
    cfg = run_config(cluster, folder)
    problem = load_problem(cfg)
    (folder / "cases.json").write_text(json.dumps({"search": [{"id": "c0", "inputs": {"x": 9}}], "heldout": []}))

    with pytest.raises(ClusterError, match=r"no node may verify this problem \(node .*cases.json"):
        asyncio.run(node_verifiers(cfg, problem, ProcessSandbox().identity))


@pytest.mark.slow
def test_no_verification_on_nodes_unless_asked(cluster: LocalCluster, tmp_path: Path) -> None:
    folder = write_problem(tmp_path / "plain", delay=0.0)  # no verify_on key
    cfg = run_config(cluster, folder)
    assert asyncio.run(node_verifiers(cfg, load_problem(cfg), ProcessSandbox().identity)) is None


@pytest.mark.slow
def test_a_node_that_joins_is_checked_then_gets_verification_work(cluster: LocalCluster, problem_folder: Path) -> None:
    cfg = run_config(cluster, problem_folder)
    problem = load_problem(cfg)
    sandbox = ProcessSandbox()
    events: list = []

    async def record(kind: str, **data) -> None:
        events.append((kind, data))

    async def with_a_new_node() -> tuple[list[Evaluation], object, bool]:
        pool = await node_verifiers(cfg, problem, sandbox.identity, record)
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "h", 10)
        evaluator.verifier = pool
        try:
            node = cluster.add()
            judged = [await evaluator.evaluate(SEED, "search")]
            while node.node_id not in pool.accepted:
                judged.append(await evaluator.evaluate(SEED, "search"))
                await asyncio.sleep(0.2)
            judged += [await evaluator.evaluate(SEED, "search") for _ in range(len(pool.accepted))]  # every node once
            working = any(cluster.runs(node, pid) for pid in processes_running("evolve.verify_worker"))
            return judged, node, working
        finally:
            evaluator.close()

    judged, node, working = asyncio.run(with_a_new_node())
    assert {e.score for e in judged} == {-2.5}
    assert ("verify_node_joined", {"node": events[-1][1]["node"], "node_id": node.node_id}) == events[-1]
    assert working  # a verification process runs under the new node


def test_a_wrong_verify_on_is_a_one_line_error(tmp_path: Path) -> None:
    folder = node_problem(tmp_path / "p")
    with pytest.raises(ConfigError, match=r"^cluster.verify_on must be 'driver' or 'node'$"):
        compose_config([f"problem={folder}", "cluster.verify_on=nodes"])
    (folder / "problem.yaml").write_text((folder / "problem.yaml").read_text().replace("verify_on: node", "verify_on: gpu"))
    with pytest.raises(ConfigError, match=r"^problem.verify_on must be 'driver' or 'node'"):
        compose_config([f"problem={folder}"])


SLOW_VERIFIER = VERIFIER.replace('''def verify(case, run, settings):
''', '''def verify(case, run, settings):
    import os, time
    from pathlib import Path
    Path(settings["pids"]).write_text(str(os.getpid()))
    time.sleep(settings["sleep"])
''')


@pytest.mark.slow
def test_a_node_lost_while_judging_sends_the_job_to_another_node(cluster: LocalCluster, tmp_path: Path) -> None:
    folder = node_problem(tmp_path / "slow", SLOW_VERIFIER)
    pids = tmp_path / "pids"
    cfg = run_config(cluster, folder, f"+problem.settings.pids={pids}", "+problem.settings.sleep=1")
    problem = load_problem(cfg)
    sandbox = ProcessSandbox()
    events: list = []

    async def record(kind: str, **data) -> None:
        events.append((kind, data))

    async def lose_a_node() -> tuple[Evaluation, str]:
        pool = await node_verifiers(cfg, problem, sandbox.identity, record)
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), "h", 60)
        evaluator.verifier = pool
        try:
            judging = asyncio.create_task(evaluator.evaluate(SEED, "search"))
            pid = int(await asyncio.to_thread(wait_for, lambda: pids.exists() and pids.read_text(), 60,
                                              "the verifier did not start"))
            pids.unlink()
            node = next(n for n in cluster.workers if cluster.runs(n, pid))
            cluster.remove(node)
            return await judging, node.node_id
        finally:
            evaluator.close()

    evaluation, lost = asyncio.run(lose_a_node())
    assert evaluation.valid and evaluation.score == -2.5  # judged in full on the other node
    kinds = [kind for kind, _ in events]
    assert kinds == ["verify_nodes", "verify_node_lost"] and events[1][1]["node_id"] == lost

