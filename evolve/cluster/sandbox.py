"""The cluster as a sandbox: candidates run on the nodes of a Ray cluster, everything else stays here.

`RaySandbox` is a Sandbox like the local tiers (evolve/sandbox/base.py): the Evaluator sends it a
job and gets one result back, so proposing, deduplicating, verifying and storing stay on the
driver, unchanged. Behind `run`:

- one NodeWorker actor per node with slots (evolve/cluster/node.py), pinned to it, owning that
  node's local sandbox tier;
- nodes must agree on that tier's identity (and run the driver's sandbox runner): a node that
  differs is refused, named in a `node_refused` event, and gets no work;
- a job's cases are split into chunks sent to the least-loaded nodes with a free slot and gathered
  back in order (case-level fan-out);
- a node that dies or leaves is an infrastructure fault: its chunks go to another node (at most
  `cluster.retries` times, `node_lost` / `task_retried` events), never an invalid score; when the
  retries run out the run stops with a ClusterError;
- a node that joins mid-run gets a worker and work: the run's NodeRegistry (evolve/cluster/nodes.py)
  watches the cluster and tells this sandbox, and the node verifiers, who joined and who left.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from evolve.cluster.connect import ClusterError, connect, disconnect, first_line
from evolve.cluster.node import NodeReport, NodeWorker, node_settings
from evolve.cluster.nodes import POLL_SECONDS, Member, NodeRegistry, Watch
from evolve.sandbox.base import EventSink, SandboxJob, SandboxResult
from evolve.sandbox.process import runner_hash
from evolve.settings import Settings, as_settings

log = logging.getLogger("evolve.cluster")
START_SECONDS = 120.0  # a node's worker must report within this (a Docker pool starting included)
ALONE_SECONDS = 120.0  # with every node lost, a run waits this long for one to join before it stops
CLOSE_SECONDS = 30.0  # a node's worker gets this long to remove its containers before it is killed


@dataclass(eq=False)
class Node:
    """A node accepted into the run, as the driver tracks it."""

    node_id: str
    host: str
    slots: int
    actor: Any
    busy: int = 0
    alive: bool = True
    jobs: int = 0  # chunks it returned
    cases: int = 0

    @property
    def name(self) -> str:
        return f"{self.host} ({self.node_id[:12]})"


@dataclass
class Chunk:
    job: SandboxJob
    attempts: int = 0
    lost_on: list[str] = field(default_factory=list)


class RaySandbox:
    """Runs jobs on the accepted nodes of the Ray cluster at `settings.cluster.address`.

    `prefer`: the node identity this run used before (on resume), chosen over a majority.
    `registry`: the run's watcher of the cluster's nodes, which this sandbox owns (it stops it when it
    closes); the session lends it to the node verifiers, so one poll of the cluster serves both.
    """

    name = "ray"

    def __init__(self, settings: Settings | DictConfig, label: str, prefer: str | None = None) -> None:
        self.settings = as_settings(settings)
        cluster = self.settings.cluster
        self.address = str(cluster.address)
        self.ray = connect(self.address, float(cluster.connect_timeout))
        self.registry = NodeRegistry(self.ray)
        self.label = label
        self.slots_per_node = int(cluster.slots_per_node)
        self.cases_per_task = int(cluster.cases_per_task)
        self.retries = int(cluster.retries)
        self.runner = runner_hash()
        self.nodes: dict[str, Node] = {}
        self.refused: dict[str, str] = {}  # node id -> why
        self.skipped: set[str] = set()  # nodes with no slots (a head started with --num-cpus=0)
        self._events: list[tuple[str, dict[str, Any]]] = []  # until a sink listens
        self._sink: EventSink | None = None
        self._writing: set[asyncio.Task] = set()  # events on their way to the sink
        self._changed: asyncio.Condition | None = None
        self._watch: Watch | None = None  # the registry's news of nodes, from the first job on
        self._joining: dict[str, asyncio.Task] = {}  # node id -> its worker starting
        self._closed = False
        self._started: list[Any] = []  # every worker started, for cleanup
        self._slot_counts: dict[str, int] = {}
        try:
            reports = self._start_all()
            shared = shared_identity([report for report, _ in reports.values()], self.runner, prefer)
            if shared is None:
                reasons = "; ".join(f"{report.host} ({node_id[:12]}): {refusal(report, self.runner, None)}"
                                    for node_id, (report, _) in reports.items()) or "no node has CPUs"
                raise ClusterError(f"no node of the Ray cluster at {self.address} can run candidates ({reasons}); "
                                   "fix the nodes' sandboxes (`evolve sandbox build` on each) or give them CPUs")
            self.shared = shared
            for report, actor in reports.values():
                self._admit(report, actor)
        except BaseException:
            for actor in self._started:  # a refused start leaves nothing running on the nodes
                self._kill(actor)
            disconnect()
            raise
        self.identity = "ray:" + shared
        slots = sum(node.slots for node in self.nodes.values())
        if self.settings.search.evaluators < slots:  # fan-out fills some, but whole candidates wait
            log.warning("cluster: %d slots on %d nodes but search.evaluators=%d candidates in flight; raise "
                        "search.evaluators to about %d to keep the nodes busy", slots, len(self.nodes),
                        self.settings.search.evaluators, slots)

    # ------------------------------------------------------------------ nodes

    def _slots(self, member: Member) -> int:
        """cluster.slots_per_node, else the node's CPUs; none on a node without CPUs (a head started with
        --num-cpus=0 is meant to run nothing)."""
        cpus = int(member.cpus)
        return 0 if cpus <= 0 else (self.slots_per_node or cpus)

    def _start_worker(self, member: Member) -> Any:
        """A NodeWorker pinned to the node (num_cpus=0: the worker itself takes no slot)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        slots = self._slot_counts[member.node_id] = self._slots(member)
        remote = self.ray.remote(NodeWorker).options(
            num_cpus=0, max_restarts=0, max_concurrency=max(4, 2 * slots + 2),
            scheduling_strategy=NodeAffinitySchedulingStrategy(member.node_id, soft=False))
        actor = remote.remote(node_settings(self.settings, slots), self.label, member.node_id)
        self._started.append(actor)
        return actor

    def _start_all(self) -> dict[str, tuple[NodeReport, Any]]:
        """Start a worker on every alive node with slots and collect their reports (blocking: start-up)."""
        started: dict[str, tuple[Member, Any]] = {}
        for member in self.registry.alive().values():
            if self._slots(member) <= 0:
                self.skipped.add(member.node_id)
                continue
            started[member.node_id] = (member, self._start_worker(member))
        return {node_id: self._collect(member, actor) for node_id, (member, actor) in started.items()}

    def _collect(self, member: Member, actor: Any) -> tuple[NodeReport, Any]:
        try:
            return self.ray.get(actor.report.remote(), timeout=START_SECONDS), actor
        except Exception as error:  # noqa: BLE001 - a node that cannot start a worker is refused, named
            return _not_started(member, error), actor

    def _admit(self, report: NodeReport, actor: Any) -> bool:
        """Accept a node whose identity is the shared one; refuse (and name) any other."""
        reason = refusal(report, self.runner, self.shared)
        info = {"node": report.node_id, "host": report.host}
        if reason:
            self.refused[report.node_id] = reason
            self._kill(actor)
            log.warning("cluster: node %s (%s) refused: %s", report.host, report.node_id[:12], reason)
            self._emit("node_refused", **info, reason=reason, identity=report.identity)
            return False
        slots = self._slot_counts[report.node_id]
        known = self.nodes.get(report.node_id)
        if known is not None:  # back after a loss: a fresh worker; chunks of the old one have failed over
            known.actor, known.slots, known.alive = actor, slots, True
        else:
            self.nodes[report.node_id] = Node(report.node_id, report.host, slots, actor)
        log.info("cluster: node %s (%s) joined with %d slots", report.host, report.node_id[:12], slots)
        self._emit("node_joined", **info, slots=slots, identity=report.identity)
        if self._changed is not None:
            self._notify()
        return True

    def _joined(self, member: Member) -> None:
        """The registry's news of a node this sandbox has no worker on: it gets one (in the background).
        A node lost while Ray still lists it alive (its worker died, a network blip) comes back this way."""
        node_id = member.node_id
        known = self.nodes.get(node_id)
        if (known is not None and known.alive) or node_id in self.refused or node_id in self.skipped \
                or node_id in self._joining:
            return
        if self._slots(member) <= 0:
            self.skipped.add(node_id)
            return
        self._joining[node_id] = asyncio.create_task(self._join(member))
        self._joining[node_id].add_done_callback(lambda _, node_id=node_id: self._joining.pop(node_id, None))

    def _left(self, node_id: str) -> None:
        """The registry's news of a node gone from the cluster: no more work for it."""
        node = self.nodes.get(node_id)
        if node is not None:
            self._lose(node, "the node left the cluster")

    async def _join(self, member: Member) -> None:
        """Start a worker on a node that appeared and admit or refuse it."""
        actor = self._start_worker(member)
        try:
            async with asyncio.timeout(START_SECONDS):  # not wait_for, which can drop a cancellation (3.11)
                report = await _awaitable(actor.report.remote())
        except asyncio.CancelledError:
            self._kill(actor)
            raise
        except Exception as error:  # noqa: BLE001 - a worker that cannot start: the node is refused, named
            if member.node_id in self.nodes:  # a lost node going away after all: asked again while Ray lists it
                self._kill(actor)
                self._forget(member.node_id)
                return
            report = _not_started(member, error)
        if self._closed:
            self._kill(actor)
        else:
            self._admit(report, actor)

    def _lose(self, node: Node, reason: str) -> None:
        if not node.alive:
            return
        node.alive = False
        log.warning("cluster: node %s lost (%s); its tasks go to other nodes", node.name, reason)
        self._emit("node_lost", node=node.node_id, host=node.host, reason=reason, in_flight=node.busy)
        self._kill(node.actor)
        self._forget(node.node_id)  # Ray may still list it: then it rejoins with a fresh worker
        self._notify()

    def _forget(self, node_id: str) -> None:
        if self._watch is not None:
            self._watch.forget(node_id)

    # ------------------------------------------------------------------ jobs

    async def run(self, job: SandboxJob) -> SandboxResult:
        self._start_watching()
        started = time.monotonic()
        tasks = [asyncio.ensure_future(self._run_chunk(chunk)) for chunk in self._split(job)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:  # one chunk failed for good: the others stop too, on their nodes as well
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if len(results) == 1:
            return results[0]
        return gather_results(job, results, time.monotonic() - started)

    def _split(self, job: SandboxJob) -> list[Chunk]:
        """The job's cases in contiguous chunks. A compiled job is not split: it is built once, where it runs."""
        if job.program is not None or len(job.cases) <= 1:
            return [Chunk(job)]
        if self.cases_per_task > 0:
            size = self.cases_per_task
        else:
            free = sum(max(0, n.slots - n.busy) for n in self.nodes.values() if n.alive)
            size = math.ceil(len(job.cases) / max(1, min(free, len(job.cases))))
        return [Chunk(SandboxJob(job.code, job.entry, job.cases[i:i + size], job.limits))
                for i in range(0, len(job.cases), size)]

    async def _run_chunk(self, chunk: Chunk) -> SandboxResult:
        from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError

        while True:
            node = await self._acquire()
            reference = node.actor.run.remote(chunk.job)
            try:
                result = await reference
            except asyncio.CancelledError:  # the run stopped: the node stops the candidate too
                self._cancel(reference)
                raise
            except (RayActorError, NodeDiedError, WorkerCrashedError, ObjectLostError) as error:
                self._lose(node, first_line(error))
                chunk.attempts += 1
                chunk.lost_on.append(node.name)
                if chunk.attempts > self.retries:
                    raise ClusterError(
                        f"a task of {len(chunk.job.cases)} cases was lost with {chunk.attempts} nodes "
                        f"({', '.join(chunk.lost_on)}) and cluster.retries={self.retries} ran out; nothing was "
                        "scored from it. Check the nodes, then continue with `evolve resume RUN_DIR`") from None
                self._emit("task_retried", node=node.node_id, host=node.host, cases=len(chunk.job.cases),
                           attempt=chunk.attempts)
                continue
            except Exception as error:  # noqa: BLE001 - the node's worker failed, not the candidate
                raise ClusterError(f"the worker on node {node.name} failed: {first_line(error)}") from None
            finally:
                node.busy -= 1
                self._notify()
            node.jobs += 1
            node.cases += len(chunk.job.cases)
            return result

    async def _acquire(self) -> Node:
        """The least-loaded node with a free slot, waiting for one; a ClusterError when no node is left."""
        assert self._changed is not None
        alone_since: float | None = None
        async with self._changed:
            while True:
                if self._closed:
                    raise ClusterError("the cluster sandbox is closed")
                free = [n for n in self.nodes.values() if n.alive and n.busy < n.slots]
                if free:
                    node = min(free, key=lambda n: (n.busy / n.slots, n.busy))
                    node.busy += 1
                    return node
                if any(n.alive for n in self.nodes.values()):
                    alone_since = None
                else:
                    alone_since = alone_since or time.monotonic()
                    if time.monotonic() - alone_since > ALONE_SECONDS:
                        raise ClusterError(f"no node of the Ray cluster at {self.address} is left to run candidates "
                                           f"({len(self.nodes)} lost, {len(self.refused)} refused); add nodes and "
                                           "continue with `evolve resume RUN_DIR`")
                try:
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def _start_watching(self) -> None:
        """At the first job (in the event loop): a condition to wait for free slots on, and the registry's
        news of every node joined or left since start-up."""
        if self._watch is None and not self._closed:
            self._changed = asyncio.Condition()
            known = {node_id for node_id, node in self.nodes.items() if node.alive} | set(self.refused) | self.skipped
            self._watch = self.registry.watch(self._joined, self._left, known)

    def _notify(self) -> None:
        if self._changed is None:
            return
        condition = self._changed

        async def wake() -> None:
            async with condition:
                condition.notify_all()

        try:
            asyncio.get_running_loop().create_task(wake())
        except RuntimeError:
            pass

    # ------------------------------------------------------------------ events

    async def listen(self, sink: EventSink) -> None:
        """Send this sandbox's events (node joined, refused, lost; task retried) to `sink` from now on,
        the ones from before first."""
        self._sink = sink
        pending, self._events = self._events, []
        for kind, data in pending:
            await sink(kind, **data)

    def _emit(self, kind: str, **data: Any) -> None:
        if self._sink is None:
            self._events.append((kind, data))
            return
        sink = self._sink
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._events.append((kind, data))
            return
        task = loop.create_task(sink(kind, **data))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def usage(self) -> list[dict[str, Any]]:
        """How much each node ran: what `cluster_usage` records when the sandbox closes."""
        return [{"node": n.node_id, "host": n.host, "slots": n.slots, "jobs": n.jobs, "cases": n.cases,
                 "alive": n.alive} for n in self.nodes.values()]

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.registry.close()
        joining = list(self._joining.values())
        for task in joining:  # a worker still starting is killed (see _join)
            task.cancel()
        await asyncio.gather(*joining, return_exceptions=True)
        await asyncio.gather(*self._writing, return_exceptions=True)
        if self._sink is not None:
            await self._sink("cluster_usage", nodes=self.usage())
        alive = [n for n in self.nodes.values() if n.alive]
        closing = [_within(CLOSE_SECONDS, _awaitable(n.actor.close.remote())) for n in alive]
        await asyncio.gather(*closing, return_exceptions=True)  # a node gone meanwhile has nothing to clean
        for node in self.nodes.values():
            self._kill(node.actor)
        disconnect()

    def _cancel(self, reference: Any) -> None:
        try:
            self.ray.cancel(reference)
        except Exception:  # noqa: BLE001 - finished meanwhile, or its node is gone
            pass

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead, or its node is gone
            pass


def shared_identity(reports: list[NodeReport], runner: str, prefer: str | None) -> str | None:
    """The node sandbox identity the run uses: `prefer` when a node has it (a resumed run keeps its
    tier), else the one most nodes share (ties: the first node's), among nodes whose sandbox started
    and runs the driver's runner. None when no node qualifies."""
    usable = [r.identity for r in reports if not r.error and r.runner == runner]
    if not usable:
        return None
    if prefer in usable:
        return prefer
    counts = Counter(usable)
    best = max(counts.values())
    return next(identity for identity in usable if counts[identity] == best)


def refusal(report: NodeReport, runner: str, shared: str | None) -> str:
    """Why a node is refused ('' when it is not)."""
    if report.error:
        return report.error
    if report.runner != runner:
        return (f"its sandbox runner (runner-{report.runner}) is not the driver's (runner-{runner}): install the "
                "same evolve version on every node")
    if shared is not None and report.identity != shared:
        return (f"its sandbox identity {report.identity} differs from the cluster's {shared}: scores from it would "
                "not be comparable; give every node the same sandbox tier and image")
    return ""


def gather_results(job: SandboxJob, parts: list[SandboxResult], seconds: float) -> SandboxResult:
    """One result from the chunks' results, cases in the job's order."""
    runs = tuple(run for part in parts for run in part.runs)
    limit = job.limits.max_log_bytes
    stdout = "".join(part.stdout for part in parts)[:limit]
    stderr = "".join(part.stderr for part in parts)[:limit]
    failure = next((part.failure for part in parts if part.failure), "")
    return SandboxResult(runs, stdout, stderr, seconds, failure)


def _not_started(member: Member, error: BaseException) -> NodeReport:
    """The report of a node whose worker did not start: the node is refused with this reason."""
    return NodeReport(member.node_id, member.host, "", "", f"its worker did not start: {first_line(error)}")


async def _awaitable(ref: Any) -> Any:
    return await ref


async def _within(seconds: float, awaitable: Any) -> Any:
    """`awaitable`'s result, or TimeoutError after `seconds` (asyncio.timeout: a cancellation is never dropped)."""
    async with asyncio.timeout(seconds):
        return await awaitable
