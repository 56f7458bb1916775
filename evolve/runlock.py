"""One engine per run directory: an advisory lock held for the life of a session.

Two processes resuming the same run would both write counters and programs; the
second is refused with a message instead. The kernel drops the lock when the
holder exits, even after `kill -9`, so a crashed run never stays locked.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from evolve.errors import EvolveError

LOCK_FILE = "evolve.lock"


class RunLocked(EvolveError, RuntimeError):
    pass


class RunDirUnwritable(EvolveError, RuntimeError):
    """The run directory cannot be written (read-only, not a folder, no permission)."""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    try:
        handle = open(run_dir / LOCK_FILE, "a+")
    except OSError as error:
        raise RunDirUnwritable(f"cannot write in the run directory {run_dir}: {error.strerror or error}; "
                               "choose a writable folder with run.dir=PATH") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLocked(f"{run_dir} is in use by another evolve process (pid {holder}); "
                            "wait for it to finish or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def is_running(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (the kernel releases it when the holder dies, even by kill -9)."""
    try:
        handle = open(run_dir / LOCK_FILE)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: never blocks a reader, fails under a writer
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def lock_holder(run_dir: Path) -> str:
    """The pid the last holder wrote into the lock file ("" if unknown)."""
    try:
        return (run_dir / LOCK_FILE).read_text().strip()
    except OSError:
        return ""
