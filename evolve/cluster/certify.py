"""Certification calls (gate() / certify()) as Ray tasks: one call, one task, on some node.

The node runs the same `python -m evolve.certify_worker` as this machine would, fed the frozen
verifier source the driver read (never the node's copy on disk), with the same time limit and
grace: past them the task kills the worker's process group and says so. The driver bounds its own
wait too (limit + grace + CALL_SLACK) and cancels the task with force past it, which kills the task's
process; the worker dies with it (it watches its parent, see evolve/certify_worker.py).

A node lost during a call is the cluster's fault, not the candidate's: the call is sent to another
node (at most `cluster.retries` times), recorded as a `certify_retried` event; never an "unknown".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

from evolve.certification import Certifier
from evolve.certify_worker import worker_env
from evolve.cluster.connect import ClusterError, first_line

POLL = 0.2  # seconds between checks, on the node, that the task was not cancelled
STOP_WAIT = 10.0  # seconds a cancelled task gets to kill its worker before its process is killed
CALL_SLACK = 60.0  # seconds the driver waits past limit + grace: queueing for a free CPU, starting a worker
Record = Callable[..., Awaitable[None]]  # recorder.event(kind, **data)


def run_certify_worker(job: bytes, verifier_path: str, seconds: float) -> dict[str, Any]:
    """On the node: one certify_worker process for `job`, killed (with its group) after `seconds`.

    {"code", "stdout", "stderr"} as the worker left them, or {"timeout": True} if it was killed.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "evolve.certify_worker", verifier_path, str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a kill reaches whatever it started
        env=worker_env())
    deadline = time.monotonic() + seconds
    given: bytes | None = job  # the job is sent once; later waits only read
    try:
        while True:  # in short waits: ray.cancel's KeyboardInterrupt arrives only between them
            try:
                stdout, stderr = process.communicate(given, timeout=min(POLL, max(deadline - time.monotonic(), 0)))
                break
            except subprocess.TimeoutExpired:
                given = None
                if time.monotonic() >= deadline:
                    _kill_group(process)
                    return {"timeout": True}
    except BaseException:  # the task was cancelled
        _kill_group(process)
        raise
    return {"code": process.returncode, "stdout": stdout, "stderr": stderr}


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


class ClusterCertifier(Certifier):
    """A Certifier whose calls run as Ray tasks (num_cpus=1) on the cluster's nodes.

    Same contract and same results as the local Certifier: only where the worker process runs differs.
    """

    def __init__(self, *args: Any, ray: Any, retries: int = 2, record: Record | None = None,
                 slack: float = CALL_SLACK, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ray = ray
        self.retries = retries
        self.record = record
        self.slack = slack
        # Ray's own retries would be silent; these are counted and recorded here.
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_certify_worker)

    @classmethod
    def from_local(cls, local: Certifier, ray: Any, retries: int = 2, record: Record | None = None) -> ClusterCertifier:
        return cls(local.verifier, local.settings, local.gate_seconds, local.certify_seconds, local.grace,
                   ray=ray, retries=retries, record=record)

    async def _call(self, hook: str, arguments: dict[str, Any], time_limit: float) -> dict[str, Any] | str:
        # The local Certifier's job, byte for byte (certification.py is left as it is: its code is part
        # of the evaluator identity of certifying problems).
        job = json.dumps({"verifier": self.verifier.to_json(), "hook": hook, "settings": self.settings,
                          "time_limit": time_limit, **arguments}).encode()
        killed = f"{hook}() ran past its time limit of {time_limit:g} s (+{self.grace:g} s grace) and was killed"
        lost: list[str] = []
        while True:
            ref = self.task.remote(job, str(self.verifier_path), time_limit + self.grace)
            waiting = asyncio.wrap_future(ref.future())
            try:
                done, _ = await asyncio.wait({waiting}, timeout=time_limit + self.grace + self.slack)
            except BaseException:
                await asyncio.shield(self._stop(ref, waiting))  # cancelled (Ctrl-C, stop): no solver outlives the run
                raise
            if not done:  # the node did not answer in time: stop the task, and its worker with it
                await self._stop(ref, waiting)
                return killed
            try:
                reply = waiting.result()
            except Exception as error:  # noqa: BLE001 - a lost node is retried; anything else stops the run
                if not _node_lost(self.ray, error):
                    raise ClusterError(f"verifier {self.name}: {hook}() could not run on its node "
                                       f"({first_line(error)}); every node needs this evolve installed, with the "
                                       "verifier's dependencies") from None
                lost.append(first_line(error))
                if len(lost) > self.retries:
                    raise ClusterError(f"verifier {self.name}: {hook}() was lost with its node {len(lost)} times "
                                       f"(cluster.retries={self.retries}); last: {lost[-1]}. The run stops with "
                                       "everything stored; resume it when the cluster is healthy") from None
                if self.record is not None:
                    await self.record("certify_retried", hook=hook, attempt=len(lost), reason=lost[-1])
                continue
            if reply.get("timeout"):
                return killed
            return self._answer(hook, reply["code"], reply["stdout"], reply["stderr"])

    async def _stop(self, ref: Any, waiting: asyncio.Future) -> None:
        """Cancel the task so that it kills the worker's process group; force it if it does not end soon."""
        self.ray.cancel(ref)  # a KeyboardInterrupt in the task: run_certify_worker kills the group
        await asyncio.wait({waiting}, timeout=STOP_WAIT)
        if not waiting.done():
            self.ray.cancel(ref, force=True)  # its process is killed; the worker dies with it (parent-death signal)
            await asyncio.wait({waiting}, timeout=STOP_WAIT)
        if waiting.done() and not waiting.cancelled():
            waiting.exception()  # retrieved: the cancellation is expected


def _node_lost(ray: Any, error: BaseException) -> bool:
    """Did the task fail because its node or worker process went away (not because of the verifier)?"""
    exceptions = ray.exceptions
    lost = tuple(getattr(exceptions, name) for name in
                 ("NodeDiedError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError",
                  "LocalRayletDiedError", "TaskUnschedulableError", "RaySystemError") if hasattr(exceptions, name))
    return isinstance(error, lost)


async def cluster_certifier(cfg: Any, certifier: Certifier | None, record: Record | None = None) -> Certifier | None:
    """The run's certifier: its calls as cluster tasks when `cluster.address` names a cluster (an event says so)."""
    if certifier is None or not cfg.cluster.address:
        return certifier
    from evolve.cluster.connect import connect

    ray = connect(cfg.cluster.address, cfg.cluster.connect_timeout)
    if record is not None:
        await record("certify_on_cluster", address=cfg.cluster.address, retries=cfg.cluster.retries)
    return ClusterCertifier.from_local(certifier, ray, cfg.cluster.retries, record)
