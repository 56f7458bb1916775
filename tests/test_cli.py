"""The `evolve` command as a user runs it: real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import query

EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false"]


def evolve_cmd(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def wait_for_evaluations(db: Path, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as connection:
                    rows = connection.execute("SELECT evaluations FROM runs").fetchall()
                if rows and rows[0][0] >= at_least:
                    return rows[0][0]
            except sqlite3.OperationalError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the run did not reach {at_least} evaluations in {timeout} s")


@pytest.mark.parametrize("args, message", [
    (["run", "budget.evalutions=3"], "unknown config key 'budget.evalutions'"),
    (["run", "problem=nope"], "unknown problem 'nope'"),
    (["resume", "somewhere"], "is not a run directory"),
    (["status", "somewhere"], "is not a run directory"),
])
@pytest.mark.slow
def test_user_errors_are_one_line_with_nonzero_exit_and_write_nothing(tmp_path: Path, args: list[str],
                                                                     message: str) -> None:
    result = evolve_cmd(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_run_status_best_and_a_database_of_another_version(tmp_path: Path) -> None:
    result = evolve_cmd("run", "budget.evaluations=12", "run.dir=r", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(evolve_cmd("status", "r", "--json", cwd=tmp_path).stdout)
    assert status["evaluations"] == 12
    assert {"score", "program_id"} <= set(status["best"]) and status["seed_score"] is not None
    assert len(status["islands"]) == 4 and {"size", "best", "valid_rate", "duplicate_rate"} <= set(status["islands"][0])
    assert evolve_cmd("best", "r", "-o", "best.py", cwd=tmp_path).returncode == 0
    (code,) = query(tmp_path / "r", f"SELECT code FROM programs WHERE id={status['best']['program_id']}")[0]
    assert (tmp_path / "best.py").read_text() == code
    # A run directory already holding a run is not overwritten.
    again = evolve_cmd("run", "run.dir=r", *FAST, cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    # A database written by another schema version is refused, untouched.
    with sqlite3.connect(tmp_path / "r" / "evolve.db") as connection:
        connection.execute("UPDATE evolve_meta SET value='999' WHERE key='schema_version'")
    before = _dump(tmp_path / "r" / "evolve.db")
    refused = evolve_cmd("resume", "r", "budget.evaluations=20", cwd=tmp_path)
    assert refused.returncode == 2 and "schema version 999" in refused.stderr
    assert _dump(tmp_path / "r" / "evolve.db") == before


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    run = subprocess.Popen([*EVOLVE, "run", "budget.evaluations=120", "run.dir=r", *FAST], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = tmp_path / "r" / "evolve.db"
    try:
        wait_for_evaluations(db, 25)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    stored = query(tmp_path / "r", "SELECT evaluations, proposals, rng_state FROM runs")[0]
    programs_at_kill = query(tmp_path / "r", "SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL")[0][0]
    # The counter and the rows were written together: they agree at the moment of the kill.
    assert stored[0] == programs_at_kill and stored[0] < 120
    resumed = evolve_cmd("resume", "r", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = query(tmp_path / "r", "SELECT evaluations, proposals, rng_state FROM runs")[0]
    assert final[0] == 120
    assert final[1] > stored[1] and final[2] != stored[2]
    assert query(tmp_path / "r", "SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL") == [(120,)]
    assert query(tmp_path / "r", "SELECT COUNT(*), COUNT(DISTINCT code_hash) FROM programs") == [(121, 121)]
    assert query(tmp_path / "r", "SELECT COUNT(*) FROM programs WHERE parent_id IS NULL") == [(1,)]
    assert query(tmp_path / "r", "SELECT COUNT(DISTINCT program_id) FROM evaluations WHERE split='search'") == [(121,)]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_nothing_lost(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run = subprocess.Popen([*EVOLVE, "run", "budget.evaluations=100000", "run.dir=r", *FAST], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "TMPDIR": str(scratch)})
    wait_for_evaluations(tmp_path / "r" / "evolve.db", 10)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130, err  # the shell's convention for Ctrl-C
    assert "interrupted" in out and "evolve resume r" in out
    evaluations, status = query(tmp_path / "r", "SELECT evaluations, status FROM runs")[0]
    assert status == "interrupted"
    assert query(tmp_path / "r", "SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL") == [(evaluations,)]
    assert not _processes_inside(scratch)
    assert list((scratch / "evolve-jobs").iterdir()) == []  # every job's scratch directory was removed


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return list(connection.iterdump())


def _processes_inside(directory: Path) -> list[int]:
    """Processes whose working directory is under `directory` (the jobs' scratch)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd").startswith(str(directory)):
                    found.append(int(name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_a_run_in_use_by_another_process_is_not_touched(tmp_path: Path) -> None:
    run = subprocess.Popen([*EVOLVE, "run", "budget.evaluations=100000", "run.dir=r", *FAST], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_evaluations(tmp_path / "r" / "evolve.db", 3)
        for command in (["resume", "r"], ["rescore", "r"]):
            second = evolve_cmd(*command, cwd=tmp_path)
            assert second.returncode == 2
            assert f"in use by another evolve process (pid {run.pid})" in second.stderr
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=30)
    # Once the first process is gone (even killed), the run can be resumed.
    assert evolve_cmd("resume", "r", "budget.evaluations=5", cwd=tmp_path).returncode == 0
