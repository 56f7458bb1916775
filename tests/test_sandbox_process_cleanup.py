"""The process tier leaves no scratch folder behind, even when its engine is killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from evolve.sandbox.process import ProcessSandbox, scratch_root

ENGINE = textwrap.dedent('''
    import asyncio
    from evolve.sandbox.base import SandboxJob, SandboxLimits
    from evolve.sandbox.process import ProcessSandbox

    SLEEPER = "import time\\n\\ndef main(**_):\\n    time.sleep(3600)\\n"
    asyncio.run(ProcessSandbox().run(SandboxJob(SLEEPER, "main", (("c1", {}),), SandboxLimits(case_timeout=600))))
''')


def owned_by(pid: int) -> list[str]:
    return [entry.name for entry in scratch_root().iterdir() if entry.name.startswith(f"{pid}.")]


def test_a_killed_engines_scratch_is_removed_by_the_next_engine() -> None:
    engine = subprocess.Popen([sys.executable, "-c", ENGINE], start_new_session=True)
    try:
        for _ in range(300):  # the job has started once its scratch folder exists
            if owned_by(engine.pid):
                break
            time.sleep(0.05)
        left = owned_by(engine.pid)
        assert left, "the engine never started its job"
    finally:
        os.killpg(engine.pid, signal.SIGKILL)
        engine.wait()
    assert owned_by(engine.pid) == left  # kill -9: nobody cleaned up the folder ...
    folder = str(scratch_root() / left[0])
    for _ in range(100):  # ... but the job's processes died with their engine
        if not working_in(folder):
            break
        time.sleep(0.1)
    assert working_in(folder) == []
    ProcessSandbox()  # the next engine on this machine
    assert owned_by(engine.pid) == []


def working_in(folder: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.readlink(f"/proc/{name}/cwd").startswith(folder):
                found.append(int(name))
        except OSError:
            continue
    return found
