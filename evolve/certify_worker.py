"""One certification call in its own process: `python -m evolve.certify_worker VERIFIER_PATH ENGINE_PID`.

Reads one JSON job on stdin ({"verifier": VerifierSource.to_json(), "hook": "gate" | "certify",
"settings", "time_limit", and the hook's arguments}), loads the verifier from that frozen source
(the bytes the engine read and hashed when it loaded the problem; the files on disk are never
read, see evolve/verifier_source.py), calls the hook, and writes one
JSON object on stdout: {"ok": true, "result": {...}} or {"ok": false, "error": "Type: message"}.
Anything the verifier prints goes to stderr. The engine kills this process at its time
limit or when the run stops; if the engine itself dies (kill -9), so does this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

PARENT_POLL = 0.5  # seconds between checks that the engine is still there


def main() -> int:
    _die_with_parent()
    job = json.loads(sys.stdin.read())
    real_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the verifier's prints must not garble the answer
            result = _call(job)
        reply: dict[str, Any] = {"ok": True, "result": result}
        text = json.dumps(reply, default=str, allow_nan=False)
    except Exception as error:  # noqa: BLE001 - every failure is reported to the engine, which names the verifier
        traceback.print_exc(file=sys.stderr)
        text = json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"[:2000]})
    real_stdout.write(text + "\n")
    real_stdout.flush()
    return 0


def _call(job: dict[str, Any]) -> Any:
    from evolve.problem import load_frozen_verifier
    from evolve.verifier_source import VerifierSource

    module = load_frozen_verifier(VerifierSource.from_json(job["verifier"]))
    if job["hook"] == "gate":
        return module.gate(job["subject"], job["bound"], job["settings"], job["time_limit"])
    if job["hook"] == "certify":
        return module.certify(job["subject"], job["settings"], job["upper"], job["lower"], job["time_limit"])
    raise ValueError(f"unknown hook {job['hook']!r}")


def worker_env() -> dict[str, str]:
    """The engine's environment, with this checkout importable (workers run as `python -m evolve.<worker>`)."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def killed_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent exits (elsewhere: nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """The engine may be killed outright; a solver call must not keep running without it.

    The engine's pid comes on the command line: it may have died while this process was
    still importing, before anything here could watch it.
    """
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    killed_with_parent()

    def watch() -> None:  # elsewhere (and as a second line): poll; solver calls through ctypes release the GIL
        while True:
            time.sleep(PARENT_POLL)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
