"""The engine's side of `evolve.verify_worker`: verifier processes that can be stopped.

A verifier run in a thread cannot be interrupted; one in a process can. Each worker
loads the verifier once, from the frozen source the engine sends it (never from disk),
and then judges one evaluation at a time, so an evaluation costs a round trip over a
pipe, not a process start. Idle workers are kept for the
next evaluation (one per evaluation running at once); a worker past its time limit,
or cancelled (Ctrl-C, stop), is killed with everything it started, and the next
evaluation starts a fresh one.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from evolve.certify_worker import worker_env
from evolve.verifier_source import VerifierSource

READ_CHUNK = 1 << 16


class Worker:
    """One `python -m evolve.verify_worker` process and its reply pipe."""

    def __init__(self, verifier_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evolve.verify_worker", str(verifier_path), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,  # the verifier's prints: as before
            start_new_session=True,  # its own process group: a kill reaches whatever the verifier started
            env=worker_env())
        self.buffer = b""
        self.known_cases: set[str] = set()  # case ids whose data this worker already holds

    def exchange(self, job: bytes | None, seconds: float) -> dict[str, Any] | None:
        """Send a job or the verifier's source (None: only read) and wait for the reply line.

        None past `seconds` (the worker is then killed).
        """
        deadline = time.monotonic() + seconds
        try:
            if job is not None:
                assert self.process.stdin is not None
                self.process.stdin.write(job + b"\n")
                self.process.stdin.flush()
            line = self._line(deadline)
        except (BrokenPipeError, OSError, ValueError):
            line = b""
        if line is None:
            self.kill()
            return None
        if not line:
            self.kill()
            return {"crashed": f"the verification process ended (exit code {self.process.returncode}) "
                               "without an answer"}
        try:
            return json.loads(line)
        except ValueError:
            self.kill()
            return {"crashed": f"the verification process answered {line[:200]!r}, which is not JSON"}

    def send(self, message: dict[str, Any], seconds: float) -> dict[str, Any] | None:
        return self.exchange(json.dumps(message, default=str).encode(), seconds)

    def _line(self, deadline: float) -> bytes | None:
        """The next line on stdout; b"" at end of file; None at the deadline."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                return b""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def kill(self) -> None:
        """Kill and reap it (from the thread that reads its pipe, or when it is idle)."""
        _kill(self.process)

    def signal_kill(self) -> None:
        """Kill it without touching its pipes: the thread reading them sees the end and reaps it."""
        _signal_kill(self.process)


class VerifierProcesses:
    """Judges evaluations in worker processes, each stopped at `timeout` seconds."""

    def __init__(self, verifier: VerifierSource, timeout: float, load_timeout: float = 120.0) -> None:
        self.verifier_path = verifier.path
        self.source_line = json.dumps({"verifier": verifier.to_json()}).encode()  # every worker gets these bytes
        self.timeout = timeout
        self.load_timeout = load_timeout  # importing a verifier (solvers, numpy) is not the candidate's time
        self.idle: list[Worker] = []
        weakref.finalize(self, _kill_all, self.idle)

    async def judge(self, job: dict[str, Any]) -> dict[str, Any]:
        """Judge {"settings", "cases": [{"id", "split", "inputs", "private"}], "runs": [...]}.

        The worker's reply (see evolve/verify_worker.py); {"timeout": seconds} past the limit;
        {"fault" | "crashed": message} if the verifier could not be loaded or its process died.
        """
        worker = self.idle.pop() if self.idle else None
        try:
            if worker is None:
                worker = Worker(self.verifier_path)
                ready = await asyncio.to_thread(worker.exchange, self.source_line, self.load_timeout)
                if ready is None:
                    return {"fault": f"verifier {self.verifier_path.name} did not load within "
                                     f"{self.load_timeout:g} s in its verification process"}
                if not ready.get("ready"):
                    worker.kill()  # it could not load the verifier and has exited
                    return ready
            # Case data is sent once per worker; later jobs name the cases by id.
            new_cases = [case for case in job["cases"] if case["id"] not in worker.known_cases]
            message = {**job, "cases": [case["id"] for case in job["cases"]], "new_cases": new_cases}
            worker.known_cases.update(case["id"] for case in new_cases)
            reply = await asyncio.to_thread(worker.send, message, self.timeout)  # encoding megabytes: off the loop
        except BaseException:
            if worker is not None:  # cancelled (Ctrl-C, stop): no verifier outlives the evaluation
                worker.signal_kill()
            raise
        if reply is None:
            return {"timeout": self.timeout}
        if "crashed" not in reply:
            self.idle.append(worker)
        return reply

    def close(self) -> None:
        _kill_all(self.idle)


def _signal_kill(process: subprocess.Popen) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill(process: subprocess.Popen) -> None:
    _signal_kill(process)
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def _kill_all(workers: list[Worker]) -> None:
    while workers:
        workers.pop().kill()
