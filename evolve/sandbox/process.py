"""The `process` backend: the runner as a plain child process of the engine.

The weakest tier, for machines with neither Docker nor bubblewrap. It limits
time, memory, processes and output, scrubs the environment, gives each job a
fresh scratch directory and kills everything the job started. It does NOT hide
the file system or the network from the candidate: that takes `bwrap` or
`docker`.

Process-count limits: RLIMIT_NPROC, which the kernel ignores for root; when
running as root, each job gets its own pids cgroup instead (cgroup v1 or v2),
which also lets us find every process the job left behind.

As root the tier is refused unless the config says the code is trusted
(`sandbox.allow_root`), and each job runs in PID, IPC and mount namespaces of
its own (util-linux `unshare`, with a /proc of its own): the candidate sees no
process but its job's, so not the engine's environment (API keys), and every
process and IPC object of the job ends with it.

Scratch folders live under one parent per machine, named after their engine;
those of an engine that died (kill -9) are removed by the next one.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from evolve.errors import EvolveError
from evolve.paths import RUNNER
from evolve.sandbox.base import SandboxJob, SandboxResult, decode_result, encode_job, failed
from evolve.sandbox.errors import SandboxUnavailable
from evolve.sandbox.owner import start_time

JOB_MARKER = "EVOLVE_SANDBOX_JOB"
STALE_GROUP_SECONDS = 60.0  # a job group older than this with no process in it is left over


class ProcessSandbox:
    name = "process"
    isolates_filesystem = False
    isolates_network = False

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.cgroups = _PidsCgroups.find() if os.geteuid() == 0 else None
        self.identity = f"{self.name}:python-{python_version(self.python)}:runner-{runner_hash()}"
        self.scratch_root = scratch_root()
        self.namespaces = _namespaces() if os.geteuid() == 0 and self.name == "process" else []
        remove_stale_scratch(self.scratch_root)

    def command(self, scratch: Path, job_id: str) -> tuple[list[str], dict[str, str]]:
        """How to start the runner for one job: argv and environment."""
        return [*self.namespaces, self.python, "-I", str(RUNNER)], clean_env(scratch, job_id)

    extra_procs = 0  # processes the backend itself adds to the job's pids cgroup

    async def run(self, job: SandboxJob) -> SandboxResult:
        job_id = uuid.uuid4().hex
        scratch = Path(tempfile.mkdtemp(prefix=_scratch_prefix(), dir=self.scratch_root))
        procs = job.limits.max_procs + self.extra_procs
        cgroup = self.cgroups.create(job_id, procs) if self.cgroups else None
        nonce, stdin = encode_job(job)
        argv, env = self.command(scratch, job_id)
        started = time.monotonic()
        process: asyncio.subprocess.Process | None = None
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                cwd=scratch,
                env=env,
                start_new_session=True,
                preexec_fn=lambda: _enter(cgroup, job.limits.memory_mb << 20),
            )
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation (Ctrl-C, stop)
            # that arrives as the job finishes, and the cancelled task then waits for work forever.
            async with asyncio.timeout(job.deadline()):
                stdout = await _communicate(process, stdin, job.limits.max_output_bytes * (len(job.cases) + 1))
            return decode_result(job, nonce, stdout, time.monotonic() - started)
        except asyncio.TimeoutError:
            return failed(job, f"the sandbox exceeded its {job.deadline():g} s deadline", time.monotonic() - started)
        except OutputTooLarge:
            return failed(job, "the sandbox runner wrote more output than allowed", time.monotonic() - started)
        finally:
            # Shielded: a cancelled job (Ctrl-C, end of budget) is still cleaned up completely,
            # including a runner whose start was interrupted (found by cgroup or job marker).
            pid = process.pid if process is not None else None
            await asyncio.shield(asyncio.to_thread(_cleanup, pid, job_id, cgroup, scratch))
            if process is not None and process.returncode is None:
                await process.wait()

    async def close(self) -> None:
        return None


class OutputTooLarge(EvolveError):
    pass


async def _communicate(process: asyncio.subprocess.Process, stdin: bytes, cap: int) -> bytes:
    assert process.stdin and process.stdout
    process.stdin.write(stdin)
    try:
        await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    chunks, size = [], 0
    while chunk := await process.stdout.read(1 << 16):
        size += len(chunk)
        if size > cap:
            raise OutputTooLarge
        chunks.append(chunk)
    await process.wait()
    return b"".join(chunks)


def scratch_root() -> Path:
    """The parent of every job's scratch folder on this machine."""
    root = Path(tempfile.gettempdir()) / "evolve-jobs"
    root.mkdir(mode=0o711, exist_ok=True)
    return root


def _scratch_prefix() -> str:
    """`<pid>.<start time>.`: the engine that owns the folder (the scratch root is this machine's)."""
    return f"{os.getpid()}.{start_time(os.getpid())}."


def remove_stale_scratch(root: Path) -> int:
    """Remove the scratch folders of engines that are gone (killed with -9); how many."""
    removed = 0
    for entry in root.iterdir():
        pid, _, rest = entry.name.partition(".")
        started = rest.partition(".")[0]
        if not pid.isdigit() or not started or start_time(int(pid)) == started:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _namespaces() -> list[str]:
    """As root: the `unshare` prefix that gives a job its own PID, IPC and mount namespaces, /proc and /dev/shm."""
    import subprocess

    command = [shutil.which("unshare") or "/usr/bin/unshare", "--pid", "--ipc", "--fork", "--mount-proc", "--kill-child"]
    try:
        done = subprocess.run([*command, shutil.which("true") or "/bin/true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        import logging

        logging.getLogger("evolve.sandbox").warning(
            "sandbox=process: `unshare` cannot make namespaces here, so candidates can see every process "
            "on this machine (and their environments)")
        return []
    # POSIX shared memory lives in /dev/shm: the job gets an empty one of its own (its mount namespace's).
    private_shm = 'mount -t tmpfs -o size=64m,mode=1777 evolve-shm /dev/shm 2>/dev/null; exec "$0" "$@"'
    return [*command, shutil.which("sh") or "/bin/sh", "-c", private_shm]


def python_version(python: str) -> str:
    """The interpreter's version, e.g. '3.11.7' (asked only when it is not this one)."""
    if Path(python).resolve() == Path(sys.executable).resolve():
        return platform.python_version()
    import subprocess

    try:
        done = subprocess.run([python, "-I", "-c", "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailable(f"sandbox.python={python} does not run: {error}") from None
    if done.returncode != 0:
        raise SandboxUnavailable(f"sandbox.python={python} does not run: {done.stderr.strip()[-200:]}")
    return done.stdout.strip()


def runner_hash() -> str:
    return hashlib.sha256(RUNNER.read_bytes()).hexdigest()[:12]


def clean_env(scratch: Path | str, job_id: str) -> dict[str, str]:
    """Only what Python needs: no secrets (API keys) leak into the candidate."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        JOB_MARKER: job_id,
    }


def _enter(cgroup: Path | None, memory_bytes: int) -> None:
    """Runs in the forked runner before exec: join the job's cgroup, set limits."""
    if cgroup is not None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    # The job dies with the engine, even on kill -9 (then `unshare --kill-child` or the runner's
    # PID namespace takes the rest).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The runner's own bound; the candidate's child gets the configured limit.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes + (512 << 20),) * 2)


def _cleanup(runner_pid: int | None, job_id: str, cgroup: Path | None, scratch: Path) -> None:
    """Kill whatever the job left running, then remove its cgroup and scratch."""
    if runner_pid is not None:
        try:
            os.killpg(runner_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for _ in range(100):
        pids = _PidsCgroups.members(cgroup) if cgroup else _marked_processes(job_id)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    if cgroup is not None:
        _PidsCgroups.remove(cgroup)
    shutil.rmtree(scratch, ignore_errors=True)


def _marked_processes(job_id: str) -> list[int]:
    """Processes whose start-up environment carries this job's marker."""
    marker = f"{JOB_MARKER}={job_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


class _PidsCgroups:
    """Per-job pids cgroups under an `evolve` parent group."""

    def __init__(self, parent: Path, version: int) -> None:
        self.parent = parent
        self.version = version

    @classmethod
    def find(cls) -> "_PidsCgroups | None":
        for root, version in ((Path("/sys/fs/cgroup/pids"), 1), (Path("/sys/fs/cgroup"), 2)):
            if version == 2 and not (root / "cgroup.controllers").exists():
                continue
            if version == 1 and not (root / "tasks").exists():
                continue
            parent = root / "evolve"
            try:
                parent.mkdir(exist_ok=True)
                if version == 2:
                    (parent / "cgroup.subtree_control").write_text("+pids")
                probe = parent / f"probe-{os.getpid()}"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
                return cls(parent, version)
            except OSError:
                continue
        return None

    def create(self, job_id: str, max_procs: int) -> Path | None:
        self.sweep()
        group = self.parent / job_id
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(max_procs))
            return group
        except OSError:
            return None

    @staticmethod
    def members(group: Path) -> list[int]:
        try:
            return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    @staticmethod
    def remove(group: Path) -> None:
        """Remove an emptied group; one whose killed processes are not yet reaped is left to `sweep`."""
        for _ in range(50):
            try:
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)

    def sweep(self, older_than: float = STALE_GROUP_SECONDS) -> None:
        """Remove empty job groups left behind (by a slow reap or a crashed engine)."""
        now = time.time()
        try:
            groups = [entry for entry in os.scandir(self.parent) if entry.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for entry in groups:
            try:
                # Age guards a group another engine just made and has not entered yet.
                if now - entry.stat().st_mtime > older_than and not self.members(Path(entry.path)):
                    os.rmdir(entry.path)
            except OSError:
                continue
