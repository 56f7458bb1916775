"""The engine on the Docker sandbox: a run scores candidates there and leaves no container behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evolve
from evolve.problem import SANDBOX_PART
from evolve.session import sandbox_label
from tests.conftest import query
from tests.sandbox_support import ensure_image, run_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


def overrides(run_dir: Path, evaluations: int) -> list[str]:
    return [f"run.dir={run_dir}", "sandbox=docker", "run.progress=false", f"budget.evaluations={evaluations}",
            "search.evaluators=2"]


@pytest.mark.slow
def test_a_search_on_docker_scores_candidates_there_and_cleans_up(tmp_path: Path) -> None:
    ensure_image()
    result = evolve.run(overrides(tmp_path / "run", 16))
    assert result.evaluations >= 16 and result.best_score is not None
    # The run's evaluator identity names the Docker image the candidates ran in ...
    (parts,) = query(result.run_dir, "SELECT evaluator_parts FROM runs")[0]
    assert json.loads(parts)[SANDBOX_PART].startswith("docker:")
    # ... and candidates besides the seed came back from it with valid scores, not only failures.
    (scored,) = query(result.run_dir, "SELECT COUNT(DISTINCT program_id) FROM evaluations WHERE valid AND "
                                      "score IS NOT NULL AND program_id != (SELECT seed_program_id FROM runs)")[0]
    assert scored >= 1
    assert run_containers(sandbox_label(result.run_dir)) == []


@pytest.mark.slow
def test_interrupted_search_leaves_no_container(tmp_path: Path) -> None:
    ensure_image()
    run_dir = tmp_path / "run"
    command = [sys.executable, "-c", "from evolve.cli import app; app()", "run", *overrides(run_dir, 100000)]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not run_containers(sandbox_label(run_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run_containers(sandbox_label(run_dir)), "the run never started a sandbox container"
        time.sleep(1.0)
        engine.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = engine.communicate(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert "interrupted" in output, output
    assert run_containers(sandbox_label(run_dir)) == []


@pytest.mark.slow
def test_runs_in_folders_of_the_same_name_keep_their_own_containers(tmp_path: Path) -> None:
    """A/same and B/same: the end of one run removes its own containers, never the other's."""
    import asyncio

    from evolve.config import compose_config
    from evolve.sandbox.base import SandboxJob, SandboxLimits
    from evolve.sandbox.factory import make_sandbox

    ensure_image()
    other = tmp_path / "B" / "same"
    job = SandboxJob("def main(**_):\n    return 1\n", "main", (("c1", {}),), SandboxLimits(case_timeout=5.0))

    async def scenario() -> tuple[int, int, str]:
        sandbox = make_sandbox(compose_config(["sandbox=docker", "search.evaluators=1"]), sandbox_label(other))
        try:
            first = await sandbox.run(job)
            assert first.runs[0].status == "ok", first
            before = len(run_containers(sandbox_label(other)))
            await asyncio.to_thread(evolve.run, overrides(tmp_path / "A" / "same", 3))
            after = len(run_containers(sandbox_label(other)))
            second = await sandbox.run(job)
            return before, after, second.runs[0].status
        finally:
            await sandbox.close()

    before, after, status = asyncio.run(scenario())
    assert before == after == 1 and status == "ok"
    assert sandbox_label(tmp_path / "A" / "same") != sandbox_label(other)
