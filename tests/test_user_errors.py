"""Bad input through the real `evolve` command: one line naming what was wrong and what to do, exit 2.

No traceback may reach the terminal; nothing stored is changed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=3"]


def evolve_cmd(*args: str | Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for phrase in phrases:
        assert phrase in lines[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaffolded problem and one finished short run of it."""
    folder = tmp_path_factory.mktemp("errors")
    assert evolve_cmd("new-problem", "demo", "--dir", "problem", cwd=folder).returncode == 0
    done = evolve_cmd("run", "problem=problem/problem.yaml", "run.dir=good", *FAST, cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def problem_without(field: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        text = (here / "problem" / "problem.yaml").read_text()
        (here / "problem" / "problem.yaml").write_text(
            "\n".join(line for line in text.splitlines() if not line.startswith(f"{field}:")) + "\n")
        return ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST]
    return setup


def without_prompt(here: Path) -> list[str]:
    (here / "problem" / "prompt.md").unlink()
    return ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST]


def run_dir_on_a_file(here: Path) -> list[str]:
    (here / "new").write_text("not a folder")
    return ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST]


def run_dir_read_only(here: Path) -> list[str]:
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        return ["run", "problem=problem/problem.yaml", "run.dir=/sys/kernel", *FAST]
    (here / "new").mkdir()
    (here / "new").chmod(0o555)
    return ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST]


def truncated_database(command: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        db = here / "good" / "evolve.db"
        db.write_bytes(db.read_bytes()[:3000])
        return [command, "good"]
    return setup


def garbage_database(command: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        (here / "good" / "evolve.db").write_text("these are not the bytes of a database\n" * 20)
        return [command, "good"]
    return setup


def config_with(text: str, command: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        with open(here / "good" / "config.yaml", "a") as handle:
            handle.write(text)
        return [command, "good"]
    return setup


def best_into_missing_folder(here: Path) -> list[str]:
    return ["best", "good", "-o", "missing/best.py"]


def negative_rate(here: Path) -> list[str]:
    return ["run", "problem=problem/problem.yaml", "run.dir=new", "llm.numeric_rate=-1", *FAST]


CASES = {
    "problem.yaml without verifier": (problem_without("verifier"), ["verifier", "problem.yaml"]),
    "problem.yaml without seed_program": (problem_without("seed_program"), ["seed_program", "problem.yaml"]),
    "missing prompt file": (without_prompt, ["prompt file not found", "prompt.md"]),
    "run.dir on a regular file": (run_dir_on_a_file, ["is a file, not a folder", "run.dir="]),
    "run.dir in a read-only folder": (run_dir_read_only, ["cannot write in the run directory", "run.dir="]),
    **{f"truncated evolve.db for {c}": (truncated_database(c), ["evolve.db", "damaged"])
       for c in ("status", "resume", "best")},
    **{f"garbage evolve.db for {c}": (garbage_database(c), ["evolve.db", "damaged"])
       for c in ("status", "resume", "best")},
    **{f"run config with a YAML error for {c}": (config_with("budget: [\n", c), ["config.yaml", "not valid YAML"])
       for c in ("status", "resume", "best")},
    **{f"run config with a duplicate key for {c}": (config_with("seed: 1\nseed: 2\n", c),
                                                    ["config.yaml", "duplicate key seed"])
       for c in ("status", "resume")},
    "best -o into a missing folder": (best_into_missing_folder, ["missing", "does not exist"]),
    "llm.numeric_rate=-1": (negative_rate, ["llm.numeric_rate", "negative"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_with_exit_2_and_changes_nothing(case: str, base: Path, tmp_path: Path) -> None:
    here = tmp_path / "here"
    shutil.copytree(base, here)
    setup, phrases = CASES[case]
    args = setup(here)
    before = {path: path.read_bytes() for path in here.rglob("*") if path.is_file()}
    done = evolve_cmd(*args, cwd=here)
    assert_one_line_error(done, *phrases)
    after = {path: path.read_bytes() for path in here.rglob("*") if path.is_file() and path.name != "evolve.lock"}
    assert after == {path: data for path, data in before.items() if path.name != "evolve.lock"}


@pytest.mark.slow
def test_a_database_locked_by_another_process_stops_the_run_in_one_line(base: Path, tmp_path: Path) -> None:
    here = tmp_path / "here"
    shutil.copytree(base, here)
    run = subprocess.Popen([*EVOLVE, "run", "problem=problem/problem.yaml", "run.dir=locked", *FAST[:3],
                            "budget.evaluations=1000000"],
                           cwd=here, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        db = here / "locked" / "evolve.db"
        deadline = time.monotonic() + 60
        while not (db.exists() and _evaluations(db) > 2):
            assert time.monotonic() < deadline and run.poll() is None, "the run did not get going"
            time.sleep(0.1)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held past the engine's 30 s busy timeout
        try:
            out, err = run.communicate(timeout=120)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    finally:
        if run.poll() is None:
            run.kill()
    assert "Traceback" not in out + err
    assert run.returncode == 2
    (line,) = err.strip().splitlines()
    assert "locked by another process" in line and "evolve resume locked" in line
    # Everything stored stays usable: the run continues.
    assert evolve_cmd("resume", "locked", "budget.evaluations=" + str(_evaluations(db) + 2), cwd=here).returncode == 0


def _evaluations(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            rows = connection.execute("SELECT evaluations FROM runs").fetchall()
    except sqlite3.OperationalError:
        return 0
    return rows[0][0] if rows else 0


def test_an_unexpected_exception_is_one_line_naming_the_traceback_file(tmp_path: Path) -> None:
    """A bug (here: a command that raises) prints one line; the traceback is in the file it names."""
    script = ("import sys; from evolve.cli import app, command\n"
              "@app.command('explode')\n@command\ndef explode() -> None:\n"
              "    raise KeyError('deep inside')\n"
              "app(prog_name='evolve')\n")
    done = subprocess.run([sys.executable, "-c", script, "explode"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "unexpected KeyError" in line
    (report,) = tmp_path.glob("evolve-crash-*.log")
    assert str(report) in line and "Traceback" in report.read_text() and "deep inside" in report.read_text()
