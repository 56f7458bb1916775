"""In-sandbox runner: runs an untrusted candidate on a list of cases.

This file is copied into every sandbox (process, bubblewrap, Docker). It uses
only the standard library so it runs on any Python >= 3.9.

Usage
    runner.py [--workdir DIR] [--wipe DIR ...] [--uid UID] [--sweep] [--serve]
    --workdir  run the job in DIR, created empty (default: the current directory)
    --wipe     empty DIR before and after the job (a warm container's scratch)
    --uid      (runner started as root) the candidate runs as this uid and gid,
               with no capabilities and an empty bounding set; the runner stays
               root, out of the candidate's reach, to clean up after it
    --sweep    (runner as root in a warm container) before and after the job,
               kill every process not owned by root and remove every SysV and
               POSIX IPC object, so nothing one candidate leaves reaches the next
    --serve    serve job after job on one stdin/stdout (the Docker warm pool's one
               `docker exec` per container): see "Serve mode"; each frame names
               its job's uid, so --uid is not used
    The exit status is 3 when something could not be cleaned; the result line
    says the same in "clean" (the host then needs no exit status).

Protocol
    stdin   one JSON job: {"nonce", "code", "entry", "cases": [{"id", "inputs"}],
            "case_timeout", "wall_timeout", "max_output_bytes", "max_log_bytes",
            "memory_bytes", "max_procs", "max_depth", "max_int_digits"}
    stdout  one line: "<nonce> <JSON result>"; nothing else is ever written there.
            The result's "clean" is false when the sweep or a wipe left something.
    A job with a "program" (a compiled or multi-file candidate: {"files": [[path, text]],
    "build", "run", "stdin", "stdout", build limits, "prebuilt"}) is built once with
    `/bin/sh -c build` (or given the files an earlier build made), then `/bin/sh -c run`
    answers each case in a process of its own: the case's input on stdin, its output on
    stdout; the result then also holds {"build": {"status", "message", "cpu_seconds",
    "artifacts"}}. See run_program_job.

Serve mode (--serve)
    stdin   frame after frame; a frame is a header line "<uid> <n>\n" (uid: the
            candidate's, or "-" to keep the runner's own) and then exactly n bytes:
            the JSON job above. The host sends a frame only after the previous
            job's result line came back, and ends the stream when it has no more.
    stdout  per job: "\n" once the frame's header is read (the job is taken: from
            then on a missing result is the job's failure, before it the runner
            was gone while idle and the candidate never ran), then the one result
            line as above. Nothing is written between jobs.
    exit    0 when stdin ends before a frame; else the status of the job runner
            that ended the loop (3: unclean; any other: it failed), after its
            result line if it wrote one. The host reuses a container only on a
            result line saying "clean": true.
    The serve loop itself never reads a byte of a job. For each frame it forks a
    job runner, which does what the one-shot mode does (run_one: sweep and wipe,
    read the header, fork the candidate as that uid, only then read the job, run
    it, sweep and wipe, write the line) and exits; the loop waits for it and
    forks the next. So every job's runner, and the candidate it forks, is a copy
    of a process whose memory never held any job: no nonce and no case input
    (say held-out inputs) of an earlier job can be in it. The header is read a
    byte at a time and the job by its length, so nothing of the job is read
    before the candidate's process exists. A job runner dies with the loop
    (PR_SET_PDEATHSIG), so a killed loop ends the stream instead of leaving an
    idle job runner holding it open.

Trust boundary
    The candidate never runs in this process. Its process is forked BEFORE the
    job is read (or, after a crash, is a fresh interpreter), so its memory holds
    neither the nonce nor any case's inputs, of this job or (serve mode) of any
    earlier one. It learns the entry and its limits,
    imports the candidate, then receives one case's inputs at a time over a
    private pipe; later cases' inputs do not exist for it until they start.
    The child holds no descriptor for the runner's stdin or stdout (only the
    request pipe, its two log files and the reply pipe), and the runner is
    non-dumpable, so a candidate of the same uid cannot open
    /proc/<runner>/fd/1 or read the runner's memory. Outputs are data only: the
    host-side verifier validates and scores them; nothing here produces a score.

Measurement
    A case's clock starts before the candidate's code first runs (the import is
    charged to the first case) and stops when its reply arrives; after the last
    case everything the candidate started is killed, so no work happens outside
    a measured window. The time is the CPU time of the candidate's whole process
    tree, read from outside it: the kernel's per-process CPU clocks of the live
    processes plus the rusage of those reaped. The case timeout applies to that
    CPU time; a wall-clock backstop (`wall_timeout`) stops a candidate that
    sleeps or waits.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
MESSAGE_LIMIT = 2000  # characters of error text kept per case
POLL = 0.02  # seconds between CPU-time checks while a case runs
CHILD_FLAG = "--child"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------- bounded JSON

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class Unbounded(ValueError):
    """A JSON text nested too deeply or with an absurd number in it."""


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings ignored)."""
    brackets = _STRINGS.sub(b'""', data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def bounded_loads(data: bytes, max_depth: int, max_int_digits: int):
    """json.loads that refuses nesting deeper than `max_depth` and integers longer than `max_int_digits`.

    Decoding an unbounded text can exhaust the decoder's recursion or the verifier's
    arithmetic; here either is the text's fault, said in the Unbounded error.
    """
    opens = data.count(b"[") + data.count(b"{")
    if opens > max_depth and json_depth(data) > max_depth:
        raise Unbounded(f"nested deeper than {max_depth} levels")

    def whole(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > max_int_digits:
            raise Unbounded(f"an integer of {digits} digits (at most {max_int_digits} are accepted)")
        return int(text)

    return json.loads(data, parse_int=whole)


# --------------------------------------------------------------------------- child


def _to_jsonable(value):
    """JSON encoder hook: numpy arrays and scalars become lists and numbers."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON-serialisable")


def child_main(reply_fd: int, uid: int | None) -> None:
    """Take limits and entry, become the candidate's uid, import it, answer cases one at a time."""
    reply = os.fdopen(reply_fd, "w", encoding="utf-8")
    requests = sys.stdin

    def send(message: dict) -> None:
        reply.write(json.dumps(message, default=_to_jsonable) + "\n")
        reply.flush()

    setup_line = requests.readline()
    if not setup_line:
        return
    setup = json.loads(setup_line)
    _child_limits(setup.get("memory_bytes"), setup.get("max_procs"), setup["max_log_bytes"])
    if uid is not None:
        _become(uid)
    sys.dont_write_bytecode = True  # no __pycache__ in the scratch (-I ignores PYTHONDONTWRITEBYTECODE)
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("candidate", "candidate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
        entry = getattr(module, setup["entry"])
    except BaseException as error:  # noqa: BLE001 - anything the candidate raises
        _flush_logs()
        send({"ready": False, "message": _format_error(error)})
        return
    send({"ready": True})
    for line in requests:
        case = json.loads(line)
        try:
            output = entry(**case["inputs"])
        except BaseException as error:  # noqa: BLE001
            text = json.dumps({"status": "error", "message": _format_error(error)})
        else:
            try:
                text = json.dumps({"status": "ok", "output": output}, default=_to_jsonable)
            except BaseException as error:  # noqa: BLE001 - the value's own methods may raise anything
                message = f"the returned value is not JSON data: {type(error).__name__}: {error}"
                text = json.dumps({"status": "error", "message": message[:MESSAGE_LIMIT]})
        _flush_logs()
        reply.write(text + "\n")
        reply.flush()


def _become(uid: int) -> None:
    """Drop root for good: no capabilities now or through any exec, no supplementary groups."""
    for capability in range(64):
        _prctl(PR_CAPBSET_DROP, capability)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _flush_logs() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the candidate may have replaced them
            pass


def _format_error(error: BaseException) -> str:
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text[-MESSAGE_LIMIT:]


def _child_limits(memory: int | None, procs: int | None, log_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (log_bytes, log_bytes))
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if procs:
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))


# --------------------------------------------------------------------------- parent


class Child:
    """One candidate process, talked to over two pipes.

    The first child is forked before the runner reads its job, so it shares no
    memory with it; a replacement (after a crash or a timeout) is a fresh
    interpreter (`exec`), for the same reason. Its descriptors 0, 1, 2 and 3 are
    the request pipe, the two log files and the reply pipe; every other
    descriptor is closed before the candidate is imported.
    """

    REPLY_FD = 3

    def __init__(self, uid: int | None, fresh_interpreter: bool) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        log_out = os.open("candidate.out", flags, 0o600)
        log_err = os.open("candidate.err", flags, 0o600)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                for source, target in ((request_read, 0), (log_out, 1), (log_err, 2), (reply_write, 3)):
                    os.dup2(source, target)
                os.closerange(self.REPLY_FD + 1, _max_fd())
                os.setsid()
                if fresh_interpreter:
                    os.execv(sys.executable, [sys.executable, "-I", os.path.abspath(__file__), CHILD_FLAG,
                                              "" if uid is None else str(uid)])
                _child_process(uid)
            finally:
                os._exit(0)
        for fd in (request_read, reply_write, log_out, log_err):
            os.close(fd)
        self.pid = pid
        self.returncode: int | None = None
        self.requests = request_write
        self.reply = reply_read
        self.buffer = b""
        self.max_output = 1 << 20
        self.loaded = False  # the candidate imported and ready for cases

    def start(self, job: dict) -> None:
        """Send the entry and the limits: the child then imports the candidate."""
        self.max_output = int(job["max_output_bytes"])
        setup = {"entry": job["entry"], "memory_bytes": job.get("memory_bytes"),
                 "max_procs": job.get("max_procs"), "max_log_bytes": job["max_log_bytes"]}
        self._write((json.dumps(setup) + "\n").encode())

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.requests, data):]
        except OSError:
            pass  # the child is gone; receive() reports it as crashed

    def request(self, case: dict) -> None:
        self._write((json.dumps({"inputs": case["inputs"]}) + "\n").encode())

    def receive(self, meter: "Meter", job: dict) -> tuple[str, object]:
        """One reply line: ("ok", message) or ("timeout"|"walltime"|"crashed"|"oversize"|"protocol", None)."""
        while b"\n" not in self.buffer:
            wall_left = meter.wall_deadline - time.monotonic()
            if wall_left <= 0:
                return "walltime", None
            cpu_left = meter.cpu_limit - meter.cpu()
            if cpu_left <= 0:
                return "timeout", None
            ready, _, _ = select.select([self.reply], [], [], max(0.001, min(POLL, wall_left, cpu_left)))
            if not ready:
                continue
            chunk = os.read(self.reply, 1 << 16)
            if not chunk:
                return "crashed", None
            self.buffer += chunk
            if len(self.buffer) > self.max_output:
                return "oversize", None
        line, self.buffer = self.buffer.split(b"\n", 1)
        if self.buffer or (_readable(self.reply) and os.read(self.reply, 1)):
            # A reply nobody asked for: the candidate wrote to the channel itself.
            return "protocol", None
        try:
            return "ok", bounded_loads(line, int(job["max_depth"]) + 2, int(job["max_int_digits"]))
        except Unbounded as problem:
            return "ok", {"status": "error", "message": f"the returned value is {problem}"}
        except (ValueError, RecursionError):
            return "protocol", None

    def _reap(self, block: bool) -> None:
        if self.returncode is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.returncode = self.returncode if self.returncode is not None else -signal.SIGKILL
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def kill(self, grace: float = 0.0) -> int | None:
        """Stop the child and everything it started; its exit status (negative: signal).

        `grace`: a child that just closed its channel is usually exiting; give it
        that long to say how before killing it.
        """
        end = time.monotonic() + grace
        self._reap(block=False)
        while self.returncode is None and time.monotonic() < end:
            time.sleep(0.005)
            self._reap(block=False)
        exited = self.returncode
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        self._reap(block=True)
        for fd in (self.reply, self.requests):
            try:
                os.close(fd)
            except OSError:
                pass
        kill_descendants()
        return exited if exited is not None else self.returncode


def _child_process(uid: int | None) -> None:
    """The child's side, in the forked process or in a fresh interpreter."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python program
    sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", closefd=False)
    sys.argv = [sys.argv[0]]
    child_main(Child.REPLY_FD, uid)
    _flush_logs()


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1024


# --------------------------------------------------------------------------- measurement


class Meter:
    """CPU time of every process under this runner since a case started, and that case's limits."""

    def __init__(self, cpu_limit: float, wall_limit: float) -> None:
        self.cpu_limit = cpu_limit
        self.wall_limit = wall_limit
        self.wall_deadline = 0.0
        self.base = 0.0

    def start_case(self) -> None:
        self.base = tree_cpu()
        self.wall_deadline = time.monotonic() + self.wall_limit

    def cpu(self) -> float:
        """CPU seconds the candidate's processes used since the case started."""
        return tree_cpu() - self.base


def tree_cpu() -> float:
    """CPU seconds used by this runner's descendants: those reaped, plus the live ones so far."""
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = reaped.ru_utime + reaped.ru_stime
    for pid in _descendants(os.getpid()):
        total += _process_cpu(pid)
    return total


def _process_cpu(pid: int) -> float:
    """A live process's CPU time (all its threads, in ns) plus that of the children it reaped."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    try:
        own = time.clock_gettime(((~pid) << 3) | 2)  # the process's CPU clock (clock_getcpuclockid)
    except OSError:
        own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # a zombie: its final figures
    return own + reaped


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def _descendants(root: int) -> list[int]:
    """Every live process below `root` (orphans are reparented to it: it is a subreaper)."""
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for child in _children_of(pid):
            found.append(child)
            frontier.append(child)
    return found


def _children_of(parent: int) -> list[int]:
    children: list[int] = []
    try:
        threads = os.listdir(f"/proc/{parent}/task")
    except OSError:
        return children
    for thread in threads:
        try:
            with open(f"/proc/{parent}/task/{thread}/children", "rb") as handle:
                children += [int(pid) for pid in handle.read().split()]
        except OSError:
            continue
    return children


# --------------------------------------------------------------------------- clean-up


def _crash_reason(returncode: int, job: dict) -> str:
    """Why the candidate's process ended, as far as its exit status tells."""
    if returncode == -signal.SIGXFSZ:
        return f"the candidate wrote more than {job['max_log_bytes']} bytes to stdout, stderr or a file"
    if returncode == -signal.SIGKILL:
        return "the candidate process was killed (out of memory, or by a signal)"
    if returncode is not None and returncode < 0:
        return f"the candidate process died on signal {signal.Signals(-returncode).name}"
    return f"the candidate process exited (status {returncode}) instead of returning"


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def kill_descendants() -> None:
    """Kill every process left under this runner (orphans are reparented to us)."""
    me = os.getpid()
    for _ in range(200):
        found = False
        for pid in _descendants(me):
            found = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Reap whatever died, including children of ours we never waited for.
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not found:
            return
        time.sleep(0.01)


def sweep() -> bool:
    """As root in a warm container: kill every process not owned by root, remove every IPC object.

    Whatever one candidate left (a daemon, shared memory, a message queue) is
    gone before the next one starts; False when something stayed.
    """
    me = os.getpid()
    for _ in range(100):
        strangers = [pid for pid in _all_pids() if pid != me and _uid_of(pid) not in (0, None)]
        if not strangers:
            break
        for pid in strangers:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    else:
        return False
    return _remove_ipc() and wipe("/dev/mqueue")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _uid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _remove_ipc() -> bool:
    """Remove every SysV shared memory segment, message queue and semaphore set (as root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    clean = True
    for kind, remove in (("shm", libc.shmctl), ("msg", libc.msgctl), ("sem", lambda i, c, a: libc.semctl(i, 0, c))):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            ident = int(row.split()[1])
            if remove(ident, 0, None) != 0:  # IPC_RMID
                clean = False
    return clean


def _tail(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


# --------------------------------------------------------------------------- compiled programs

BUILD_MESSAGE_LIMIT = 4000  # characters of a failed build's output kept (its head and tail)
CASE_STDIN = ".case-input"


def run_program_job(job: dict, uid: int | None) -> dict:
    """A multi-file candidate: write its files, build them once, run the program once per case.

    Every process (the build's and each case's) starts in a session of its own with the
    candidate's limits and uid; each is killed with all it started before the next begins.
    The build is charged to no case; each case's CPU time is that of its process tree.
    """
    program = job["program"]
    sources = set()
    for path, text in program["files"]:
        _write_file(_safe_path(path, uid), text.encode("utf-8"), 0o644, None)
        sources.add(path)
    limit = int(job["max_log_bytes"])
    if program.get("prebuilt") is not None:
        import base64

        for path, text in program["prebuilt"]:
            _write_file(_safe_path(path, uid), base64.b64decode(text), 0o755, uid)
        build = {"status": "cached", "message": "", "seconds": 0.0, "cpu_seconds": 0.0}
    elif program.get("build"):
        build = _build(program, job, uid, sources)
    else:
        build = {"status": "ok", "message": "", "seconds": 0.0, "cpu_seconds": 0.0, "artifacts": []}
    results = []
    if build["status"] not in ("ok", "cached"):
        message = f"build failed ({build['status']}): {build['message']}"
        results = [_case(case, "error", None, 0.0, message, 0.0) for case in job["cases"]]
    else:
        timeout = float(job["case_timeout"])
        meter = Meter(timeout, float(job.get("wall_timeout") or 3 * timeout + 1))
        for case in job["cases"]:
            results.append(_run_case(case, program, job, uid, meter))
    kill_descendants()
    return {"cases": results, "build": build,
            "stdout": _tail("candidate.out", limit), "stderr": _tail("candidate.err", limit)}


def _safe_path(path: str, uid: int | None) -> str:
    """A path from the job, kept inside the working folder; its folders made (the candidate's: builds write there)."""
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or "\0" in path:
        raise ValueError(f"refused file name {path!r}")
    for depth in range(1, len(parts)):
        folder = os.path.join(*parts[:depth])
        if not os.path.isdir(folder):
            os.mkdir(folder, 0o755)
            if uid is not None:
                os.chown(folder, uid, uid)
    return path


def _write_file(path: str, data: bytes, mode: int, uid: int | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    if uid is not None:
        os.chown(path, uid, uid)


def _spawn(command: str, stdin_fd: int, stdout_fd: int, log_fd: int, limits: dict, uid: int | None) -> int:
    """Start `/bin/sh -c command` in a session of its own, with limits, as the candidate; its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            for source, target in ((stdin_fd, 0), (stdout_fd, 1), (log_fd, 2)):
                os.dup2(source, target)
            os.closerange(3, _max_fd())
            os.setsid()
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            _lower(resource.RLIMIT_CORE, 0)
            _lower(resource.RLIMIT_FSIZE, limits["file_bytes"])
            if limits.get("memory_bytes"):
                _lower(resource.RLIMIT_AS, limits["memory_bytes"])
            if limits.get("max_procs"):
                _lower(resource.RLIMIT_NPROC, limits["max_procs"])
            if uid is not None:
                _become(uid)
            os.execve("/bin/sh", ["/bin/sh", "-c", command], dict(os.environ))
        except BaseException as error:  # noqa: BLE001 - said on the log, then the exit status says it failed
            os.write(2, f"the sandbox could not start the command: {error}\n".encode())
        finally:
            os._exit(127)
    return pid


def _lower(limit: int, value: int) -> None:
    """Set a limit, never above what this runner itself was given (a backend may have set a lower one)."""
    _soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


def _wait(pid: int, meter: Meter, reader: int | None, cap: int) -> tuple[str, int | None, bytes]:
    """Collect `reader` (up to `cap` bytes) until `pid` exits; (status, exit code, bytes read).

    status: ok (exited), timeout (CPU), walltime, oversize (more than `cap` bytes).
    """
    data = bytearray()
    status = "ok"
    while True:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            if reader is not None:  # what is left in the pipe (its writers may live on: bounded)
                while len(data) <= cap and _readable(reader):
                    chunk = os.read(reader, 1 << 16)
                    if not chunk:
                        break
                    data += chunk
                if len(data) > cap:
                    status = "oversize"
            return status, os.waitstatus_to_exitcode(code), bytes(data)
        if time.monotonic() > meter.wall_deadline:
            status = "walltime"
        elif meter.cpu() > meter.cpu_limit:
            status = "timeout"
        elif len(data) > cap:
            status = "oversize"
        if status != "ok":
            kill_descendants()  # kills and reaps `pid` and all it started
            return status, None, bytes(data)
        if reader is not None and select.select([reader], [], [], POLL)[0]:
            chunk = os.read(reader, 1 << 16)
            if chunk:
                data += chunk
            else:
                reader = None  # every writer closed it; the caller closes the descriptor
        elif reader is None:
            time.sleep(POLL / 4)


def _build(program: dict, job: dict, uid: int | None, sources: set) -> dict:
    """Run the build command under its own limits; its status, trimmed output and the files it made."""
    meter = Meter(float(program["build_timeout"]), float(program["build_wall_timeout"]))
    log = os.open(".build-log", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    if uid is not None:
        os.fchown(log, uid, uid)
    null = os.open(os.devnull, os.O_RDONLY)
    started = time.monotonic()
    meter.start_case()
    limits = {"file_bytes": int(program["build_max_file_bytes"]), "memory_bytes": program.get("build_memory_bytes"),
              "max_procs": job.get("max_procs")}
    pid = _spawn(program["build"], null, log, log, limits, uid)
    os.close(null)
    status, code, _ = _wait(pid, meter, None, 0)
    kill_descendants()
    cpu, seconds = meter.cpu(), time.monotonic() - started
    os.lseek(log, 0, os.SEEK_SET)
    output = os.read(log, 1 << 20)
    os.close(log)
    os.unlink(".build-log")
    text = _head_and_tail(output.decode("utf-8", "replace"), BUILD_MESSAGE_LIMIT)
    if status == "timeout":
        message = f"the build exceeded its {float(program['build_timeout']):g} s CPU time limit\n{text}"
    elif status == "walltime":
        status = "timeout"
        message = f"the build exceeded its {float(program['build_wall_timeout']):g} s wall-clock limit\n{text}"
    elif code != 0:
        status = "crashed" if code is not None and code < 0 else "error"
        reason = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                  else f"exit status {code}")
        if code == -signal.SIGXFSZ:
            reason += f" (a file larger than {int(program['build_max_file_bytes'])} bytes)"
        message = f"{reason}\n{text}"
    else:
        message = ""
    result = {"status": status, "message": message.strip(), "seconds": round(seconds, 6),
              "cpu_seconds": round(max(cpu, 0.0), 6)}
    if status == "ok":
        result["artifacts"] = _artifacts(sources, int(program.get("max_artifact_bytes") or 0))
    return result


def _artifacts(sources: set, cap: int) -> list | None:
    """The files the build made (base64), or None when they are more than `cap` bytes together."""
    import base64

    found, total = [], 0
    for folder, _dirs, names in os.walk("."):
        for name in names:
            path = os.path.normpath(os.path.join(folder, name))
            if path in sources or path in ("candidate.out", "candidate.err") or os.path.islink(path):
                continue
            if not os.path.isfile(path):
                continue
            total += os.path.getsize(path)
            if total > cap:
                return None
            with open(path, "rb") as handle:
                found.append([path, base64.b64encode(handle.read()).decode()])
    return found


def _head_and_tail(text: str, limit: int) -> str:
    """Compiler errors: the first ones matter most, the last line says how it ended."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    return text[:head] + f"\n... [{len(text) - limit} characters cut] ...\n" + text[-(limit - head):]


def _run_case(case: dict, program: dict, job: dict, uid: int | None, meter: Meter) -> dict:
    """One case: the run command with the case's input on stdin, its stdout as the output."""
    inputs = case["inputs"]
    if program["stdin"] == "json":
        data = json.dumps(inputs).encode() + b"\n"
    else:
        value = inputs.get(program["stdin"])
        data = (value if isinstance(value, str) else json.dumps(value)).encode()
    # The input as an unlinked file: no pipe to keep fed, and gone when the case ends.
    stdin = os.open(CASE_STDIN, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.unlink(CASE_STDIN)
    _write_all(stdin, data)
    os.lseek(stdin, 0, os.SEEK_SET)
    reader, writer = os.pipe()
    log = os.open("candidate.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if uid is not None:
        os.fchown(log, uid, uid)
    limits = {"file_bytes": int(job["max_log_bytes"]), "memory_bytes": job.get("memory_bytes"),
              "max_procs": job.get("max_procs")}
    started = time.monotonic()
    meter.start_case()
    pid = _spawn(program["run"], stdin, writer, log, limits, uid)
    for fd in (stdin, writer, log):
        os.close(fd)
    cap = int(job["max_output_bytes"])
    status, code, out = _wait(pid, meter, reader, cap)
    cpu, seconds = meter.cpu(), time.monotonic() - started
    kill_descendants()
    try:
        os.close(reader)
    except OSError:
        pass
    timeout, wall = meter.cpu_limit, meter.wall_limit
    if status != "ok":
        message = {"timeout": f"exceeded the {timeout:g} s CPU time limit",
                   "walltime": f"exceeded the {wall:g} s wall-clock limit (waiting or sleeping)",
                   "oversize": f"output larger than {cap} bytes"}[status]
        return _case(case, "timeout" if status == "walltime" else status, None, seconds, message, cpu)
    if code != 0:
        if code is not None and code < 0:
            return _case(case, "crashed", None, seconds, _crash_reason(code, job).replace("process", "program"), cpu)
        tail = _tail_text("candidate.err", MESSAGE_LIMIT // 2)
        return _case(case, "error", None, seconds, f"the program exited with status {code}\n{tail}".strip(), cpu)
    if program["stdout"] == "text":
        return _case(case, "ok", out.decode("utf-8", "replace"), seconds, "", cpu)
    try:
        output = bounded_loads(out, int(job["max_depth"]), int(job["max_int_digits"]))
    except Unbounded as problem:
        return _case(case, "error", None, seconds, f"the printed value is {problem}", cpu)
    except (ValueError, RecursionError) as error:
        shown = out[:200].decode("utf-8", "replace")
        return _case(case, "error", None, seconds, f"stdout is not one JSON value ({error}): {shown!r}", cpu)
    return _case(case, "ok", output, seconds, "", cpu)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _tail_text(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- the job


def run_job(job: dict, child: Child | None, uid: int | None) -> dict:
    with open("candidate.py", "w", encoding="utf-8") as handle:
        handle.write(job["code"])
    timeout = float(job["case_timeout"])
    wall = float(job.get("wall_timeout") or 3 * timeout + 1)
    meter = Meter(timeout, wall)
    results = []
    for index, case in enumerate(job["cases"]):
        started = time.monotonic()
        meter.start_case()
        if child is None:
            child = Child(uid, fresh_interpreter=True)
        if not child.loaded:
            child.start(job)
            status, ready = child.receive(meter, job)
            if status != "ok" or not isinstance(ready, dict) or not ready.get("ready"):
                # Loading is deterministic: every remaining case fails the same way.
                if status == "ok":
                    detail = ready.get("message", "") if isinstance(ready, dict) else "no answer"
                else:
                    detail = _status_message(status, child, job, timeout, wall)
                message = f"the candidate failed to load: {detail}"
                seconds, cpu = time.monotonic() - started, meter.cpu()
                results += [_case(c, "error", None, seconds, message, cpu) for c in job["cases"][index:]]
                child.kill()
                child = None
                break
            child.loaded = True
        child.request(case)
        status, reply = child.receive(meter, job)
        seconds, cpu = time.monotonic() - started, meter.cpu()
        if status == "ok":
            results.append(_case(case, reply.get("status", "error"), reply.get("output"),
                                 seconds, str(reply.get("message", ""))[:MESSAGE_LIMIT], cpu))
            continue
        message = _status_message(status, child, job, timeout, wall)
        child = None
        results.append(_case(case, "timeout" if status == "walltime" else status, None, seconds, message, cpu))
    if child is not None:
        child.kill()
    kill_descendants()
    limit = int(job["max_log_bytes"])
    return {
        "cases": results,
        "stdout": _tail("candidate.out", limit),
        "stderr": _tail("candidate.err", limit),
    }


def _status_message(status: str, child: Child, job: dict, timeout: float, wall: float) -> str:
    """Kill the child after a failed reply and say why it failed."""
    returncode = child.kill(grace=0.5 if status == "crashed" else 0.0)
    return {
        "timeout": f"exceeded the {timeout:g} s CPU time limit",
        "walltime": f"exceeded the {wall:g} s wall-clock limit (waiting or sleeping)",
        "crashed": _crash_reason(returncode, job),
        "oversize": f"output larger than {job['max_output_bytes']} bytes",
        "protocol": "the candidate wrote to the result channel itself",
    }[status]


def _case(case: dict, status: str, output: object, seconds: float, message: str, cpu: float) -> dict:
    return {"id": case["id"], "status": status, "output": output,
            "seconds": round(seconds, 6), "cpu_seconds": round(max(cpu, 0.0), 6), "message": message}


def wipe(directory: str) -> bool:
    """Remove everything inside `directory`; False if something stayed."""
    def writable(function, path, _error):
        # The candidate may have taken the write bit off its own directories.
        try:
            os.chmod(os.path.dirname(path) or ".", 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    import shutil

    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=writable)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    try:
        return not os.listdir(directory)
    except OSError:
        return False


def _options(argv: list[str]) -> dict:
    options: dict = {"workdir": None, "wipe": [], "uid": None, "sweep": False, "serve": False}
    items = iter(argv)
    for flag in items:
        if flag == "--sweep":
            options["sweep"] = True
        elif flag == "--serve":
            options["serve"] = True
        elif flag == "--workdir":
            options["workdir"] = next(items)
        elif flag == "--wipe":
            options["wipe"].append(next(items))
        elif flag == "--uid":
            options["uid"] = int(next(items))
    return options


class NoJob(Exception):
    """Standard input ended where a job's frame should begin: the host has no more work."""


EXIT_UNCLEAN = 3  # the sweep or a wipe left something
EXIT_NO_JOB = 4  # (serve) stdin ended before a frame: the serve loop ends
EXIT_ORPHANED = 5  # (serve) a job runner whose serve loop is gone
HEADER_LIMIT = 64  # bytes of a frame's header line, at most


def run_one(options: dict, take_uid, take_job, taken=None) -> bool:
    """One job, start to end: clean up, fork the candidate, read the job, run it, clean up, answer.

    `take_uid()` gives the candidate's uid (it carries no secret: it is known before the
    candidate's process exists); `take_job()` the job's JSON bytes, read only after that
    process is forked; `taken()`, if given, is called once the uid is taken. Writes the one
    nonce'd result line to fd 1; whether everything was cleaned up.
    """
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # not inherited through fork: each job's runner sets it
    workdir = options["workdir"]
    clean = sweep() if options["sweep"] else True
    clean = all([wipe(directory) for directory in options["wipe"]]) and clean
    uid = take_uid()
    if taken is not None:
        taken()
    if workdir:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chdir(workdir)
    child = Child(uid, fresh_interpreter=False)  # before the job exists in this process
    job = json.loads(take_job())
    nonce = job.pop("nonce")
    if job.get("program") is not None:  # a built program: no interpreter child needed
        child.kill()
        result = run_program_job(job, uid)
    else:
        result = run_job(job, child, uid)
    if options["sweep"]:
        clean = sweep() and clean
    if options["wipe"]:
        os.chdir("/")
        clean = all([wipe(directory) for directory in options["wipe"]]) and clean
    # Written after the last sweep and wipe, so it covers them: the Docker host reads it
    # instead of asking the daemon for the exit status (a round trip per job).
    result["clean"] = clean
    _write_all(1, (nonce + " " + json.dumps(result) + "\n").encode())
    return clean


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes from `fd`, never more (the next frame is not this job's); EOFError if it ends first."""
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError(f"stdin ended {size - len(data)} bytes short of the job")
        data += chunk
    return bytes(data)


def _read_header(fd: int) -> tuple[int | None, int]:
    """A frame's header line "<uid> <job bytes>\n" (uid "-": keep this runner's), read a byte at a time
    so that nothing of the job after it is read before the candidate's process is forked."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            if not line:
                raise NoJob()
            raise EOFError("stdin ended inside a frame's header")
        line += byte
        if len(line) > HEADER_LIMIT:
            raise ValueError("a frame's header line is too long")
    uid, size = line.split()
    return (None if uid == b"-" else int(uid)), int(size)


def serve_one(options: dict, parent: int) -> None:
    """A per-job runner (forked by `serve`): one frame from fd 0, one result line on fd 1, then exit."""
    # It dies with the serve loop: else, idle on stdin, it would keep the exec's stream open
    # after the loop is gone, and the host would not see that the loop ended.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the loop died before that took effect
        os._exit(EXIT_ORPHANED)
    frame: dict = {}

    def take_uid() -> int | None:
        frame["uid"], frame["size"] = _read_header(0)
        return frame["uid"]

    def taken() -> None:
        _write_all(1, b"\n")  # the job is taken: from here a missing result is the job's, not the idle runner's

    try:
        clean = run_one(options, take_uid, lambda: _read_exactly(0, frame["size"]), taken)
    except NoJob:
        os._exit(EXIT_NO_JOB)
    os._exit(0 if clean else EXIT_UNCLEAN)


def serve(options: dict) -> None:
    """The pristine serve loop: fork a per-job runner, wait for it, again; never read a job itself.

    Each job's candidate is forked from a process whose memory has never held any job (this
    one's, copied), so no nonce and no case input of an earlier job can be in it.
    """
    while True:
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                serve_one(options, me)
            finally:
                os._exit(70)  # an error escaped: the job's runner is done, and so is this loop
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_NO_JOB:
            sys.exit(0)
        if code != 0:  # unclean, or died abnormally: the host discards this container
            sys.exit(code if code > 0 else 128 - code)


def main() -> None:
    _prctl(PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    options = _options(sys.argv[1:])
    if options["serve"]:
        serve(options)
        return
    if not run_one(options, lambda: options["uid"], sys.stdin.buffer.read):
        sys.exit(EXIT_UNCLEAN)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == CHILD_FLAG:
        _child_process(int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None)
        os._exit(0)
    main()
