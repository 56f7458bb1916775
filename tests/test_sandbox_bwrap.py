"""The bubblewrap backend: what a candidate can see and do inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from evolve.sandbox.base import SandboxJob, SandboxLimits
from evolve.sandbox.bwrap import BwrapSandbox, BwrapUnavailable

pytestmark = [pytest.mark.bwrap, pytest.mark.timeout(60)]
LIMITS = SandboxLimits(case_timeout=5.0, memory_mb=256, max_procs=32)

INSPECT = textwrap.dedent('''
    import os, sys

    def writable(path):
        try:
            with open(path, "w") as handle:
                handle.write("x")
            return True
        except OSError:
            return False

    def importable(name):
        try:
            __import__(name)
            return True
        except Exception:
            return False

    def main(project, **_):
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
        return {
            "uid": os.getuid(), "gid": os.getgid(), "caps": status["CapEff"].strip(), "bounding": status["CapBnd"].strip(),
            "no_new_privs": status["NoNewPrivs"].strip(), "interfaces": interfaces,
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "root": sorted(os.listdir("/")), "project_visible": os.path.exists(project),
            "etc": sorted(os.listdir("/etc")), "cwd": os.getcwd(),
            "scratch_writable": writable("here.txt"), "root_writable": writable("/evolve-probe"),
            "usr_writable": writable("/usr/evolve-probe"), "python_writable": writable(sys.executable),
            "runner_writable": writable("/opt/evolve/runner.py"),
            "engine_importable": importable("evolve.sandbox") or importable("evaluators.geometry"),
        }
''')


SYSTEM_ROOT = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "sbin", "scratch", "usr"}


def mounted_tops(sandbox: BwrapSandbox) -> set[str]:
    """The top folders of the Python installation's mounts: wherever a venv lives, its top folder shows."""
    return {root.strip("/").split("/")[0] for root in sandbox.python_roots}


async def inspect(sandbox: BwrapSandbox) -> dict:
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = await sandbox.run(SandboxJob(INSPECT, "main", (("c1", {"project": project}),), LIMITS))
    run = result.runs[0]
    assert run.status == "ok", run.message
    return run.output


async def test_candidate_is_nobody_in_its_own_namespaces() -> None:
    sandbox = BwrapSandbox(scratch_mb=16)
    facts = await inspect(sandbox)
    if os.geteuid() == 0:  # started by root: dropped to nobody in the host's user namespace
        assert (facts["uid"], facts["gid"]) == (65534, 65534)
    assert facts["caps"] == facts["bounding"] == "0000000000000000" and facts["no_new_privs"] == "1"
    assert facts["interfaces"] == ["lo"]  # nothing but its own loopback
    assert max(facts["pids"]) < 10  # its own PID namespace: the host's processes are invisible
    assert set(facts["root"]) <= SYSTEM_ROOT | mounted_tops(sandbox)
    assert not facts["project_visible"] and "shadow" not in facts["etc"]
    assert not facts["engine_importable"]  # neither the engine nor the verifiers are in reach
    assert facts["cwd"] == "/scratch/job" and facts["scratch_writable"]
    assert not any(facts[key] for key in ("root_writable", "usr_writable", "python_writable", "runner_writable"))


async def test_a_venv_outside_the_usual_places_runs_and_shows_only_itself(tmp_path) -> None:
    """A venv under /tmp, /home or /work: only its own path is mounted, nothing beside it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    sandbox = BwrapSandbox(python=str(venv / "bin" / "python"), scratch_mb=16)
    assert str(venv) in sandbox.python_roots
    facts = await inspect(sandbox)
    assert set(facts["root"]) <= SYSTEM_ROOT | mounted_tops(sandbox)
    assert not facts["project_visible"] and not facts["engine_importable"]
    assert not facts["python_writable"]


def test_identity_names_bwrap_and_python() -> None:
    sandbox = BwrapSandbox()
    assert sandbox.identity.startswith("bwrap-") and f"python-{sys.version.split()[0]}" in sandbox.identity


def test_engine_files_inside_the_python_install_are_hidden(tmp_path, monkeypatch) -> None:
    """A wheel install puts the verifiers and bundled problems in site-packages: they are covered."""
    import evolve.sandbox.bwrap as bwrap_module

    site = tmp_path / "site-packages"
    (site / "evolve").mkdir(parents=True)
    monkeypatch.setattr(bwrap_module, "_python_roots", lambda python: [str(tmp_path)])
    monkeypatch.setattr("evolve.paths.ROOT", site / "evolve" / "_bundled")
    (site / "evolve" / "_bundled").mkdir()
    sandbox = BwrapSandbox()
    assert sandbox.hidden == [str(site / "evolve" / "_bundled")]
    args = sandbox.bwrap_arguments()
    assert args.index("--tmpfs") > args.index(str(tmp_path))  # mounted over the read-only Python


def test_unusable_interpreter_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BwrapUnavailable, match="does not run"):
        BwrapSandbox(python=str(tmp_path / "no-python"))
