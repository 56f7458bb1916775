"""A run database opened read-only: from a run directory or a database URL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from evolve.db.models import SCHEMA_VERSION, UPGRADABLE_VERSIONS
from evolve.db.store import StoreError


class SourceError(StoreError):
    """The target is not a readable run database; the message says why and what to do."""


@dataclass(frozen=True)
class RunRow:
    id: int
    problem: str
    status: str
    created: str
    evaluations: int


class RunSource:
    """Read-only queries against one run database (which may hold several runs)."""

    def __init__(self, url: str, default_run: int | None = None, label: str = "") -> None:
        self.url = url
        self.default_run = default_run
        self.label = label or url
        self.engine = _read_only_engine(url)
        self._check()

    def _check(self) -> None:
        try:
            rows = self.query("SELECT value FROM evolve_meta WHERE key='schema_version'")
        except SQLAlchemyError:
            raise SourceError(f"{self.label} is not an evolve database (no evolve_meta table)") from None
        found = rows[0][0] if rows else "none"
        if found != str(SCHEMA_VERSION) and found not in UPGRADABLE_VERSIONS:
            raise SourceError(f"{self.label} has schema version {found}, this evolve reads {SCHEMA_VERSION}; "
                              "use the evolve release that created it")

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def stream(self, sql: str, chunk: int = 5000, **params: Any):  # type: ignore[no-untyped-def]
        """(column names, an iterator of row tuples) without loading the whole table."""
        connection = self.engine.connect()
        result = connection.execution_options(stream_results=True).execute(text(sql), params)
        columns = list(result.keys())

        def rows():  # type: ignore[no-untyped-def]
            try:
                while batch := result.fetchmany(chunk):
                    yield from batch
            finally:
                connection.close()

        return columns, rows()

    def runs(self) -> list[RunRow]:
        return [RunRow(int(i), p, s, str(c)[:19], int(e)) for i, p, s, c, e in self.query(
            "SELECT id, problem, status, created, evaluations FROM runs ORDER BY id")]

    def run_id(self, wanted: int | None = None) -> int:
        """The run to show: the one asked for, else the run directory's own, else the first."""
        ids = [run.id for run in self.runs()]
        if not ids:
            raise SourceError(f"{self.label} holds no run yet")
        chosen = wanted if wanted is not None else self.default_run if self.default_run is not None else ids[0]
        if chosen not in ids:
            raise SourceError(f"{self.label} holds no run with id {chosen} (runs: {', '.join(map(str, ids))})")
        return chosen

    def close(self) -> None:
        self.engine.dispose()


def open_source(target: str | Path) -> RunSource:
    """A run directory (its config names the database) or a database URL such as sqlite:///runs.db."""
    text_target = str(target)
    if "://" in text_target:
        return RunSource(text_target)
    run_dir = Path(target)
    from evolve.session import RunError, database_url, saved_config, stored_run_id

    try:
        cfg = saved_config(run_dir)
    except RunError as error:
        raise SourceError(str(error)) from None
    return RunSource(database_url(cfg, run_dir), stored_run_id(run_dir), label=str(run_dir))


def _read_only_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).resolve()
        if not path.is_file():
            raise SourceError(f"no database at {path}")
        # mode=ro: this process cannot write, whatever a query says; WAL readers still see live commits.
        uri = f"file:{quote(str(path))}?mode=ro"
        return create_engine("sqlite://", poolclass=NullPool, creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False,
                                                                          timeout=30))
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True,
                             connect_args={"options": "-c default_transaction_read_only=on"})
    if "://" not in url:
        raise SourceError(f"{url!r} is neither a run directory nor a database URL (e.g. sqlite:///runs/x/evolve.db)")
    return create_engine(url, pool_pre_ping=True)
