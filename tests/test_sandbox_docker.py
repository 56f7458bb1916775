"""The Docker backend against the real daemon: hardening, warm pool, clean-up, image recipe."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from evolve.cli_sandbox import sandbox_app
from evolve.paths import RUNNER, SANDBOX
from evolve.sandbox.base import SandboxJob, SandboxLimits, decode_result, encode_job
from evolve.sandbox.docker import (
    CANDIDATE_UIDS, LABEL, OWNER_LABEL, RUN_LABEL, RUNNER_CAPABILITIES, DockerSandbox, DockerSettings,
)
from evolve.sandbox.image import RECIPE, ImageError, recipe_hash
from tests.sandbox_support import ensure_image, make_backend, run_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]
LIMITS = SandboxLimits(case_timeout=5.0, memory_mb=256, max_procs=32)

INSPECT = textwrap.dedent('''
    import os, socket

    def main(**_):
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        try:
            open("/etc/evolve-probe", "w")
            root_writable = True
        except OSError:
            root_writable = False
        interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
        return {"uid": os.getuid(), "caps": status["CapEff"].strip(), "bounding": status["CapBnd"].strip(),
                "permitted": status["CapPrm"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                "root_writable": root_writable, "interfaces": interfaces, "cwd": os.getcwd(),
                "host": socket.gethostname()}
''')

MARK_SCRATCH = textwrap.dedent('''
    import os, socket

    def main(**_):
        seen = sorted(os.listdir(".")) + sorted(os.listdir("/scratch")) + sorted(os.listdir("/dev/shm"))
        written = []
        for path in ("left-in-job", "/scratch/left-in-scratch", "/dev/shm/left-in-shm"):
            try:
                open(path, "w").write("x")
                written.append(path)
            except OSError:
                pass
        return {"host": socket.gethostname(), "seen": seen, "written": written, "uid": os.getuid()}
''')

SLEEPER = "import time\n\ndef main(**_):\n    time.sleep(3600)\n"


def job(code: str, limits: SandboxLimits = LIMITS) -> SandboxJob:
    return SandboxJob(code, "main", (("c1", {}),), limits)


def run_id() -> str:
    return f"test-docker-{uuid.uuid4().hex[:8]}"


async def test_container_is_locked_down() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid)
    try:
        result = await sandbox.run(job(INSPECT))
        facts = result.runs[0].output
        assert result.runs[0].status == "ok", result.runs[0].message
        assert CANDIDATE_UIDS[0] <= facts["uid"] < CANDIDATE_UIDS[1] and facts["no_new_privs"] == "1"
        assert facts["caps"] == facts["permitted"] == facts["bounding"] == "0000000000000000"
        assert facts["root_writable"] is False and facts["interfaces"] == ["lo"]
        assert facts["cwd"] == "/scratch/job"
        (container,) = run_containers(rid)  # the warm container waits for the next job
        attrs = docker.from_env().api.inspect_container(container["Id"])
        host = attrs["HostConfig"]
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "none"
        assert sorted(host["CapAdd"]) == sorted(RUNNER_CAPABILITIES)  # the runner's, never the candidate's
        assert host["LogConfig"]["Type"] == "none"  # nothing a candidate prints reaches the host's disk
        assert "no-new-privileges" in host["SecurityOpt"] and host["PidsLimit"] == 32 + 16
        assert host["Memory"] > 0 and host["Memory"] == host["MemorySwap"] and host["NanoCpus"] == 10**9
        assert "/scratch" in host["Tmpfs"] and "noexec" in host["Tmpfs"]["/scratch"]
        assert attrs["Config"]["User"] == "0:0" and attrs["Config"]["Labels"][RUN_LABEL] == rid
    finally:
        await sandbox.close()
    assert run_containers(rid) == []


@pytest.mark.slow
async def test_warm_pool_reuses_wipes_and_recycles() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid, pool_size=1, recycle_after=3)
    try:
        outputs = [(await sandbox.run(job(MARK_SCRATCH))).runs[0].output for _ in range(4)]
        hosts = [output["host"] for output in outputs]
        assert hosts[0] == hosts[1] == hosts[2] != hosts[3]  # reused, then replaced after 3 jobs
        # Every job starts with a wiped scratch: only the runner's own files are there.
        assert [output["seen"] for output in outputs] == [["candidate.err", "candidate.out", "candidate.py", "job"]] * 4
        # The candidate writes only its job folder and /dev/shm (both wiped), never the scratch's root.
        assert all(output["written"] == ["left-in-job", "/dev/shm/left-in-shm"] for output in outputs)
        assert len({output["uid"] for output in outputs[:3]}) == 3  # a uid of its own for each job
        timed_out = await sandbox.run(job(SLEEPER, SandboxLimits(case_timeout=0.5, memory_mb=256, max_procs=32)))
        assert timed_out.runs[0].status == "timeout"
        after = (await sandbox.run(job(MARK_SCRATCH))).runs[0].output
        # A timed-out job's container is swept, not thrown away: it is reused clean.
        assert after["host"] == hosts[3] and after["seen"] == outputs[0]["seen"]
        assert len(run_containers(rid)) <= 1
    finally:
        await sandbox.close()
    assert run_containers(rid) == []


@pytest.mark.slow
async def test_pool_serves_concurrent_jobs_within_its_size() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid, pool_size=2)
    try:
        results = await asyncio.gather(*(sandbox.run(job(INSPECT)) for _ in range(6)))
        assert all(result.runs[0].status == "ok" for result in results)
        assert len({result.runs[0].output["host"] for result in results}) <= 2
        assert len(run_containers(rid)) <= 2
    finally:
        await sandbox.close()
    assert run_containers(rid) == []


async def test_cancelled_job_and_close_leave_no_container() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid)
    task = asyncio.ensure_future(sandbox.run(job(SLEEPER)))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if run_containers(rid):
            break
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sandbox.close()
    assert run_containers(rid) == []
    closed = await sandbox.run(job(INSPECT))
    assert closed.failure and "closed" in closed.failure


def test_killed_engine_leaves_no_container(tmp_path: Path) -> None:
    """SIGKILL gives the engine no chance to clean up: the containers must go by themselves."""
    rid = run_id()
    script = tmp_path / "engine.py"
    script.write_text(textwrap.dedent(f'''
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from tests.sandbox_support import make_backend
        from evolve.sandbox.base import SandboxJob, SandboxLimits

        async def main():
            sandbox = make_backend("docker-pool", {rid!r}, pool_size=2)
            limits = SandboxLimits(case_timeout=60, memory_mb=256, max_procs=32)
            code = "import time\\ndef main(**_):\\n    time.sleep(3600)\\n"
            job = SandboxJob(code, "main", (("c1", {{}}),), limits)
            await asyncio.gather(sandbox.run(job), sandbox.run(job))

        asyncio.run(main())
    '''))
    engine = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        while len(run_containers(rid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(run_containers(rid)) == 2
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    deadline = time.monotonic() + 20
    while run_containers(rid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run_containers(rid) == []


def test_orphans_of_a_dead_engine_are_removed_at_start() -> None:
    client = docker.from_env()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = client.containers.create(
        ensure_image(), ["sleep", "3600"], detach=True, network_mode="none",
        labels={LABEL: "1", RUN_LABEL: "crashed-run", OWNER_LABEL: f"{os.uname().nodename}:{dead.pid}:1"},
    )
    orphan.start()
    rid = run_id()
    sandbox = make_backend("docker-pool", rid)  # starting a sandbox clears what crashed runs left
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(orphan.id)
    finally:
        asyncio.run(sandbox.close())
        try:
            orphan.remove(force=True)
        except docker.errors.NotFound:
            pass


def test_missing_image_is_a_clear_error() -> None:
    with pytest.raises(ImageError, match="not found; build it with `evolve sandbox build`"):
        DockerSandbox(DockerSettings(image="evolve-sandbox:no-such-tag"), run_id())


def test_image_tag_follows_the_recipe(tmp_path: Path) -> None:
    for name in RECIPE:
        shutil.copy(SANDBOX / name, tmp_path / name)
    assert recipe_hash(tmp_path) == recipe_hash()
    with open(tmp_path / "packages.txt", "a") as handle:
        handle.write("python3-scipy\n")
    assert recipe_hash(tmp_path) != recipe_hash()


def test_check_command_reports_daemon_image_and_trial_run() -> None:
    ensure_image()
    result = CliRunner().invoke(sandbox_app, ["check", "sandbox=docker"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "docker: daemon" in result.output and "image: evolve-sandbox:" in result.output
    assert "trial run on docker: ok" in result.output


def test_build_command_refuses_an_unknown_method() -> None:
    result = CliRunner().invoke(sandbox_app, ["build", "--method", "podman"])
    assert result.exit_code == 2 and "unknown --method 'podman'" in result.output


async def test_a_container_that_died_while_idle_is_replaced() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid)
    try:
        first = await sandbox.run(job(INSPECT))
        (container,) = run_containers(rid)
        docker.from_env().api.kill(container["Id"])  # e.g. the OOM killer, or the daemon restarting it
        second = await sandbox.run(job(INSPECT))
        assert second.runs[0].status == "ok", second.runs[0].message
        assert second.runs[0].output["host"] != first.runs[0].output["host"]
    finally:
        await sandbox.close()
    assert run_containers(rid) == []


@pytest.mark.parametrize("leave_unwipeable", [False, True])
def test_the_runners_result_line_says_whether_it_cleaned_up(leave_unwipeable: bool, tmp_path: Path) -> None:
    """The warm pool reuses a container on the runner's word in its nonce'd line, not on an exit status."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "left-by-an-earlier-job").write_text("x")
    # A wipe target that is no directory cannot be emptied: the runner must say so.
    target = tmp_path / "not-a-directory" if leave_unwipeable else scratch
    if leave_unwipeable:
        target.write_text("x")
    one = job("def main(**_):\n    return 1\n")
    nonce, payload = encode_job(one)
    done = subprocess.run([sys.executable, "-I", str(RUNNER), "--workdir", str(tmp_path / "job"), "--wipe", str(target)],
                          input=payload, capture_output=True, timeout=60, cwd=tmp_path)
    result = decode_result(one, nonce, done.stdout, 0.0)
    assert result.runs[0].status == "ok", result.runs[0].message
    assert result.runner_clean is (not leave_unwipeable)
    assert done.returncode == (3 if leave_unwipeable else 0)  # the exit status, for hosts that read it, agrees
    if not leave_unwipeable:
        assert list(scratch.iterdir()) == []


async def test_a_pooled_job_carries_the_runners_clean_up_report() -> None:
    rid = run_id()
    sandbox = make_backend("docker-pool", rid)
    try:
        first = await sandbox.run(job(MARK_SCRATCH))
        second = await sandbox.run(job(MARK_SCRATCH))
        assert first.runner_clean is True and second.runner_clean is True
        assert second.runs[0].output["host"] == first.runs[0].output["host"]  # so the container was reused
        assert first.runs[0].output["written"]  # the first left files behind ...
        assert not {"left-in-job", "left-in-scratch", "left-in-shm"} & set(second.runs[0].output["seen"])  # ... gone
    finally:
        await sandbox.close()
    assert run_containers(rid) == []

