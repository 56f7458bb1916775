"""What a run tells its user: progress in a log, the next step, alarms, whether it is still running."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolve.cli import RESUME_EXAMPLE
from tests.conftest import query, wait_for
from tests.fake_llm import tiny_problem

EVOLVE = [sys.executable, "-m", "evolve"]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
QUIET = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false"]


def evolve_cmd(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def evaluations(run_dir: Path) -> int:
    try:
        rows = query(run_dir, "SELECT evaluations FROM runs")
    except sqlite3.OperationalError:
        return 0
    return rows[0][0] if rows else 0


@pytest.mark.slow
def test_redirected_output_gets_plain_progress_lines_and_the_summary_a_next_step(tmp_path: Path) -> None:
    problem = tiny_problem(tmp_path / "tiny", sleep=0.05)
    done = evolve_cmd("run", *problem, "sandbox=process", "sandbox.allow_root=true", "run.dir=r", "budget.evaluations=40",
                      "run.progress=true", "run.progress_interval=0.1", cwd=tmp_path)  # stdout is a pipe here
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\] evaluations \d+/40,", line)]
    assert len(progress) >= 2, done.stdout
    counts = [int(re.search(r"evaluations (\d+)/", line).group(1)) for line in progress]  # type: ignore[union-attr]
    assert counts == sorted(counts)
    assert "\x1b[" not in done.stdout  # no terminal control codes in a log
    assert "next: `evolve best r -o best.py`" in done.stdout


@pytest.mark.slow
def test_the_summary_mentions_a_held_out_alarm_that_fired(tmp_path: Path) -> None:
    done = evolve_cmd("run", f"problem={FIXTURES / 'shortcut/problem.yaml'}", *QUIET, "run.dir=r",
                      "budget.evaluations=60", "search.islands=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    fired = query(tmp_path / "r", "SELECT COUNT(*) FROM events WHERE kind='heldout_divergence'")[0][0]
    assert fired > 0
    assert f"{fired} held-out alarm(s) fired" in done.stdout and "evolve status r" in done.stdout


@pytest.mark.slow
def test_after_kill_9_status_says_the_run_is_not_running(tmp_path: Path) -> None:
    problem = tiny_problem(tmp_path / "tiny", sleep=0.02)
    run = subprocess.Popen([*EVOLVE, "run", *problem, *QUIET, "run.dir=r", "budget.evaluations=100000"],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: evaluations(tmp_path / "r") >= 3, 60, "the run did not get going")
        live = json.loads(evolve_cmd("status", "r", "--json", cwd=tmp_path).stdout)
        assert live["status"] == "running" and str(run.pid) in live["reason"]
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    after = evolve_cmd("status", "r", "--json", cwd=tmp_path)
    report = json.loads(after.stdout)
    assert report["status"] == "stopped" and "not running" in report["reason"]
    assert "evolve resume r" in report["reason"]
    assert "stopped (not running" in evolve_cmd("status", "r", cwd=tmp_path).stdout


@pytest.mark.slow
def test_resume_help_example_is_accepted_by_resume(tmp_path: Path) -> None:
    problem = tiny_problem(tmp_path / "tiny")
    assert evolve_cmd("run", *problem, *QUIET, "run.dir=r", "budget.evaluations=3", cwd=tmp_path).returncode == 0
    shown = " ".join(evolve_cmd("resume", "--help", cwd=tmp_path).stdout.split())
    example = RESUME_EXAMPLE.replace("budget.evaluations=1000", "budget.evaluations=5").split()
    assert all(override.split("=")[0] in shown for override in example)
    resumed = evolve_cmd("resume", "r", *example, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert evaluations(tmp_path / "r") == 5


@pytest.mark.slow
def test_a_verifier_edit_refusal_names_rescore_and_status_compares_within_an_epoch(tmp_path: Path) -> None:
    problem = tiny_problem(tmp_path / "tiny")
    assert evolve_cmd("run", *problem, *QUIET, "run.dir=r", "budget.evaluations=30", cwd=tmp_path).returncode == 0
    # The new verifier scores everything 1000 times lower: compared with its parent's old-epoch
    # score, no child of the new epoch would ever count as an improvement.
    verifier = tmp_path / "tiny" / "verifier.py"
    verifier.write_text(verifier.read_text().replace("Verdict(True, -distance,", "Verdict(True, -distance * 1000,"))
    refused = evolve_cmd("resume", "r", "budget.evaluations=60", cwd=tmp_path)
    assert refused.returncode == 2 and "evolve rescore r" in refused.stderr
    assert evolve_cmd("rescore", "r", cwd=tmp_path).returncode == 0
    resumed = evolve_cmd("resume", "r", "budget.evaluations=60", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(evolve_cmd("status", "r", "--json", cwd=tmp_path).stdout)
    assert sum(island["improvements"] for island in report["islands"]) == improvements_within_epochs(tmp_path / "r")


def improvements_within_epochs(run_dir: Path) -> int:
    """Children whose first search score beats their parent's score by the same evaluator (same epoch)."""
    scores: dict[tuple[int, int], float | None] = {}
    first: dict[int, tuple[int, float | None]] = {}
    for program_id, epoch, valid, score in query(
            run_dir, "SELECT program_id, epoch, valid, score FROM evaluations WHERE split='search' ORDER BY id"):
        scores.setdefault((program_id, epoch), score if valid else None)
        first.setdefault(program_id, (epoch, score if valid else None))
    count = 0
    for program_id, parent_id in query(run_dir, "SELECT id, parent_id FROM programs WHERE parent_id IS NOT NULL"):
        epoch, score = first[program_id]
        parent = scores.get((parent_id, epoch))
        count += score is not None and parent is not None and score > parent
    assert any(epoch == 1 for epoch, _ in first.values())  # the check covers children of the new epoch
    return count
