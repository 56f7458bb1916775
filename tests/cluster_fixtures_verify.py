"""A real Ray cluster on this machine for the certification and verify-on-node tests.

A head with no CPUs and worker nodes of one CPU each, every node its own set of Ray processes
(GCS, raylet, workers), as on separate machines. Ray replaces a loopback address with the
machine's own (it expects other machines to reach it), so nodes listen there; nothing leaves the
machine. Each cluster keeps its files in its own temporary folder, away from other Ray users.

`node_with_own_disk` starts a worker node whose view of one folder differs from everyone else's:
`ray start` in its own mount namespace, with another folder mounted over that path, as a machine
whose disk holds another copy of the files at the same place.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ray.cluster_utils import Cluster


class LocalCluster:
    """A head (num_cpus=0: it runs no tasks) and `workers` worker nodes of 1 CPU each."""

    def __init__(self, workers: int = 2) -> None:
        self.temp = tempfile.mkdtemp(prefix="rc2-", dir="/tmp")  # short: Ray's socket paths must fit
        self.cluster = Cluster(initialize_head=True, connect=False,
                               head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": self.temp})
        self.workers = [self.cluster.add_node(num_cpus=1) for _ in range(workers)]
        self.cluster.wait_for_nodes()
        self.started: list[subprocess.Popen] = []
        self.own_disk_nodes: list[str] = []  # their node ids

    @property
    def address(self) -> str:
        return self.cluster.address

    def node_with_own_disk(self, place: Path, contents: Path) -> str:
        """A worker node (1 CPU) that sees `contents` at `place`; its node id once it has joined."""
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

        node_id = next(iter(wait_until(joined, 90, "the node with its own disk to join")))
        self.own_disk_nodes.append(node_id)
        return node_id

    def shutdown(self) -> None:
        self.stop_own_disk_nodes()
        self.cluster.shutdown()
        shutil.rmtree(self.temp, ignore_errors=True)

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
            wait_until(lambda: not any(node["Alive"] and node["NodeID"] in gone for node in ray.nodes()), 60,
                       "the stopped nodes to leave the cluster")
            self.own_disk_nodes.clear()


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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
