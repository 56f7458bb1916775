"""Helpers for the sandbox tests: backends by name, a tiny problem, leftover checks."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import docker

from evolve.evaluation import Evaluator
from evolve.config import compose_config
from evolve.problem import Problem, load_problem
from evolve.sandbox.base import SandboxLimits
from evolve.sandbox.bwrap import BwrapSandbox
from evolve.sandbox.docker import RUN_LABEL, DockerSandbox, DockerSettings
from evolve.sandbox.image import build, default_tag, image_id
from evolve.sandbox.process import ProcessSandbox

BACKENDS = ("process", "bwrap", "docker-pool", "docker-fresh")
HOSTILE = Path(__file__).parent / "hostile"
LIMITS = SandboxLimits(case_timeout=2.0, memory_mb=256, max_procs=32, max_output_bytes=1 << 20,
                       max_log_bytes=64 << 10)

VERIFIER = '''
from evolve.problem import Verdict

SECRET = "{secret}"  # a candidate that can read this file would find it


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{{run.status}}: {{run.message}}")
    if run.output != {{"answer": case.private["answer"]}}:
        return Verdict(False, feedback=f"wrong answer: {{str(run.output)[:300]}}")
    return Verdict(True, 1.0, feedback="right")
'''

HONEST = "def main(x, **_):\n    return {'answer': 2 * x}\n"


def ensure_image() -> str:
    """The recipe's image; built here when missing (CI builds it beforehand)."""
    tag = default_tag()
    if image_id(docker.from_env(), tag) is None:
        build(tag, quiet=True)
    return tag


def make_backend(name: str, run_id: str, pool_size: int = 1, recycle_after: int = 50, exec_scratch: bool = False):
    if name == "process":
        return ProcessSandbox()
    if name == "bwrap":
        return BwrapSandbox(scratch_mb=16)
    settings = DockerSettings(image=ensure_image(), pool_size=pool_size, recycle_after=recycle_after,
                              fresh_container=name == "docker-fresh", memory_mb=LIMITS.memory_mb,
                              max_procs=LIMITS.max_procs, scratch_mb=16, exec_scratch=exec_scratch)
    return DockerSandbox(settings, run_id)


def make_problem(directory: Path, case_inputs: list[dict], secret: str) -> Problem:
    """A problem whose answer (2 * x) only the verifier knows; held-out data holds the secret."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "verifier.py").write_text(VERIFIER.format(secret=secret))
    (directory / "seed.py").write_text(HONEST)
    search = [{"id": f"c{i + 1}", "inputs": {"x": 21 + i, **inputs}, "private": {"answer": 2 * (21 + i)}}
              for i, inputs in enumerate(case_inputs)]
    heldout = [{"id": "h1", "inputs": {"x": 7}, "private": {"answer": 14, "label": secret}}]
    (directory / "cases.json").write_text(json.dumps({"search": search, "heldout": heldout}))
    cfg = compose_config([
        "problem.name=hostile", f"problem.seed_program={directory / 'seed.py'}", "problem.prompt=",
        f"problem.cases={directory / 'cases.json'}", f"problem.verifier={directory / 'verifier.py'}",
        "problem.entry=main", f"problem.case_timeout={LIMITS.case_timeout}", "problem.settings={}",
    ])
    return load_problem(cfg)


def evaluator(problem: Problem, sandbox) -> Evaluator:
    return Evaluator(problem, sandbox, LIMITS, "test")


def new_marker() -> str:
    """15 characters: the longest process name Linux keeps."""
    return "evh" + uuid.uuid4().hex[:12]


def marked_processes(marker: str) -> list[int]:
    """Processes whose name or command line carries `marker`, in any namespace."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{name}/comm").read_text().strip()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] == "Z":
            continue  # already dead, waiting to be reaped by its parent
        if comm == marker or marker.encode() in cmdline:
            found.append(int(name))
    return found


def wait_until_gone(marker: str, seconds: float = 10.0) -> list[int]:
    """Leftover processes after a grace period for asynchronous clean-up (container removal)."""
    end = time.monotonic() + seconds
    while (left := marked_processes(marker)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def run_containers(run_id: str) -> list[dict]:
    return docker.from_env().api.containers(all=True, filters={"label": [f"{RUN_LABEL}={run_id}"]})
