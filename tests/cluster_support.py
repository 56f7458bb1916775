"""A real Ray cluster on this machine for the cluster tests: a head with no CPUs and worker nodes.

Every node is a separate set of Ray processes (GCS, raylet, workers), as on separate machines.
Ray replaces a loopback address with the machine's own address (it expects other machines to
reach it), so the nodes listen on this machine's first address rather than 127.0.0.1; nothing
leaves the machine. Each cluster keeps its files in its own temporary folder, away from other
Ray users of the machine.

`LocalCluster.node_with_own_disk` starts a worker node whose view of one folder differs from
everyone else's: `ray start` in its own mount namespace, with another folder mounted over that
path, as a machine whose disk holds another copy of the files at the same place.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from ray.cluster_utils import Cluster

from evolve.cluster.connect import connect, disconnect
from evolve.paths import ROOT
from tests.conftest import wait_for

# A problem whose candidate takes a fixed wall time per case (so work is in flight while nodes come
# and go) and whose every offline mutation (numbers only: see RUN_OVERRIDES) stays a valid program.
SEED = '''import time

# EVOLVE-BLOCK-START
SCALE = 2.0
# EVOLVE-BLOCK-END


def main(x, delay, **_):
    time.sleep(delay)
    return {"value": SCALE * x}
'''

VERIFIER = '''from evolve.problem import Verdict


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}")
    value = run.output.get("value") if isinstance(run.output, dict) else None
    if not isinstance(value, (int, float)):
        return Verdict(False, feedback="no numeric value")
    return Verdict(True, -abs(value - 3.0 * case.inputs["x"]), metrics={"seen": value}, feedback="ok")
'''


def write_problem(folder: Path, cases: int = 4, delay: float = 0.3, verifier: str = VERIFIER,
                  verify_on: str | None = None) -> Path:
    """A problem folder (problem.yaml, seed, verifier, cases): best score 0 at SCALE = 3.

    `delay`: the candidate's wall seconds per case; `verify_on`: the problem's key of that name, if any.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.py").write_text(SEED)
    (folder / "verifier.py").write_text(verifier)
    search = [{"id": f"c{i}", "inputs": {"x": i + 1, "delay": delay}} for i in range(cases)]
    (folder / "cases.json").write_text(json.dumps({"search": search, "heldout": []}))
    (folder / "problem.yaml").write_text(
        "name: scaled\ndescription: scale a number\nseed_program: seed.py\nprompt: ''\ncases: cases.json\n"
        "verifier: verifier.py\nentry: main\nobjective: maximize\ncase_timeout: 5.0\nsettings: {}\n"
        + (f"verify_on: {verify_on}\n" if verify_on else ""))
    return folder


# Offline mutations of numbers only: a deleted line would be the candidate's own (invalid) fault.
RUN_OVERRIDES = ["sandbox=bwrap", "run.progress=false", "llm.numeric_rate=1.0", "llm.line_rate=0.0",
                 "llm.crossover_rate=0.0"]


class LocalCluster:
    """A head (num_cpus=0: it runs no candidates or tasks) and worker nodes of 1 CPU each."""

    def __init__(self, workers: int = 2) -> None:
        self.temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's socket paths must fit
        self.cluster = Cluster(initialize_head=True, connect=False,
                               head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": self.temp,
                                               # a node gone is noticed in about a second, not Ray's 30
                                               "_system_config": {"health_check_period_ms": 500,
                                                                  "health_check_failure_threshold": 3}})
        self.workers: list[Any] = []
        self.started: list[subprocess.Popen] = []  # `ray start` of the nodes with their own disk
        self.own_disk_nodes: list[str] = []  # their node ids
        for _ in range(workers):
            self.add()

    @property
    def address(self) -> str:
        return self.cluster.address

    def add(self, **node_args: Any) -> Any:
        """A worker node with 1 CPU (its slots), alive when this returns."""
        node = self.cluster.add_node(num_cpus=1, **node_args)
        self.cluster.wait_for_nodes()
        self.workers.append(node)
        return node

    def remove(self, node: Any) -> None:
        """The node's processes are killed, as when its machine goes away."""
        self.cluster.remove_node(node, allow_graceful=False)
        if node in self.workers:
            self.workers.remove(node)

    def node_id(self, node: Any) -> str:
        return node.node_id

    def runs(self, node: Any, pid: int) -> bool:
        """Whether process `pid` runs on `node` (descends from its raylet)."""
        raylet = node.all_processes.get("raylet")
        return bool(raylet) and descends_from(pid, raylet[0].process.pid)

    def running_candidate(self, node: Any) -> bool:
        """Whether a sandboxed candidate runs on `node` now (a bubblewrap process under its raylet)."""
        raylet = node.all_processes.get("raylet")
        if not raylet:
            return False
        return any(_command(pid) == "bwrap" for pid in _descendants(raylet[0].process.pid))

    def node_with_own_disk(self, place: Path, contents: Path) -> str:
        """A worker node (1 CPU) that sees `contents` at `place`; its node id once it has joined.

        Needs this process connected to the cluster (cluster_fixture(driver=True)).
        """
        import ray

        before = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")  # the ray of this Python
        command = (f"mount --bind {contents} {place} && exec {ray_cli} start --address={self.address} --num-cpus=1 "
                   "--block --disable-usage-stats")
        log = Path(self.temp) / f"own-disk-{len(self.started)}.log"
        with log.open("wb") as out:  # unshare and mount need root (CAP_SYS_ADMIN), as the tests have here
            process = subprocess.Popen(["unshare", "--mount", "sh", "-c", command], start_new_session=True,
                                       stdout=out, stderr=subprocess.STDOUT)
        self.started.append(process)

        def joined() -> set[str]:
            if process.poll() is not None:
                raise AssertionError(f"the node with its own disk did not start: {log.read_text()[-1000:]}")
            return {node["NodeID"] for node in ray.nodes() if node["Alive"]} - before

        node_id = next(iter(wait_for(joined, 90, "the node with its own disk did not join")))
        self.own_disk_nodes.append(node_id)
        return node_id

    def stop_own_disk_nodes(self) -> None:
        """Stop the nodes `node_with_own_disk` started, so later tests see only the fixture's workers."""
        for process in self.started:  # `ray start --block` stops its node's processes when it is stopped
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:  # and whatever of its node is left: every process it started is in its process group
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        self.started.clear()
        import ray

        if self.own_disk_nodes and ray.is_initialized():
            gone = set(self.own_disk_nodes)
            wait_for(lambda: not any(node["Alive"] and node["NodeID"] in gone for node in ray.nodes()), 60,
                     "the stopped nodes did not leave the cluster")
            self.own_disk_nodes.clear()

    def shutdown(self) -> None:
        self.stop_own_disk_nodes()
        self.cluster.shutdown()
        shutil.rmtree(self.temp, ignore_errors=True)


def cluster_fixture(*, driver: bool) -> Any:
    """A module-scoped `cluster` fixture: each test module gets its own fresh cluster of two worker
    nodes, as its tests add and remove nodes. Use as `cluster = cluster_fixture(driver=...)`.

    driver=True joins this test process to the cluster as a Ray driver, for tests that call Ray (or
    code that expects a connected Ray) themselves; driver=False leaves connecting to the code under
    test (RaySandbox connects and disconnects on its own).
    """

    @pytest.fixture(scope="module", name="cluster")
    def cluster() -> Iterator[LocalCluster]:
        local = LocalCluster(workers=2)
        try:
            if driver:
                connect(local.address, timeout=30)
            yield local
        finally:
            disconnect()  # whatever connection a test left, before its cluster goes
            local.shutdown()

    return cluster


def _parent(pid: int) -> int:
    """The parent of `pid` from /proc (ValueError/OSError when it is gone)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    current = pid
    while current > 1:
        if current == ancestor:
            return True
        try:
            current = _parent(current)
        except (OSError, IndexError, ValueError):
            return False
    return False


def _descendants(root: int) -> set[int]:
    """Every process below `root` (read from /proc: the tree of the node's raylet)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = _parent(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_group(pgid: int) -> list[int]:
    """Every live process of a process group, from the process table (zombies are dead)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def processes_running(module: str) -> list[int]:
    """The processes whose command line names `module` (e.g. evolve.verify_worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if module.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def other_install(folder: Path) -> Path:
    """A copy of evolve whose sandbox runner differs (one comment line): a node that runs it has an
    evolve other than the driver's, as a machine left on another version would."""
    for name in ("evolve", "sandbox"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    runner = folder / "sandbox" / "runner.py"
    runner.write_text(runner.read_text() + "\n# another version of the runner\n")
    return folder
