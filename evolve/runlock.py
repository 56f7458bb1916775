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

LOCK_FILE = "evolve.lock"


class RunLocked(RuntimeError):
    pass


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    handle = open(run_dir / LOCK_FILE, "a+")
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
