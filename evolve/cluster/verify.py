"""Verification on the cluster's nodes, for problems that opt in (docs/verification.md).

By default the driver judges every output: it is the trusted side. A problem may opt in with
`verify_on: node` in its problem.yaml (or the operator for a whole run with `cluster.verify_on=node`;
the problem's key wins when it is set). Then one NodeVerifier actor per node, pinned to it,
loads the problem *from that node's own disk* (the same problem.yaml path, a bundled problem
from the node's installation), computes its evaluator identity and compares it, part by part,
with the driver's. A node whose identity differs (its verifier, its helpers, its cases, its
settings, its evolve scoring code) is refused with a one-line reason naming the node and the
parts, gets no verification work, and the refusal is recorded (event `verify_node_refused`).
The sandbox part is taken from the driver: the sandbox runs candidates, it does not judge them.

The pool, NodeVerifiers, is judge-shaped like evolve.verifier_process.VerifierProcesses
(`async judge(job) -> reply`, `close()`), so the Evaluator sends its judge payload to a node
and reads the same reply. A node lost mid-judge: the job goes to another accepted node (at most
`cluster.retries` times per job), recorded as `verify_node_lost`; never a score.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Awaitable, Callable

from omegaconf import DictConfig, OmegaConf

from evolve.cluster.connect import ClusterError, first_line
from evolve.cluster.nodes import Member, NodeRegistry, Watch

log = logging.getLogger("evolve.cluster")
Record = Callable[..., Awaitable[None]]  # recorder.event(kind, **data)
PLACES = ("driver", "node")


def verification_place(cfg: Any, problem_verify_on: str | None) -> str:
    """Where this run's outputs are judged: "node" only on a cluster and when the problem's
    `verify_on` says so, or, the problem saying nothing, `cluster.verify_on` does."""
    if not cfg.cluster.address:
        return "driver"
    return problem_verify_on or cfg.cluster.verify_on


class NodeVerifier:
    """On one node: the problem as this node's disk holds it, checked, then judging jobs (a Ray actor)."""

    def __init__(self, problem_section: dict[str, Any], driver_parts: dict[str, str], timeout: float) -> None:
        import ray

        self.node = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.refused = ""
        self.verifier: Any = None
        try:
            problem = _load_here(problem_section)
        except Exception as error:  # noqa: BLE001 - any failure to load is the reason this node is refused
            self.refused = f"cannot load the problem from its disk: {str(error).splitlines()[0][:300]}"
            return
        from evolve.problem import SANDBOX_PART, compare_identity
        from evolve.verifier_process import VerifierProcesses

        parts = problem.identity_parts(driver_parts.get(SANDBOX_PART, ""))  # the sandbox: the driver's
        changes = compare_identity(driver_parts, parts).changes
        if changes:
            self.refused = f"its evaluator differs from the driver's ({changes})"
            return
        self.verifier = VerifierProcesses(problem.verifier_source, timeout)  # the node's code: identical bytes

    async def status(self) -> dict[str, str]:
        return {"node": self.node, "node_id": self.node_id, "refused": self.refused}

    async def judge(self, job: dict[str, Any]) -> dict[str, Any]:
        if self.verifier is None:
            raise RuntimeError(f"node {self.node} was refused: {self.refused}")
        return await self.verifier.judge(job)

    async def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()


def _load_here(section: dict[str, Any]):
    """The problem as this machine's disk has it: its problem.yaml re-read when the run names one
    (a bundled problem from this installation), else the section's own file paths."""
    from evolve.config import reread_problem
    from evolve.problem import load_problem

    problem = OmegaConf.create(section)
    if problem.get("file"):
        problem = reread_problem(problem)
    return load_problem(OmegaConf.create({"problem": problem}))


class NodeVerifiers:
    """The driver's pool of NodeVerifier actors, one per node that runs work; judge-shaped.

    `registry`: the run's watcher of the cluster's nodes (the cluster sandbox's, lent by the session);
    None: the pool watches the cluster with a registry of its own, which it stops when it closes.
    """

    def __init__(self, ray: Any, problem_section: dict[str, Any], driver_parts: dict[str, str], timeout: float,
                 retries: int = 2, record: Record | None = None, registry: NodeRegistry | None = None) -> None:
        self.ray = ray
        self.section = problem_section
        self.parts = driver_parts
        self.timeout = timeout
        self.retries = retries
        self.record = record
        self.accepted: dict[str, Any] = {}  # node id -> actor
        self.refused: dict[str, str] = {}  # node id -> the one-line reason
        self.turn = itertools.count()
        self.started = False
        self.registry = registry if registry is not None else NodeRegistry(ray)
        self._own_registry = registry is None
        self._watch: Watch | None = None
        self._checking: set[asyncio.Task] = set()  # nodes that joined, being checked
        self.actor = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(NodeVerifier)

    async def start(self) -> None:
        """Check every node now; ClusterError if none may verify. Then nodes that join are checked as the
        registry reports them."""
        alive = await asyncio.to_thread(self.registry.alive)
        actors = {member.node_id: self._start_verifier(member.node_id) for member in alive.values() if member.cpus > 0}
        for node_id, actor in actors.items():
            await self._check(node_id, actor)
        self.started = True
        if not self.accepted:
            reasons = "; ".join(self.refused.values()) or "the cluster has no node with CPUs"
            raise ClusterError(f"no node may verify this problem ({reasons}); fix the nodes' copies of the problem "
                               "and evolve, or verify on the driver (verify_on: driver)")
        # No `left`: a node that leaves keeps its place until a judgement sent there fails; that is where its
        # loss is recorded (verify_node_lost) and counted against cluster.retries. Nor does a verifier lost
        # on a node Ray still lists come back (no `forget`, unlike the sandbox's workers): each node is
        # checked once.
        self._watch = self.registry.watch(self._joined, known=alive)
        if self.record is not None:
            await self.record("verify_nodes", nodes=sorted(self.accepted), refused=len(self.refused))

    async def judge(self, job: dict[str, Any]) -> dict[str, Any]:
        """The reply of one accepted node's verifier (see VerifierProcesses.judge)."""
        lost = 0
        while True:
            if not self.accepted:
                raise ClusterError("no node is left to verify on (all were lost or refused); the run stops with "
                                   "everything stored; resume it when the cluster is back")
            ids = sorted(self.accepted)
            node_id = ids[next(self.turn) % len(ids)]
            try:
                return await self.accepted[node_id].judge.remote(job)
            except Exception as error:  # noqa: BLE001 - a lost node is retried; anything else is raised
                if not _lost(self.ray, error):
                    raise
                lost += 1
                self.accepted.pop(node_id, None)
                reason = first_line(error)
                log.warning("node %s was lost while verifying; the job goes to another node", node_id[:12])
                if self.record is not None:
                    await self.record("verify_node_lost", node_id=node_id, attempt=lost, reason=reason)
                if lost > self.retries:
                    raise ClusterError(f"a verification job was lost with its node {lost} times "
                                       f"(cluster.retries={self.retries}); the run stops with everything stored; "
                                       "resume it when the cluster is healthy") from None

    def close(self) -> None:
        if self._watch is not None:
            self.registry.unwatch(self._watch)
        if self._own_registry:
            self.registry.close()
        for task in self._checking:
            task.cancel()
        for actor in self.accepted.values():
            self.ray.kill(actor)  # its verification processes die with it (they watch their parent)
        self.accepted.clear()

    def _joined(self, member: Member) -> None:
        """The registry's news of a node that joined: checked in the background, then given work."""
        if member.cpus <= 0:  # the head may run none
            return
        task = asyncio.create_task(self._check_quietly(member.node_id, self._start_verifier(member.node_id)))
        self._checking.add(task)
        task.add_done_callback(self._checking.discard)

    def _start_verifier(self, node_id: str) -> Any:
        """A NodeVerifier pinned to the node; it loads the problem from the node's disk as it starts."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return (self.actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
                .remote(self.section, self.parts, self.timeout))

    async def _check_quietly(self, node_id: str, actor: Any) -> None:
        """_check in the background: a failure to check a new node leaves the accepted ones judging."""
        try:
            await self._check(node_id, actor)
        except Exception as error:  # noqa: BLE001 - logged; the node gets no work
            log.warning("could not check the node %s that joined: %s", node_id[:12], first_line(error))

    async def _check(self, node_id: str, actor: Any) -> None:
        """Accept the node's verifier if the problem on its disk is the driver's; else refuse and name the node."""
        try:
            status = await actor.status.remote()
        except Exception as error:  # noqa: BLE001 - a node that died while being checked is simply not used
            if not _lost(self.ray, error):
                raise
            return
        if status["refused"]:
            reason = f"node {status['node']} ({node_id[:12]}) may not verify: {status['refused']}"
            self.refused[node_id] = reason
            self.ray.kill(actor)
            log.warning("%s", reason)
            if self.record is not None:
                await self.record("verify_node_refused", node=status["node"], node_id=node_id,
                                  reason=status["refused"])
        else:
            self.accepted[node_id] = actor
            if self.started and self.record is not None:
                await self.record("verify_node_joined", node=status["node"], node_id=node_id)


def _lost(ray: Any, error: BaseException) -> bool:
    """Did the call fail because the node or the actor's process went away?"""
    exceptions = ray.exceptions
    lost = tuple(getattr(exceptions, name) for name in
                 ("RayActorError", "NodeDiedError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError",
                  "LocalRayletDiedError", "ActorUnschedulableError") if hasattr(exceptions, name))
    return isinstance(error, lost)


async def node_verifiers(cfg: Any, problem: Any, sandbox_identity: str, record: Record | None = None,
                         registry: NodeRegistry | None = None) -> NodeVerifiers | None:
    """The pool that judges this run's outputs on its nodes, checked and started; None: the driver judges.
    `registry`: the run's watcher of the cluster's nodes, if it has one (see NodeVerifiers)."""
    if verification_place(cfg, getattr(problem, "verify_on", None)) != "node":
        return None
    from evolve.cluster.connect import connect

    ray = connect(cfg.cluster.address, cfg.cluster.connect_timeout)
    if not isinstance(cfg, DictConfig):  # Settings: its hydra form, as config.yaml stores it
        from evolve.settings import to_config

        cfg = to_config(cfg)
    pool = NodeVerifiers(ray, OmegaConf.to_container(cfg.problem, resolve=True),  # type: ignore[arg-type]
                         problem.identity_parts(sandbox_identity), cfg.verification.verifier_timeout,
                         cfg.cluster.retries, record, registry)
    await pool.start()
    return pool
