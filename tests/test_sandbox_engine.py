"""The engine on the Docker sandbox: a run scores candidates there and leaves no container behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evolve
from tests.sandbox_support import ensure_image, run_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


def overrides(run_dir: Path, evaluations: int) -> list[str]:
    return [f"run.dir={run_dir}", "sandbox=docker", "run.progress=false", f"budget.evaluations={evaluations}",
            "search.evaluators=2"]


def test_a_search_on_docker_improves_and_cleans_up(tmp_path: Path) -> None:
    ensure_image()
    result = evolve.run(overrides(tmp_path / "run", 16))
    assert result.evaluations >= 16 and result.best_score is not None
    assert result.best_score >= result.seed_score
    assert run_containers(result.run_dir.name) == []


def test_interrupted_search_leaves_no_container(tmp_path: Path) -> None:
    ensure_image()
    run_dir = tmp_path / "run"
    command = [sys.executable, "-c", "from evolve.cli import app; app()", "run", *overrides(run_dir, 100000)]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not run_containers(run_dir.name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run_containers(run_dir.name), "the run never started a sandbox container"
        time.sleep(1.0)
        engine.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = engine.communicate(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert "interrupted" in output, output
    assert run_containers(run_dir.name) == []
