"""Who owns a sandbox resource: an engine process, named so that its death can be told.

Containers (Docker labels) and scratch folders (process tier) carry their
engine's owner string; whatever is left by an engine that died (kill -9) is
found by it and removed by the next engine.
"""

from __future__ import annotations

import os
import socket


def owner() -> str:
    """This engine process: host, pid and start time (a reused pid has another start time)."""
    return f"{socket.gethostname()}:{os.getpid()}:{start_time(os.getpid())}"


def owner_alive(name: str) -> bool:
    """Whether the engine that `name` names still runs; another machine's is assumed alive."""
    host, _, rest = name.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname() and bool(host)  # another machine's: not ours to judge
    return start_time(int(pid)) == started and started != ""


def start_time(pid: int) -> str:
    """The process's start time in clock ticks: tells a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2 :].split()[19].decode()
