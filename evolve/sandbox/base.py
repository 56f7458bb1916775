"""The sandbox seam: what goes into a sandbox and what comes back out.

A backend (process, bubblewrap, Docker) starts `sandbox/runner.py` somewhere
isolated, feeds it a job on stdin and reads one result line from its stdout.
Everything a backend returns is untrusted data: the verifier on the host checks
it. Backends differ only in how well they fence the candidate in.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import secrets
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Awaitable, Callable, Literal, Protocol, runtime_checkable

from evolve import bundle
from evolve.paths import RUNNER

CaseStatus = Literal["ok", "error", "timeout", "crashed", "oversize", "protocol", "sandbox"]


@dataclass(frozen=True)
class SandboxLimits:
    case_timeout: float = 10.0
    memory_mb: int = 1024
    max_procs: int = 64
    max_output_bytes: int = 4 << 20
    max_log_bytes: int = 64 << 10
    cpus: float = 1.0
    # A case's timeout is CPU time; this multiple of it (plus 1 s) is its wall-clock backstop.
    wall_factor: float = 3.0
    # Bounds on each output before any verifier sees it (a deeper or longer one is the candidate's error).
    max_depth: int = 64
    max_int_digits: int = 30

    def wall_timeout(self) -> float:
        return self.case_timeout * self.wall_factor + 1.0


@dataclass(frozen=True)
class ProgramSpec:
    """A compiled (or any multi-file) candidate: built once per job, then run once per case.

    The job's code is a bundle (evolve/bundle.py); the runner writes its files into the
    scratch folder, runs `build` there, then `run` for each case with the case's input on stdin.
    """

    build: str  # /bin/sh -c command; empty: nothing to build
    run: str  # /bin/sh -c command, once per case
    stdin: str = "json"  # json: the inputs as one JSON line; else the name of a string input sent raw
    stdout: str = "json"  # json: stdout parsed as one JSON value; text: stdout as a string
    build_timeout: float = 60.0  # CPU seconds of the build's process tree
    build_memory_mb: int = 2048
    build_max_file_mb: int = 64

    def build_wall_timeout(self, wall_factor: float) -> float:
        return self.build_timeout * wall_factor + 1.0


@dataclass(frozen=True)
class SandboxJob:
    """A candidate program and the case inputs it must answer."""

    code: str
    entry: str
    cases: tuple[tuple[str, dict[str, Any]], ...]  # (case id, keyword inputs)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    program: ProgramSpec | None = None  # set: `code` is a bundle of files to build and run
    # Files an earlier build of the same sources made (path -> bytes): sent instead of building again.
    prebuilt: tuple[tuple[str, bytes], ...] | None = None

    def deadline(self) -> float:
        """Host-side wall-clock bound: every case may run to its wall-clock backstop, plus start-up slack."""
        build = self.program.build_wall_timeout(self.limits.wall_factor) if self.program is not None else 0.0
        return (len(self.cases) + 1) * self.limits.wall_timeout() + build + 10.0


@dataclass(frozen=True)
class CaseRun:
    """What one case produced inside the sandbox, timed from outside the candidate."""

    case_id: str
    status: CaseStatus
    output: Any
    seconds: float  # wall-clock time of the case
    message: str = ""
    cpu_seconds: float = 0.0  # CPU time of the candidate's whole process tree during the case


@dataclass(frozen=True)
class BuildResult:
    """How a compiled candidate's build went (inside the sandbox: untrusted data, like every output)."""

    status: str  # ok | error | timeout | crashed | cached
    message: str = ""  # the build's trimmed output when it failed
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    artifacts: tuple[tuple[str, bytes], ...] | None = None  # the files it made, when small enough to keep

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "cached")


@dataclass(frozen=True)
class SandboxResult:
    runs: tuple[CaseRun, ...]
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    failure: str = ""  # non-empty when the sandbox itself failed (no trustworthy runs)
    build: BuildResult | None = None  # compiled candidates only
    # The runner's own word, in its nonce'd result line, on its clean-up after the job
    # (True: swept and wiped; False: something stayed); None when the line did not say.
    runner_clean: bool | None = None


class Sandbox(Protocol):
    """Runs candidates. Implementations must be safe to call concurrently."""

    name: str  # the backend's config name: process, bwrap, docker
    # What the scores may depend on in this backend (its version, image, runner), part of the
    # evaluator identity: a change is recorded between sessions (see evolve/session.py).
    identity: str

    async def run(self, job: SandboxJob) -> SandboxResult: ...

    async def close(self) -> None: ...


EventSink = Callable[..., Awaitable[None]]  # where events go: the run's recorder.event(kind, **data)


@runtime_checkable
class EventSource(Protocol):
    """A sandbox with news beyond each job's result, for the run's events (the cluster tier: nodes that
    joined, were refused or were lost; tasks retried). The session checks for it with isinstance;
    the local tiers have nothing to tell and do not implement it."""

    async def listen(self, sink: EventSink) -> None:
        """Send this sandbox's events to `sink` from now on, the ones from before first."""
        ...


def encode_job(job: SandboxJob) -> tuple[str, bytes]:
    """The runner's stdin and the nonce its result line must start with."""
    nonce = secrets.token_hex(16)
    limits = job.limits
    payload = {
        "nonce": nonce,
        "code": job.code,
        "entry": job.entry,
        "cases": [{"id": case_id, "inputs": inputs} for case_id, inputs in job.cases],
        "case_timeout": limits.case_timeout,
        "wall_timeout": limits.wall_timeout(),
        "max_depth": limits.max_depth,
        "max_int_digits": limits.max_int_digits,
        "max_output_bytes": limits.max_output_bytes,
        "max_log_bytes": limits.max_log_bytes,
        "memory_bytes": limits.memory_mb << 20,
        "max_procs": limits.max_procs,
    }
    if job.program is not None:
        program = job.program
        payload["program"] = {
            "files": [[source.path, source.text] for source in bundle.parse(job.code)],
            "build": program.build, "run": program.run, "stdin": program.stdin, "stdout": program.stdout,
            "build_timeout": program.build_timeout, "build_wall_timeout": program.build_wall_timeout(limits.wall_factor),
            "build_memory_bytes": program.build_memory_mb << 20, "build_max_file_bytes": program.build_max_file_mb << 20,
            # Built files are sent back to the host (for the next job of the same sources) up to this size.
            "max_artifact_bytes": limits.max_output_bytes,
            "prebuilt": None if job.prebuilt is None else [[path, base64.b64encode(data).decode()]
                                                           for path, data in job.prebuilt],
        }
    return nonce, json.dumps(payload).encode()


def decode_result(job: SandboxJob, nonce: str, stdout: bytes, seconds: float) -> SandboxResult:
    """Parse the runner's result line; anything unexpected is a sandbox failure."""
    line = stdout.strip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    if not line.startswith(nonce + " "):
        return failed(job, "the sandbox runner returned no result (it was killed or tampered with)", seconds)
    try:
        # Bounded like each output inside it: a deep or absurd result is refused here, never a crash.
        data = runner_module().bounded_loads(line[len(nonce) + 1 :].encode(), job.limits.max_depth + 4,
                                             job.limits.max_int_digits)
        runs = tuple(
            CaseRun(str(r["id"]), r["status"], r.get("output"), float(r["seconds"]), str(r.get("message", "")),
                    float(r.get("cpu_seconds", 0.0)))
            for r in data["cases"]
        )
        expected = [case_id for case_id, _ in job.cases]
        if [run.case_id for run in runs] != expected:
            return failed(job, "the sandbox runner's result did not match the cases sent", seconds)
        build = _build_result(data.get("build")) if job.program is not None else None
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        return failed(job, f"the sandbox runner's result was malformed: {str(error)[:200]}", seconds)
    clean = data.get("clean")
    return SandboxResult(runs, str(data.get("stdout", "")), str(data.get("stderr", "")), seconds, build=build,
                         runner_clean=clean if isinstance(clean, bool) else None)


def _build_result(data: Any) -> BuildResult | None:
    """The runner's account of the build; ValueError when it is not one."""
    if data is None:
        return None
    artifacts = data.get("artifacts")
    if artifacts is not None:
        artifacts = tuple((bundle.check_path(str(path)), base64.b64decode(str(text), validate=True))
                          for path, text in artifacts)
    return BuildResult(str(data["status"]), str(data.get("message", "")), float(data.get("seconds", 0.0)),
                       float(data.get("cpu_seconds", 0.0)), artifacts)


def failed(job: SandboxJob, reason: str, seconds: float = 0.0) -> SandboxResult:
    """A result in which every case failed for a sandbox-level reason."""
    runs = tuple(CaseRun(case_id, "sandbox", None, 0.0, reason) for case_id, _ in job.cases)
    return SandboxResult(runs, seconds=seconds, failure=reason)


@functools.cache
def runner_module() -> ModuleType:
    """sandbox/runner.py as a module: the host decodes results with the runner's own bounded JSON reader."""
    spec = importlib.util.spec_from_file_location("evolve_sandbox_runner", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
