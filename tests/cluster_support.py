"""A real Ray cluster on this machine for the cluster tests: a head with no CPUs and worker nodes.

Every node is a separate set of Ray processes (GCS, raylet, workers), as on separate machines.
Ray replaces a loopback address with the machine's own address (it expects other machines to
reach it), so the nodes listen on this machine's first address rather than 127.0.0.1; nothing
leaves the machine. Each cluster keeps its files in its own temporary folder, away from other
Ray users of the machine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.cluster_utils import Cluster

from evolve.paths import ROOT

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
    return Verdict(True, -abs(value - 3.0 * case.inputs["x"]), feedback="ok")
'''


def write_problem(folder: Path, cases: int = 4, delay: float = 0.3) -> Path:
    """A problem folder (problem.yaml, seed, verifier, cases): best score 0 at SCALE = 3."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.py").write_text(SEED)
    (folder / "verifier.py").write_text(VERIFIER)
    search = [{"id": f"c{i}", "inputs": {"x": i + 1, "delay": delay}} for i in range(cases)]
    (folder / "cases.json").write_text(json.dumps({"search": search, "heldout": []}))
    (folder / "problem.yaml").write_text(
        "name: scaled\ndescription: scale a number\nseed_program: seed.py\nprompt: ''\ncases: cases.json\n"
        "verifier: verifier.py\nentry: main\nobjective: maximize\ncase_timeout: 5.0\nsettings: {}\n")
    return folder


# Offline mutations of numbers only: a deleted line would be the candidate's own (invalid) fault.
RUN_OVERRIDES = ["sandbox=bwrap", "run.progress=false", "llm.numeric_rate=1.0", "llm.line_rate=0.0",
                 "llm.crossover_rate=0.0"]


class LocalCluster:
    """A head (num_cpus=0: it runs no candidates) and worker nodes of 1 CPU each."""

    def __init__(self, workers: int = 2) -> None:
        self.temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's socket paths must fit
        self.cluster = Cluster(initialize_head=True, connect=False,
                               head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": self.temp,
                                               # a node gone is noticed in about a second, not Ray's 30
                                               "_system_config": {"health_check_period_ms": 500,
                                                                  "health_check_failure_threshold": 3}})
        self.workers: list[Any] = []
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

    def running_candidate(self, node: Any) -> bool:
        """Whether a sandboxed candidate runs on `node` now (a bubblewrap process under its raylet)."""
        raylet = node.all_processes.get("raylet")
        if not raylet:
            return False
        return any(_command(pid) == "bwrap" for pid in _descendants(raylet[0].process.pid))

    def shutdown(self) -> None:
        self.cluster.shutdown()
        shutil.rmtree(self.temp, ignore_errors=True)


def _descendants(root: int) -> set[int]:
    """Every process below `root` (read from /proc: the tree of the node's raylet)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
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


def other_install(folder: Path) -> Path:
    """A copy of evolve whose sandbox runner differs (one comment line): a node that runs it has an
    evolve other than the driver's, as a machine left on another version would."""
    for name in ("evolve", "sandbox"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    runner = folder / "sandbox" / "runner.py"
    runner.write_text(runner.read_text() + "\n# another version of the runner\n")
    return folder


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
