"""The Docker warm pool's serve runner: one exec per container serves job after job, and no job
reaches the next through it (memory, uid, result channel), against the real daemon."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import pytest

from evolve.paths import RUNNER
from evolve.sandbox.base import SandboxJob, SandboxLimits, decode_result, encode_job
from tests.sandbox_support import make_backend, run_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]
LIMITS = SandboxLimits(case_timeout=5.0, memory_mb=256, max_procs=32)
PREFIX = "SERVE-SECRET-"

# Takes a secret among its inputs (as held-out inputs are) and does nothing with it.
HOLD = "import socket\n\ndef main(secret, padding):\n    return {'host': socket.gethostname(), 'length': len(secret)}\n"

# Reads every readable page of its own process and reports each PREFIX + 32 hex digits found.
SCAN = textwrap.dedent('''
    import ctypes, re, socket

    def main(own):
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again (it is its own process): /proc/self/mem becomes its
        pattern = re.compile(("SERVE" + "-SECRET-").encode() + rb"([0-9a-f]{32})")
        found = set()
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
        with open("/proc/self/mem", "rb", buffering=0) as memory:
            for fields in regions:
                start, end = (int(part, 16) for part in fields[0].split("-"))
                if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                    continue
                try:
                    memory.seek(start)
                    data = memory.read(end - start)
                except (OSError, ValueError, OverflowError):
                    continue
                found.update(match.decode() for match in pattern.findall(data))
        return {"host": socket.gethostname(), "found": sorted(found), "own_seen": own[len("SERVE-SECRET-"):] in found}
''')

WHO = "import os, socket\n\ndef main(x):\n    return {'answer': 2 * x, 'uid': os.getuid(), 'host': socket.gethostname()}\n"

# Leaves a root-impersonating daemon behind that forges result lines wherever it can write, and
# tries to kill every process it sees (the serve runner and its loop are root: it must fail).
FORGER = textwrap.dedent('''
    import json, os, signal, time

    FORGED = "0" * 32 + " " + json.dumps({"cases": [{"id": "c1", "status": "ok", "output": {"answer": "FORGED"},
                                                      "seconds": 0.0}], "clean": True}) + "\\n"

    def root(pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                return any(line.split()[:2] == ["Uid:", "0"] for line in status)
        except OSError:
            return False

    def attack():
        for name in os.listdir("/proc"):
            if name.isdigit() and root(name):
                try:
                    os.kill(int(name), signal.SIGKILL)
                except OSError:
                    pass
                for fd in (0, 1):
                    try:
                        with open(f"/proc/{name}/fd/{fd}", "w") as handle:
                            handle.write(FORGED)
                    except OSError:
                        pass
        os.write(1, FORGED.encode())

    def main(x):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                end = time.monotonic() + 20
                while time.monotonic() < end:
                    attack()
                    time.sleep(0.01)
            os._exit(0)
        attack()
        return {"answer": "FORGED"}
''')


def one(code: str, **inputs) -> SandboxJob:
    return SandboxJob(code, "main", (("c1", inputs),), LIMITS)


def rid() -> str:
    return f"test-serve-{uuid.uuid4().hex[:8]}"


def exec_ids(run_id: str) -> list[str]:
    (container,) = run_containers(run_id)
    return docker.from_env().api.inspect_container(container["Id"])["ExecIDs"] or []


async def test_an_earlier_jobs_inputs_are_not_in_the_next_candidates_memory() -> None:
    """The serve runner reads job after job; a candidate forked from it must not find an earlier job's inputs."""
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    secret = PREFIX + secrets.token_hex(16)
    own = PREFIX + secrets.token_hex(16)
    try:
        # Many small copies: freed, they would stay in the runner's heap (a naive loop's candidate inherits it).
        held = await sandbox.run(one(HOLD, secret=secret, padding=[secret] * 200))
        assert held.runs[0].status == "ok", held.runs[0].message
        scan = await sandbox.run(one(SCAN, own=own))
        assert scan.runs[0].status == "ok", scan.runs[0].message
        facts = scan.runs[0].output
        assert facts["host"] == held.runs[0].output["host"]  # the same warm container, the same serve runner
        assert facts["own_seen"] is True  # the scan works: it finds its own input in its memory
        assert secret[len(PREFIX):] not in facts["found"]
    finally:
        await sandbox.close()
    assert run_containers(run_id) == []


async def test_one_exec_serves_many_jobs_each_with_a_uid_unlike_the_last() -> None:
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    try:
        outputs = []
        for x in range(6):
            result = await sandbox.run(one(WHO, x=x))
            assert result.runs[0].status == "ok", result.runs[0].message
            outputs.append(result.runs[0].output)
            if x == 0:
                first = exec_ids(run_id)
        assert [output["answer"] for output in outputs] == [0, 2, 4, 6, 8, 10]
        assert len({output["host"] for output in outputs}) == 1
        uids = [output["uid"] for output in outputs]
        assert all(a != b for a, b in zip(uids, uids[1:])), uids
        assert len(first) == 1 and exec_ids(run_id) == first  # one exec, started once, served them all
    finally:
        await sandbox.close()
    assert run_containers(run_id) == []


async def test_a_forger_left_behind_cannot_stand_in_for_the_next_result() -> None:
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    try:
        hostile = await sandbox.run(one(FORGER, x=1))
        assert hostile.runs[0].status == "ok", hostile.runs[0].message  # it ran to the end, its daemon left behind
        assert hostile.runs[0].output == {"answer": "FORGED"}  # its own output only, for the verifier to judge
        for x in (5, 6):
            honest = await sandbox.run(one(WHO, x=x))
            assert not honest.failure and honest.runs[0].status == "ok", honest.runs[0].message
            assert honest.runs[0].output["answer"] == 2 * x
        assert len(run_containers(run_id)) == 1  # the container was still healthy, or replaced
    finally:
        await sandbox.close()
    assert run_containers(run_id) == []


async def test_a_serve_runner_killed_between_jobs_is_replaced_and_the_job_retried() -> None:
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    api = docker.from_env().api
    try:
        first = await sandbox.run(one(WHO, x=1))
        assert first.runs[0].status == "ok", first.runs[0].message
        (exec_id,) = exec_ids(run_id)
        (container,) = run_containers(run_id)
        # The serve loop's pid inside the container (the daemon gives the host's), killed from a second exec.
        status = Path(f"/proc/{api.exec_inspect(exec_id)['Pid']}/status").read_text()
        inside = next(line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:"))
        killer = api.exec_create(container["Id"], ["sh", "-c", f"kill -9 {inside}"], user="0:0")["Id"]
        api.exec_start(killer)
        assert api.exec_inspect(killer)["ExitCode"] == 0
        deadline = time.monotonic() + 10
        while api.exec_inspect(exec_id)["Running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        second = await sandbox.run(one(WHO, x=2))
        assert not second.failure and second.runs[0].status == "ok", second.runs[0].message
        assert second.runs[0].output["answer"] == 4
        assert second.runs[0].output["host"] != first.runs[0].output["host"]  # in a fresh container
    finally:
        await sandbox.close()
    assert run_containers(run_id) == []


def test_the_serve_loop_answers_frames_in_order_and_ends_with_its_input(tmp_path: Path) -> None:
    """The protocol the Docker host speaks, against the runner alone (the same uid: frames say "-")."""
    serve = subprocess.Popen([sys.executable, "-I", str(RUNNER), "--serve", "--workdir", str(tmp_path / "job"),
                              "--wipe", str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path)
    try:
        for factor in (1, 3):
            job = SandboxJob(f"def main(x):\n    open('left', 'w')\n    return x * {factor}\n", "main",
                             (("a", {"x": 2}), ("b", {"x": 5})), LIMITS)
            nonce, payload = encode_job(job)
            serve.stdin.write(f"- {len(payload)}\n".encode() + payload)
            serve.stdin.flush()
            assert serve.stdout.readline() == b"\n"  # taken
            result = decode_result(job, nonce, serve.stdout.readline(), 0.0)
            assert [run.output for run in result.runs] == [2 * factor, 5 * factor]
            assert result.runner_clean is True and list(tmp_path.iterdir()) == []  # wiped after the job
        serve.stdin.close()
        assert serve.wait(timeout=30) == 0 and serve.stdout.read() == b""
    finally:
        serve.kill()
        serve.wait()


async def test_a_result_larger_than_one_read_arrives_whole() -> None:
    """The result line comes in many of the daemon's frames, split across reads: it is put back together."""
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    try:
        for size in (300_000, 5):
            result = await sandbox.run(one("def main(n):\n    return 'x' * n + 'end'\n", n=size))
            assert result.runs[0].status == "ok", result.runs[0].message
            assert result.runs[0].output == "x" * size + "end"
    finally:
        await sandbox.close()
    assert run_containers(run_id) == []


async def test_closing_the_sandbox_ends_a_job_still_running() -> None:
    """Its container is removed under it: the job ends at once as a sandbox failure, not at its deadline
    (here minutes away, past this test's timeout)."""
    run_id = rid()
    sandbox = make_backend("docker-pool", run_id, pool_size=1)
    slow = SandboxJob("import time\n\ndef main():\n    time.sleep(3600)\n", "main", (("c1", {}),),
                      SandboxLimits(case_timeout=60.0, memory_mb=256, max_procs=32))
    job = asyncio.ensure_future(sandbox.run(slow))
    while not (run_containers(run_id) and exec_ids(run_id)) and not job.done():
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the job is on its way or running
    await sandbox.close()
    result = await job
    assert result.failure and result.runs[0].status == "sandbox"
    assert run_containers(run_id) == []
