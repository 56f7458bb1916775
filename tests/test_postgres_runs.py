"""Runs stored in a real PostgreSQL server (tests/postgres_support.py): `evolve run`, `evolve resume`,
`evolve status` and `evolve best` as a user drives them, with the database named by URL.

A password given in the URL is used but never saved nor printed; later sessions take it from
PGPASSWORD, as libpq does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.slow  # real `evolve` processes against a real server

FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false", "llm=offline"]


def evolve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve", *args], capture_output=True, text=True, timeout=240,
                          env={**os.environ, **(env or {})})


def test_a_run_stored_in_postgresql_resumes_and_reports(postgres_url: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = evolve("run", *FAST, f"run.dir={run_dir}", "budget.evaluations=6", f"database.url={postgres_url}")
    assert started.returncode == 0, started.stderr
    assert not (run_dir / "evolve.db").exists()  # nothing went to the default SQLite file

    resumed = evolve("resume", str(run_dir), "budget.evaluations=10")
    assert resumed.returncode == 0, resumed.stderr
    assert "10 evaluations" in resumed.stdout

    status = evolve("status", str(run_dir), "--json")
    assert status.returncode == 0, status.stderr
    assert '"evaluations": 10' in status.stdout
    best = evolve("best", str(run_dir))
    assert best.returncode == 0, best.stderr
    assert "def " in best.stdout

    # From another machine: no run directory, only the database's URL.
    remote = evolve("status", postgres_url, "--json")
    assert remote.returncode == 0, remote.stderr
    assert '"evaluations": 10' in remote.stdout and '"status": "finished"' in remote.stdout
    assert evolve("best", postgres_url, "--run", "1").stdout == best.stdout
    missing = evolve("best", postgres_url, "--run", "7")
    assert missing.returncode == 2 and "no run with id 7" in missing.stderr
    report = evolve("report", postgres_url, "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    assert "circle_packing" in (tmp_path / "report.html").read_text()


def test_a_password_is_used_but_never_saved_or_printed(postgres_server: PostgresServer, tmp_path: Path) -> None:
    postgres_server.user_with_password("runner", "s3cret-pw")
    database = postgres_server.create_database()
    run_dir = tmp_path / "run"
    url = postgres_server.url_for("runner", database, password="s3cret-pw")

    started = evolve("run", *FAST, f"run.dir={run_dir}", "budget.evaluations=4", f"database.url={url}")
    assert started.returncode == 0, started.stderr
    saved = (run_dir / "config.yaml").read_text()
    assert postgres_server.url_for("runner", database) in saved  # the same database, user and place ...
    assert "s3cret-pw" not in saved + started.stdout + started.stderr  # ... and no password anywhere

    without = evolve("status", str(run_dir), env={"PGPASSWORD": ""})
    assert without.returncode == 2
    assert without.stderr.count("\n") == 1 and "PGPASSWORD" in without.stderr  # one line naming the fix
    assert "s3cret-pw" not in without.stderr

    resumed = evolve("resume", str(run_dir), "budget.evaluations=6", env={"PGPASSWORD": "s3cret-pw"})
    assert resumed.returncode == 0, resumed.stderr
    assert "6 evaluations" in resumed.stdout


def test_an_unreachable_database_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    from tests.postgres_support import free_port

    run_dir = tmp_path / "run"
    url = f"postgresql+psycopg://nobody:hidden-pw@127.0.0.1:{free_port()}/evolve"  # no server listens there
    result = evolve("run", *FAST, f"run.dir={run_dir}", "budget.evaluations=4", f"database.url={url}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot use the database" in result.stderr
    assert "hidden-pw" not in result.stderr and "***" in result.stderr
    assert not (run_dir / "config.yaml").exists()  # the same command works once the server answers


def test_two_machines_cannot_drive_the_same_run(postgres_url: str, tmp_path: Path) -> None:
    """A copy of the run directory elsewhere (another machine) is refused while the run is driven,
    and takes over once the driver is gone, even killed with -9: the server releases its lock."""
    here, there = tmp_path / "here", tmp_path / "there"
    driver = subprocess.Popen([sys.executable, "-m", "evolve", "run", *FAST, f"run.dir={here}",
                               "budget.evaluations=100000", f"database.url={postgres_url}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (here / "run-id").is_file() or driver.poll() is not None, 120, "the run started")
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        there.mkdir()
        for name in ("config.yaml", "run-id"):
            shutil.copy(here / name, there / name)

        refused = evolve("resume", str(there), "budget.evaluations=100000")
        assert refused.returncode == 2
        assert "driven by another evolve process" in refused.stderr and refused.stderr.count("\n") == 1
        assert '"status": "running"' in evolve("status", postgres_url, "--json").stdout
    finally:
        driver.kill()  # -9: no cleanup of its own
        driver.wait()

    def stopped() -> dict:
        report = json.loads(evolve("status", postgres_url, "--json").stdout)
        return report if report["status"] == "stopped" else {}

    spent = wait_for(stopped, 60, "the server released the killed driver's lock")["evaluations"]
    resumed = evolve("resume", str(there), f"budget.evaluations={spent + 2}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{spent + 2} evaluations" in resumed.stdout
