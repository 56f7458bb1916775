"""Shared fixtures: short searches on the bundled circle packing problem."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

from tests.postgres_support import PostgresServer

T = TypeVar("T")


@pytest.fixture
def quick(tmp_path: Path) -> list[str]:
    """Overrides for a short, fast search in a fresh run directory (process sandbox)."""
    return [f"run.dir={tmp_path / 'run'}", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=30"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (started on first use, stopped at the end)."""
    try:
        server = PostgresServer()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)  # never a skip: CI installs the server
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'evolve.db'}"
    return str(request.getfixturevalue("postgres_url"))


def query(run_dir: Path, sql: str) -> list[tuple]:
    """Read a run's database directly, as a user's own tooling would (read-only: polling a run that
    is starting must not create its database file)."""
    with sqlite3.connect(f"file:{run_dir / 'evolve.db'}?mode=ro", uri=True) as connection:
        return connection.execute(sql).fetchall()


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    """Poll until `condition()` is truthy and return it; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {seconds} s")
