"""In-sandbox runner: runs an untrusted candidate on a list of cases.

This file is copied into every sandbox (process, bubblewrap, Docker). It uses
only the standard library so it runs on any Python >= 3.9.

Usage
    runner.py [--workdir DIR] [--wipe DIR ...]
    --workdir  run the job in DIR, created empty (default: the current directory)
    --wipe     empty DIR before and after the job (a warm container's scratch);
               the exit status is 3 when something there could not be removed

Protocol
    stdin   one JSON job: {"nonce", "code", "entry", "cases": [{"id", "inputs"}],
            "case_timeout", "max_output_bytes", "max_log_bytes",
            "memory_bytes", "max_procs"}
    stdout  one line: "<nonce> <JSON result>"; nothing else is ever written there.

Trust boundary
    The candidate never runs in this process. A child forked from it imports
    the candidate and answers one case at a time over a private pipe; this
    process times each case from the outside, kills the child (and everything
    it spawned) on a deadline, and is the only writer of the result line. The
    child holds no descriptor for the runner's stdout (only the request pipe,
    its two log files and the reply pipe), and the runner makes itself
    non-dumpable so the candidate (same uid) cannot open /proc/<runner>/fd/1
    or read the runner's memory. The nonce is a second line of defence: the
    child's copy of the runner's memory holds it, so it guards only against
    writes that do not come from the candidate. Outputs are data only: the
    host-side verifier validates and scores them; nothing here produces a score.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import time

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
MESSAGE_LIMIT = 2000  # characters of error text kept per case


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------- child


def _to_jsonable(value):
    """JSON encoder hook: numpy arrays and scalars become lists and numbers."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON-serialisable")


def child_main(reply_fd: int) -> None:
    """Import the candidate and answer case requests read from stdin on `reply_fd`."""
    reply = os.fdopen(reply_fd, "w", encoding="utf-8")
    requests = sys.stdin

    def send(message: dict) -> None:
        reply.write(json.dumps(message, default=_to_jsonable) + "\n")
        reply.flush()

    sys.dont_write_bytecode = True  # no __pycache__ in the scratch (-I ignores PYTHONDONTWRITEBYTECODE)
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("candidate", "candidate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
        entry = getattr(module, requests.readline().strip())
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


# --------------------------------------------------------------------------- parent


class Child:
    """One candidate process, forked from the runner, talked to over two pipes.

    Forking (not a new interpreter) saves an interpreter start per evaluation.
    The child keeps no way back to the runner's stdout: its descriptors 0, 1,
    2 and 3 are the request pipe, the two log files and the reply pipe, and
    every other descriptor is closed before the candidate is imported.
    """

    REPLY_FD = 3

    def __init__(self, job: dict) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        log_out = os.open("candidate.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        log_err = os.open("candidate.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        limits = (job.get("memory_bytes"), job.get("max_procs"), job["max_log_bytes"])
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                for source, target in ((request_read, 0), (log_out, 1), (log_err, 2), (reply_write, 3)):
                    os.dup2(source, target)
                os.closerange(self.REPLY_FD + 1, _max_fd())
                os.setsid()
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python program
                _child_limits(*limits)
                sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", closefd=False)
                sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
                sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", closefd=False)
                sys.argv = [sys.argv[0], "--child", str(self.REPLY_FD)]
                child_main(self.REPLY_FD)
                _flush_logs()
            finally:
                os._exit(0)
        for fd in (request_read, reply_write, log_out, log_err):
            os.close(fd)
        self.pid = pid
        self.returncode: int | None = None
        self.requests = request_write
        self.reply = reply_read
        self.buffer = b""
        self.max_output = int(job["max_output_bytes"])
        self._write((job["entry"] + "\n").encode())

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.requests, data):]
        except OSError:
            pass  # the child is gone; receive() reports it as crashed

    def request(self, case: dict) -> None:
        self._write((json.dumps({"inputs": case["inputs"]}) + "\n").encode())

    def receive(self, deadline: float) -> tuple[str, object]:
        """Read one reply line: ("ok", message) or ("timeout"|"crashed"|"oversize", text)."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", None
            ready, _, _ = select.select([self.reply], [], [], remaining)
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
            return "ok", json.loads(line)
        except ValueError:
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


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1024


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


def _child_limits(memory: int | None, procs: int | None, log_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (log_bytes, log_bytes))
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if procs:
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))


def kill_descendants() -> None:
    """Kill every process left under this runner (orphans are reparented to us)."""
    me = os.getpid()
    for _ in range(200):
        found = False
        for pid in _children_of(me):
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


def _children_of(parent: int) -> list[int]:
    children = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == parent:
            children.append(int(name))
    return children


def _tail(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def run_job(job: dict) -> dict:
    with open("candidate.py", "w", encoding="utf-8") as handle:
        handle.write(job["code"])
    timeout = float(job["case_timeout"])
    results = []
    child = None
    for index, case in enumerate(job["cases"]):
        started = time.monotonic()
        if child is None:
            child = Child(job)
            status, ready = child.receive(started + timeout)
            if status != "ok" or not ready.get("ready"):
                # Loading is deterministic: every remaining case fails the same way.
                detail = ready.get("message", "") if isinstance(ready, dict) else status
                message = f"the candidate failed to load: {detail}"
                seconds = time.monotonic() - started
                results += [_case(c, "error", None, seconds, message) for c in job["cases"][index:]]
                child.kill()
                child = None
                break
            started = time.monotonic()
        child.request(case)
        status, reply = child.receive(started + timeout)
        seconds = time.monotonic() - started
        if status == "ok":
            results.append(_case(case, reply.get("status", "error"), reply.get("output"),
                                 seconds, str(reply.get("message", ""))[:MESSAGE_LIMIT]))
            continue
        returncode = child.kill(grace=0.5 if status == "crashed" else 0.0)
        child = None
        message = {
            "timeout": f"exceeded the {timeout:g} s time limit",
            "crashed": _crash_reason(returncode, job),
            "oversize": f"output larger than {job['max_output_bytes']} bytes",
            "protocol": "the candidate wrote to the result channel itself",
        }[status]
        results.append(_case(case, status, None, seconds, message))
    if child is not None:
        child.kill()
    kill_descendants()
    limit = int(job["max_log_bytes"])
    return {
        "cases": results,
        "stdout": _tail("candidate.out", limit),
        "stderr": _tail("candidate.err", limit),
    }


def _case(case: dict, status: str, output: object, seconds: float, message: str) -> dict:
    return {"id": case["id"], "status": status, "output": output,
            "seconds": round(seconds, 6), "message": message}


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


def _options(argv: list[str]) -> tuple[str | None, list[str]]:
    workdir, wipes = None, []
    for flag, value in zip(argv[::2], argv[1::2]):
        if flag == "--workdir":
            workdir = value
        elif flag == "--wipe":
            wipes.append(value)
    return workdir, wipes


def main() -> None:
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    workdir, wipes = _options(sys.argv[1:])
    clean = all([wipe(directory) for directory in wipes])
    if workdir:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        os.chdir(workdir)
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    result = run_job(job)
    if wipes:
        os.chdir("/")
        clean = all([wipe(directory) for directory in wipes]) and clean
    sys.stdout.write(nonce + " " + json.dumps(result) + "\n")
    sys.stdout.flush()
    if not clean:
        sys.exit(3)


if __name__ == "__main__":
    main()
