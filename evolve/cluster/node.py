"""The worker a cluster node runs: that node's own sandbox tier, running the jobs the driver sends.

One long-lived actor per node (evolve/cluster/sandbox.py starts it, pinned to the node). It builds
the sandbox by the same rules as on one machine (evolve/sandbox/factory.py: the Docker warm pool,
bubblewrap, `sandbox=auto` and its refusal of plain processes as root), so a node is exactly as
fenced as a single-machine run would be there. It only runs candidates: outputs go back to the
driver, which verifies and stores them. Ray is not imported here: the cluster sandbox wraps this
class with `ray.remote`.
"""

from __future__ import annotations

from dataclasses import dataclass

from evolve.sandbox.base import Sandbox, SandboxJob, SandboxResult
from evolve.sandbox.process import runner_hash
from evolve.settings import ProblemSettings, SearchSettings, Settings


@dataclass(frozen=True)
class NodeReport:
    """What a node says about itself when its worker starts."""

    node_id: str
    host: str  # its address in the cluster
    identity: str  # its sandbox's identity; empty when the sandbox could not start
    runner: str  # the hash of the sandbox runner installed there (the driver decodes with its own)
    error: str = ""  # why the sandbox could not start (no Docker, process tier as root, ...)


def node_settings(settings: Settings, slots: int) -> Settings:
    """The part of the run's settings a node's sandbox is built from (nothing else leaves the driver:
    no API keys, no database URL, no verifier). The Docker pool is sized to the node's slots."""
    return Settings(sandbox=settings.sandbox, search=SearchSettings(evaluators=slots),
                    problem=ProblemSettings(files=settings.problem.files))


class NodeWorker:
    """Owns one node's sandbox; `run` is called concurrently, up to the node's slots."""

    def __init__(self, settings: Settings, label: str, node_id: str) -> None:
        from evolve.sandbox.factory import make_sandbox

        self.node_id = node_id
        self.sandbox: Sandbox | None = None
        self.error = ""
        try:
            self.sandbox = make_sandbox(settings, label)
        except Exception as error:  # noqa: BLE001 - any reason is the node's refusal, reported to the driver
            text = str(error).strip().splitlines()
            self.error = (text[0] if text else type(error).__name__)[:300]

    def report(self) -> NodeReport:
        import ray  # inside a Ray worker: present

        identity = self.sandbox.identity if self.sandbox is not None else ""
        return NodeReport(self.node_id, ray.util.get_node_ip_address(), identity, runner_hash(), self.error)

    async def run(self, job: SandboxJob) -> SandboxResult:
        if self.sandbox is None:
            raise RuntimeError(f"this node's sandbox did not start: {self.error}")
        return await self.sandbox.run(job)

    async def close(self) -> None:
        """Stop the sandbox (a Docker pool removes its containers)."""
        if self.sandbox is not None:
            await self.sandbox.close()
            self.sandbox = None
