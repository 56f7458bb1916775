"""The `docker` backend: candidates run in locked-down containers.

Each container has no network, a read-only root, no-new-privileges, pids /
memory / CPU limits, no log (the log driver is off, so nothing a candidate
writes reaches the host's disk) and a small tmpfs at /scratch. The runner is
mounted read-only and started once per container (`docker exec` of
`runner.py --serve`, as root); every job is a frame written to that exec's
stdin and one result line read back from its stdout, so a job costs no daemon
call at all.

Who is who inside: the container's own processes and the runner are root with
only the few capabilities clean-up needs (kill, remove IPC objects, wipe and
chown files, change uid). Each job's candidate runs as a uid of its own, never
used by the previous job in that container (the host picks it and sends it in
the job's frame), with no capabilities and an empty bounding set. It therefore
cannot ptrace, signal or write to anything but its own processes, and the
runner, before and after every job, kills every process not owned by root and
removes every IPC object and scratch file: nothing one candidate leaves behind
reaches the next.

One runner, many jobs, no shared memory: the serve runner's root loop never
reads a job. For each frame it forks a job runner that reads the frame's uid,
forks the candidate's process as that uid, and only then reads the job; it
answers and exits. So no candidate is ever forked from a process that held an
earlier job's nonce or case inputs (held-out inputs included). See the
"Serve mode" section of sandbox/runner.py.

Warm pool: up to `pool_size` long-lived containers are reused, each for at most
`recycle_after` jobs. A container's serve runner is started ahead of its first
job (interpreter up, scratch wiped) and waits on stdin between jobs; while it
waits it writes nothing, so a readable stream means it is gone, and the job is
retried once in another container (the candidate never ran). A container whose
job timed out, crashed, overflowed, tampered with the result channel or left
its scratch dirty, or whose runner said more or less than its one line, is
removed and replaced. With `fresh_container` every job gets a new container
(and its runner serves that one job).

Nothing outlives the engine: PID 1 of each container waits on a stdin that
only the engine's attach connection holds, so when the engine exits, even by
SIGKILL, the container stops and Docker removes it. Containers also carry
labels naming the run and the owning process; `remove_orphans` clears those
whose owner is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import select
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from evolve.errors import EvolveError
from evolve.paths import RUNNER
from evolve.sandbox.base import SandboxJob, SandboxResult, decode_result, encode_job, failed
from evolve.sandbox.image import ImageError, image_id
from evolve.sandbox.owner import owner, owner_alive

log = logging.getLogger(__name__)

LABEL = "evolve.sandbox"
RUN_LABEL = "evolve.run"
OWNER_LABEL = "evolve.owner"
RUNNER_PATH = "/opt/evolve/runner.py"
SCRATCH = "/scratch"
HEALTHY = ("ok", "error", "timeout")  # case statuses after which a container is reused (the runner swept it)
RUNNER_OVERHEAD_MB = 192  # the runner and interpreter start-up, besides the candidate's limit
# What the root runner needs to clean up after a candidate and to become its uid; the candidate has none.
RUNNER_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETUID", "SETGID", "SETPCAP", "IPC_OWNER"]
CANDIDATE_UIDS = (20000, 60000)  # each job's candidate gets a uid from this range, unlike the job before
RECEIVE_SLICE = 1.0  # seconds: the longest single wait for a runner's output


class SandboxClosed(EvolveError, RuntimeError):
    pass


class _NotStarted(RuntimeError):
    """The job could not be started in its container (it died while idle)."""


@dataclass(frozen=True)
class DockerSettings:
    image: str
    pool_size: int = 2
    recycle_after: int = 50
    fresh_container: bool = False
    memory_mb: int = 1024
    max_procs: int = 64
    cpus: float = 1.0
    scratch_mb: int = 64
    # Compiled candidates run the program their build wrote in the scratch: only then is it not noexec.
    exec_scratch: bool = False


@dataclass
class _Runner:
    """The container's serve runner: one `docker exec`, its hijacked stdin/stdout connection."""

    stream: Any  # what docker-py returned (holds the HTTP connection)
    raw: socket.socket  # the connection itself: frames go in, multiplexed stdout comes out


@dataclass
class _Container:
    id: str
    attach: Any  # the socket holding PID 1's stdin open; closing it ends the container
    jobs: int = 0
    runner: _Runner | None = None  # the serve runner, started ahead of the first job, serving all
    last_uid: int = 0  # the uid of the previous job's candidate: the next one gets another
    removed: bool = False  # set before removal closes the runner: a runner opened after that closes itself


@dataclass
class _Pool:
    """Pool state, made on first use so it belongs to the running event loop."""

    idle: list[_Container] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    live: int = 0  # containers running or starting
    tasks: set[asyncio.Task] = field(default_factory=set)


class DockerSandbox:
    name = "docker"
    isolates_filesystem = True
    isolates_network = True

    def __init__(self, settings: DockerSettings, run_id: str, client: Any = None) -> None:
        import docker

        self.settings = settings
        self.run_id = run_id
        self.client = client or docker.from_env(timeout=60, max_pool_size=max(10, 2 * settings.pool_size + 4))
        self.api = self.client.api
        if self.api.base_url.startswith("http+docker://"):  # a local socket: no proxy applies
            # Else requests reads every proxy variable of the environment again for each daemon call
            # (about a quarter of a call's CPU, several calls per job).
            self.api.trust_env = False
        found = image_id(self.client, settings.image)
        if found is None:
            raise ImageError(f"sandbox image {settings.image} not found; build it with `evolve sandbox build`")
        runner = hashlib.sha256(RUNNER.read_bytes()).hexdigest()[:12]
        self.identity = f"docker:{found}:runner-{runner}"
        self.image_id = found
        remove_orphans(self.client)
        self._pool: _Pool | None = None
        # Every container this sandbox started and not yet removed (by id): closing one closes its runner's
        # connection, which also wakes a job still waiting on it.
        self._containers: dict[str, _Container] = {}
        self._closed = False

    # ------------------------------------------------------------------ public

    async def run(self, job: SandboxJob) -> SandboxResult:
        started = time.monotonic()
        for attempt in range(2):  # one retry when a container died while idle
            if self._closed:
                return failed(job, "the docker sandbox is closed")
            try:
                container = await self._take()
            except Exception as error:  # noqa: BLE001 - the daemon can fail in many ways
                return failed(job, f"could not start a sandbox container: {error}", time.monotonic() - started)
            try:
                result, healthy = await asyncio.to_thread(self._exec, container, job)
            except _NotStarted as error:
                await self._discard(container)  # the candidate never ran: try a fresh container
                if attempt == 0:
                    continue
                return failed(job, f"the sandbox container would not run the job: {error}",
                              time.monotonic() - started)
            except Exception as error:  # noqa: BLE001
                await self._discard(container)
                return failed(job, f"the sandbox container failed: {error}", time.monotonic() - started)
            except BaseException:
                # Cancelled mid-job: the container's state is unknown.
                await asyncio.shield(self._discard(container))
                raise
            container.jobs += 1
            if healthy and not self.settings.fresh_container and container.jobs < self.settings.recycle_after:
                await self._give_back(container)  # its runner serves the next job as it is: no daemon call
            else:
                await self._discard(container)
            return replace(result, seconds=time.monotonic() - started)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Remove every container this sandbox started; safe to call twice."""
        self._closed = True
        pool = self._pool
        if pool is not None:
            async with pool.changed:
                pool.changed.notify_all()  # wake waiters so they see the sandbox is closed
            # Starts in flight finish in a thread whatever we do; wait, then remove.
            await asyncio.gather(*list(pool.tasks), return_exceptions=True)
            pool.idle.clear()
        await asyncio.to_thread(self._remove_all)

    # ------------------------------------------------------------------ pool

    def _state(self) -> _Pool:
        if self._pool is None:
            self._pool = _Pool()
        return self._pool

    async def _take(self) -> _Container:
        pool = self._state()
        if self.settings.fresh_container:
            return await asyncio.to_thread(self._start)
        async with pool.changed:
            while True:
                if self._closed:
                    raise SandboxClosed("the docker sandbox is closed")
                if pool.idle:
                    return pool.idle.pop()
                if pool.live < self.settings.pool_size:
                    pool.live += 1
                    break
                await pool.changed.wait()
        try:
            return await asyncio.to_thread(self._start)
        except BaseException:
            async with pool.changed:
                pool.live -= 1
                pool.changed.notify()
            raise

    async def _give_back(self, container: _Container) -> None:
        pool = self._state()
        async with pool.changed:
            pool.idle.append(container)
            pool.changed.notify()

    async def _discard(self, container: _Container) -> None:
        """Remove the container in the background and, in a pool, warm a replacement."""
        pool = self._state()
        self._spawn(asyncio.to_thread(self._remove, container))
        if self.settings.fresh_container:
            return
        async with pool.changed:
            pool.live -= 1
            if not self._closed:
                pool.live += 1
                self._spawn(self._replace())
            pool.changed.notify()

    async def _replace(self) -> None:
        pool = self._state()
        try:
            container = await asyncio.to_thread(self._start)
        except BaseException:
            async with pool.changed:
                pool.live -= 1
                pool.changed.notify()
            raise
        if self._closed:
            await asyncio.to_thread(self._remove, container)
            return
        await asyncio.to_thread(self._prepare, container)
        await self._give_back(container)

    def _spawn(self, work) -> None:
        pool = self._state()
        task = asyncio.ensure_future(work)
        pool.tasks.add(task)
        task.add_done_callback(_forget(pool.tasks))

    # ------------------------------------------------------------------ daemon calls (threads)

    def _start(self) -> _Container:
        s = self.settings
        memory = f"{s.memory_mb + s.scratch_mb + RUNNER_OVERHEAD_MB}m"
        host_config = self.api.create_host_config(
            auto_remove=True,
            init=True,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            cap_add=RUNNER_CAPABILITIES,
            security_opt=["no-new-privileges"],
            log_config={"Type": "none", "Config": {}},
            pids_limit=s.max_procs + 16,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(s.cpus * 1e9),
            shm_size="16m",
            # Docker's tmpfs is noexec unless told `exec`: only compiled problems run a program from it.
            tmpfs={SCRATCH: f"rw,nosuid,nodev,{'exec' if s.exec_scratch else 'noexec'},size={s.scratch_mb}m,"
                            "uid=0,gid=0,mode=0755"},
            binds={str(RUNNER): {"bind": RUNNER_PATH, "mode": "ro"}},
            ulimits=[{"Name": "core", "Soft": 0, "Hard": 0}],
        )
        config = self.api.create_container_config(
            self.image_id,
            command=["sh", "-c", "read _"],
            stdin_open=True,
            user="0:0",
            labels={LABEL: "1", RUN_LABEL: self.run_id, OWNER_LABEL: owner()},
            host_config=host_config,
            network_disabled=True,
            working_dir="/",
        )
        config["StdinOnce"] = True  # stdin closes when the engine's attach goes away
        name = f"evolve-{_slug(self.run_id)}-{uuid.uuid4().hex[:8]}"
        container_id = self.api.create_container_from_config(config, name=name)["Id"]
        self._containers[container_id] = _Container(container_id, None)
        try:
            attach = self.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            self.api.start(container_id)
        except BaseException:
            self._remove(_Container(container_id, None))
            raise
        container = self._containers[container_id] = _Container(container_id, attach)
        if self._closed:
            self._remove(container)
            raise SandboxClosed("the docker sandbox is closed")
        return container

    def _remove(self, container: _Container) -> None:
        import docker.errors

        container.removed = True
        if container.runner is not None:
            _close_runner(container.runner)
            container.runner = None
        try:
            self.api.remove_container(container.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if "already in progress" in str(error):
                self._wait_gone(container.id)  # another thread's removal: return when it is done
            else:
                log.warning("could not remove sandbox container %s: %s", container.id[:12], error)
        # Only now: closing it first would end PID 1, and the container's own removal would race ours.
        if container.attach is not None:
            _close_quietly(container.attach)
        self._containers.pop(container.id, None)

    def _wait_gone(self, container_id: str, seconds: float = 10.0) -> None:
        import docker.errors

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError:
                pass
            time.sleep(0.05)

    def _remove_all(self) -> None:
        for container in list(self._containers.values()):
            self._remove(container)
        # Anything labelled with this run that escaped the bookkeeping.
        for item in self.api.containers(all=True, filters={"label": [f"{RUN_LABEL}={self.run_id}"]}):
            self._remove(_Container(item["Id"], None))

    def _open_runner(self, container: _Container) -> _Runner:
        """Start the container's serve runner: it cleans up, then waits for a job's frame on stdin."""
        import docker.errors

        try:
            exec_id = self.api.exec_create(
                container.id,
                ["python3", "-I", RUNNER_PATH, "--serve", "--workdir", f"{SCRATCH}/job", "--sweep",
                 "--wipe", SCRATCH, "--wipe", "/dev/shm"],
                stdin=True, stdout=True, stderr=False, user="0:0", workdir=SCRATCH,
                environment=_environment(),
            )["Id"]
            stream = self.api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as error:
            raise _NotStarted(str(error)) from None
        return _Runner(stream, getattr(stream, "_sock", stream))

    def _prepare(self, container: _Container) -> None:
        """Start the serve runner ahead of the first job, so no job pays `docker exec` or interpreter start."""
        if container.runner is not None:
            return
        try:
            self._attach_runner(container)
        except _NotStarted:
            pass  # the job that takes this container tries again, then retries elsewhere

    def _attach_runner(self, container: _Container) -> _Runner:
        runner = container.runner = self._open_runner(container)
        if container.removed:  # removed (the sandbox closed) while it started: no job must wait on it
            container.runner = None
            _close_runner(runner)
            raise _NotStarted("the container was removed")
        return runner

    def _take_runner(self, container: _Container) -> _Runner:
        """The container's serve runner, alive and idle; _NotStarted when it is gone."""
        runner = container.runner
        if runner is None:
            runner = self._attach_runner(container)
        elif not _waiting(runner.raw):  # it ended (or spoke unasked) while idle: not this job's doing
            raise _NotStarted("the container's runner ended while it waited for a job")
        return runner

    def _next_uid(self, container: _Container) -> int:
        """A candidate uid unlike the previous job's in this container."""
        uid = container.last_uid
        while uid == container.last_uid:
            uid = CANDIDATE_UIDS[0] + secrets.randbelow(CANDIDATE_UIDS[1] - CANDIDATE_UIDS[0])
        container.last_uid = uid
        return uid

    def _exec(self, container: _Container, job: SandboxJob) -> tuple[SandboxResult, bool]:
        """Run one job on the container's serve runner: (result, whether the container may be reused).

        No daemon call: the job's frame goes down the runner's stdin, its result line comes back.
        """
        # The pids cgroup bounds processes; RLIMIT_NPROC would count every
        # container's processes of the same uid together.
        job = replace(job, limits=replace(job.limits, max_procs=0))
        nonce, payload = encode_job(job)
        started = time.monotonic()
        deadline = started + job.deadline()
        runner = self._take_runner(container)
        cap = job.limits.max_output_bytes * (len(job.cases) + 1) + (1 << 20)
        frame = f"{self._next_uid(container)} {len(payload)}\n".encode() + payload
        try:
            runner.raw.settimeout(max(0.001, deadline - time.monotonic()))
            runner.raw.sendall(frame)
        except (socket.timeout, TimeoutError):
            stdout, problem = b"", "deadline"
        except OSError as error:  # the runner died before it could read the job: the candidate never ran
            raise _NotStarted(f"the container's runner did not take the job: {error}") from None
        else:
            stdout, problem = _receive(runner.raw, deadline, cap)
        seconds = time.monotonic() - started
        if problem == "not taken":
            raise _NotStarted("the container's runner ended before it took the job")
        if problem == "deadline":
            return failed(job, f"the sandbox exceeded its {job.deadline():g} s deadline", seconds), False
        if problem == "oversize":
            return failed(job, "the sandbox runner wrote more output than allowed", seconds), False
        result = decode_result(job, nonce, stdout, seconds)
        if result.failure:
            return result, False
        # Reused only on the runner's own word, in its nonce'd line, that it swept and wiped
        # (and on a stream that said nothing else: see _receive).
        healthy = problem == "" and result.runner_clean is True and all(run.status in HEALTHY for run in result.runs)
        return result, healthy


def remove_orphans(client: Any) -> int:
    """Remove sandbox containers whose owning engine process is gone; how many."""
    import docker.errors

    removed = 0
    for item in client.api.containers(all=True, filters={"label": [LABEL]}):
        if owner_alive(item.get("Labels", {}).get(OWNER_LABEL, "")):
            continue
        try:
            client.api.remove_container(item["Id"], force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if "already in progress" not in str(error):
                raise
    if removed:
        log.info("removed %d sandbox container(s) left by a run that ended abnormally", removed)
    return removed


def _environment() -> list[str]:
    home = f"{SCRATCH}/job"
    return [
        "PATH=/usr/local/bin:/usr/bin:/bin", f"HOME={home}", f"TMPDIR={home}", "LANG=C.UTF-8",
        "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "PYTHONDONTWRITEBYTECODE=1",
    ]


def _waiting(raw: socket.socket) -> bool:
    """Is an idle serve runner still waiting for a job? It writes nothing between jobs, and the daemon
    ends the stream when the runner or its container dies: a readable stream means it is gone."""
    try:
        return not select.select([raw], [], [], 0)[0]
    except (OSError, ValueError):  # closed
        return False


class _Demultiplexer:
    """Docker's stream framing (8-byte headers: stream, size), read as it arrives in any pieces."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.stdout = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        offset = 0
        while len(self.pending) - offset >= 8:
            stream, size = struct.unpack_from(">BxxxL", self.pending, offset)
            if len(self.pending) - offset - 8 < size:
                break
            if stream == 1:
                self.stdout += self.pending[offset + 8 : offset + 8 + size]
            offset += 8 + size
        del self.pending[:offset]


def _receive(raw: socket.socket, deadline: float, cap: int) -> tuple[bytes, str]:
    """One job's answer on the runner's stream: (stdout, "" | "deadline" | "oversize" | "not taken" | "ended" | "extra").

    The runner writes "\n" when it takes the job's frame, then the one result line. "not taken":
    the stream ended before that first byte (the runner was gone before the job); "ended": after
    it, without a whole line; "extra": more than the line (the line is decoded, the container is
    not reused).
    """
    reader = _Demultiplexer()
    received = 0
    end = -1  # where the result line ends, once it does
    while end == -1:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(reader.stdout), "deadline"
        # In slices: a removal may shut the connection down and close it while this waits; a wait
        # already begun on the closed descriptor would sleep out its whole timeout, the next one fails.
        raw.settimeout(min(remaining, RECEIVE_SLICE))
        try:
            chunk = raw.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            continue
        except OSError:
            chunk = b""
        if not chunk:
            return bytes(reader.stdout), "ended" if reader.stdout else "not taken"
        received += len(chunk)
        if received > cap:
            return b"", "oversize"
        searched = max(1, len(reader.stdout))  # after the taken mark; each byte scanned once
        reader.feed(chunk)
        end = reader.stdout.find(b"\n", searched)
    end += 1
    extra = end < len(reader.stdout) or bool(reader.pending)
    return bytes(reader.stdout[:end]), "extra" if extra else ""


def _slug(text: str) -> str:
    """A container-name-safe form of the run id."""
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in text)[:40] or "run"


def _close_runner(runner: _Runner) -> None:
    """Close the runner's connection: its stdin ends, so the serve loop ends too.

    Shut down first: that wakes a thread still waiting for a result on it (a cancelled job's),
    which a close alone would not, and the daemon does not end the stream of an exec whose
    stdin is open when it removes the container.
    """
    try:
        runner.raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    _close_quietly(runner.raw)
    _close_quietly(runner.stream)


def _close_quietly(thing: Any) -> None:
    try:
        thing.close()
    except Exception:  # noqa: BLE001 - closing a broken socket may fail in any way
        pass


def _forget(tasks: set[asyncio.Task]):
    def done(task: asyncio.Task) -> None:
        tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, SandboxClosed):
            log.warning("sandbox container upkeep failed: %s", error)

    return done
