"""Bad input through the real `evolve` command: one line naming what was wrong and what to do, exit 2.

No traceback may reach the terminal; nothing stored is changed.
"""

from __future__ import annotations

import importlib
import inspect
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


def run_with(*overrides: str) -> Callable[[Path], list[str]]:
    return lambda here: ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST, *overrides]


def problem_field(field: str, value: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        path = here / "problem" / "problem.yaml"
        lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{field}:")]
        path.write_text("\n".join([*lines, f"{field}: {value}"]) + "\n")
        return ["run", "problem=problem/problem.yaml", "run.dir=new", *FAST]
    return setup


def garbled_run_id(command: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        (here / "good" / "run-id").write_text("garbage\n")
        return [command, "good"]
    return setup


def output_on_a_file(command: str, output: str) -> Callable[[Path], list[str]]:
    def setup(here: Path) -> list[str]:
        (here / "afile").write_text("a file, not a folder\n")
        return [command, "good", "-o", output]
    return setup


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
    "budget.wall_time=-1": (run_with("budget.wall_time=-1"), ["budget.wall_time", "negative"]),
    "llm.kind=foo": (run_with("llm.kind=foo"), ["llm.kind 'foo'", "'offline' or 'openai'"]),
    "database.url not a URL": (run_with("database.url=nonsense"), ["'nonsense' is not a database URL", "sqlite:///"]),
    "database.url of an unknown kind": (run_with("database.url=nosuchdb://host/x"),
                                        ["unknown kind of database 'nosuchdb'", "sqlite:///"]),
    "database.url without its driver": (run_with("database.url=mysql://me:secret@host/x"),
                                        ["needs the Python driver", "me:***@host", "sqlite:///"]),
    "problem.yaml cases: a list": (problem_field("cases", "[1, 2]"), ["problem.yaml", "cases must be a file path"]),
    "problem.yaml settings: a list": (problem_field("settings", "[1]"), ["problem.yaml", "settings:"]),
    "problem.yaml case_timeout: a word": (problem_field("case_timeout", "soon"),
                                          ["problem.yaml", "case_timeout:", "'soon'"]),
    **{f"garbled run-id file for {c}": (garbled_run_id(c), ["run-id holds 'garbage'", "delete it"])
       for c in ("status", "resume", "best", "report", "export")},
    "export -o a file": (output_on_a_file("export", "afile"), ["cannot write afile", "another -o path"]),
    "export -o inside a file": (output_on_a_file("export", "afile/export"), ["cannot write afile/export", "-o path"]),
    "report -o inside a file": (output_on_a_file("report", "afile/report.html"),
                                ["cannot write afile/report.html", "another -o path"]),
    "report -o a folder": (lambda here: ["report", "good", "-o", "problem"], ["cannot write problem", "folder"]),
    "export from a URL of no known database": (lambda here: ["export", "nonsense://x"],
                                                ["unknown kind of database 'nonsense'", "sqlite:///"]),
    "ui on a port out of range": (lambda here: ["ui", "good", "--port", "99999"], ["--port 99999 is not a port"]),
}


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_every_error_class_of_the_package_derives_from_evolve_error() -> None:
    """The CLI's exit 2 and a library caller's `except evolve.EvolveError` rest on this: a new error class
    that forgets the base fails here. Private classes (a leading underscore) never leave their module."""
    import evolve
    from evolve.errors import EvolveError

    assert evolve.EvolveError is EvolveError and "EvolveError" in evolve.__all__
    found, strays = set(), []
    package = Path(evolve.__file__).parent
    for path in sorted(package.rglob("*.py")):  # by file: evolve/db is a namespace package pkgutil would skip
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__main__" or "scaffold_templates" in parts:  # runs the CLI; templates, not modules
            continue
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
                    and not name.startswith("_")):
                found.add(value)
                if not issubclass(value, EvolveError):
                    strays.append(f"{module.__name__}.{name}")
    assert strays == []
    # The walk really sees the package: the errors the CLI used to list by hand are among those found.
    from evolve.config import ConfigError
    from evolve.db.store import StoreError
    from evolve.problem import ProblemError
    from evolve.runlock import RunLocked
    from evolve.sandbox.errors import SandboxUnavailable
    from evolve.session import RunError
    assert {ConfigError, ProblemError, RunError, StoreError, SandboxUnavailable, RunLocked} <= found
    assert len(found) > 20


def test_a_library_caller_catches_bad_input_as_evolve_error(tmp_path: Path) -> None:
    import evolve

    with pytest.raises(evolve.EvolveError, match="unknown config key 'nokey'"):
        evolve.compose(["nokey=1"])
    with pytest.raises(evolve.EvolveError, match="not a run directory"):
        evolve.resume(tmp_path)
