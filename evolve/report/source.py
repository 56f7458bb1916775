"""A run database opened read-only: from a run directory or a database URL.

The report's and export's queries all live here (every other SQL statement is in evolve/db/):
this source has an engine of its own that cannot write (SQLite mode=ro, a read-only PostgreSQL
transaction), so a report of a live run never takes the run's write lock.
"""

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

from evolve.db.urls import shown
from evolve.db.migrations import OLDEST
from evolve.db.models import SCHEMA_VERSION
from evolve.db.store import StoreError
from evolve.db.urls import engine_for


class SourceError(StoreError):
    """The target is not a readable run database; the message says why and what to do."""


@dataclass(frozen=True)
class RunRow:
    id: int
    problem: str
    status: str
    created: str
    evaluations: int


# `evolve export`: one query per table, each limited to the run; columns in storage order.
_EXPORT_QUERIES = {
    "programs": "SELECT * FROM programs WHERE run_id=:run ORDER BY id",
    "evaluations": "SELECT e.* FROM evaluations e JOIN programs p ON p.id = e.program_id WHERE p.run_id=:run "
                   "ORDER BY e.id",
    "proposals": "SELECT * FROM proposals WHERE run_id=:run ORDER BY id",
    "llm_calls": "SELECT * FROM llm_calls WHERE run_id=:run ORDER BY id",
}
EXPORTED_TABLES = tuple(_EXPORT_QUERIES)


class RunSource:
    """Read-only queries against one run database (which may hold several runs)."""

    def __init__(self, url: str, default_run: int | None = None, label: str = "") -> None:
        self.url = url
        self.default_run = default_run
        self.label = label or shown(url)  # how messages and the report name it: never with a password
        self.engine = _read_only_engine(url)
        self._check()

    def _check(self) -> None:
        try:
            rows = self.query("SELECT value FROM evolve_meta WHERE key='schema_version'")
        except SQLAlchemyError:
            raise SourceError(f"{self.label} is not an evolve database (no evolve_meta table)") from None
        found = rows[0][0] if rows else "none"
        # An older database is read as it is (a report opens it read-only: no migration runs).
        if not (str(found).isdigit() and OLDEST <= int(found) <= SCHEMA_VERSION):
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

    # ------------------------------------------------------------------ what the report reads

    def table_rows(self, table: str, run_id: int):  # type: ignore[no-untyped-def]
        """One of EXPORTED_TABLES, the run's rows only, streamed: (column names, row iterator)."""
        return self.stream(_EXPORT_QUERIES[table], run=run_id)

    def run_fields(self, run_id: int) -> dict[str, Any]:
        (row,) = self.query(
            "SELECT id, problem, status, created, config_yaml, evaluator_hash, evaluator_parts, epoch, seed_program_id, "
            "seed_score, best_program_id, best_score, evaluations, proposals, duplicates, rejected, failures, "
            "wall_seconds, llm_cost FROM runs WHERE id=:run", run=run_id)
        return dict(row._mapping)

    def change_counts(self, run_id: int) -> tuple[Any, ...]:
        """Row counts of every table shown and the run's status, best and epoch: a change to any shows here."""
        return tuple(self.query(
            "SELECT (SELECT COUNT(*) FROM programs WHERE run_id=:run), (SELECT COUNT(*) FROM proposals WHERE run_id=:run), "
            "(SELECT COUNT(*) FROM events WHERE run_id=:run), (SELECT COUNT(*) FROM llm_calls WHERE run_id=:run), "
            "(SELECT COUNT(*) FROM evaluations e JOIN programs p ON p.id = e.program_id WHERE p.run_id=:run), "
            "(SELECT COUNT(*) FROM certificates WHERE run_id=:run), "
            "(SELECT status || '/' || COALESCE(best_program_id, -1) || '/' || epoch FROM runs WHERE id=:run)",
            run=run_id)[0])

    def programs(self, run_id: int) -> list[Any]:
        """(id, parent_id, island, status, score, created) of every program, in storage order."""
        return self.query("SELECT id, parent_id, island, status, score, created FROM programs "
                          "WHERE run_id=:run ORDER BY id", run=run_id)

    def program_detail(self, program_id: int) -> Any:
        """(id, island, edit_kind, proposer, status, code) of one program."""
        (row,) = self.query("SELECT id, island, edit_kind, proposer, status, code FROM programs WHERE id=:id",
                            id=program_id)
        return row

    def events(self, run_id: int) -> list[Any]:
        """(kind, data, created) of every event, in order."""
        return self.query("SELECT kind, data, created FROM events WHERE run_id=:run ORDER BY id", run=run_id)

    def first_epochs(self, run_id: int) -> dict[int, int]:
        """Each program's first epoch (the one it was proposed in)."""
        return {pid: epoch for pid, epoch in self.query(
            "SELECT e.program_id, MIN(e.epoch) FROM evaluations e JOIN programs p ON p.id = e.program_id "
            "WHERE p.run_id=:run AND e.split='search' GROUP BY e.program_id", run=run_id)}

    def valid_search_scores(self, run_id: int, epoch: int) -> list[Any]:
        """(island, score) of every valid search evaluation of the epoch."""
        return self.query(
            "SELECT p.island, e.score FROM evaluations e JOIN programs p ON p.id = e.program_id WHERE p.run_id=:run "
            "AND e.split='search' AND e.valid AND e.epoch=:epoch AND e.score IS NOT NULL", run=run_id, epoch=epoch)

    def proposal_outcomes(self, run_id: int) -> list[str]:
        return [outcome for (outcome,) in self.query(
            "SELECT outcome FROM proposals WHERE run_id=:run ORDER BY id", run=run_id)]

    def candidate_verdicts(self, run_id: int) -> list[Any]:
        """(status, timed out) of every candidate (the seed excluded), in storage order."""
        return self.query(
            "SELECT p.status, MAX(CASE WHEN e.valid THEN 0 WHEN LOWER(e.feedback) LIKE '%time limit%' "
            "OR LOWER(e.feedback) LIKE '%timed out%' OR LOWER(e.feedback) LIKE '%timeout%' THEN 1 ELSE 0 END) "
            "FROM programs p LEFT JOIN evaluations e ON e.program_id = p.id AND e.split = 'search' "
            "WHERE p.run_id=:run AND p.parent_id IS NOT NULL GROUP BY p.id, p.status ORDER BY p.id", run=run_id)

    def llm_by_model(self, run_id: int) -> list[Any]:
        """(model, calls, errors, prompt tokens, completion tokens, cost, mean latency) per model."""
        return self.query(
            "SELECT model, COUNT(*), SUM(CASE WHEN error != '' THEN 1 ELSE 0 END), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cost), AVG(latency) FROM llm_calls WHERE run_id=:run "
            "GROUP BY model ORDER BY model", run=run_id)

    def llm_costs(self, run_id: int) -> list[Any]:
        """(model, cost) of every call, in order."""
        return self.query("SELECT model, cost FROM llm_calls WHERE run_id=:run ORDER BY id", run=run_id)

    def certificates(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in self.query(
            "SELECT id, program_id, epoch, kind, status, bound, bound_float, value_float, lower, width, calls, "
            "seconds, solver, unsound, created FROM certificates WHERE run_id=:run ORDER BY id", run=run_id)]


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
        return engine_for(url, pool_pre_ping=True,
                          connect_args={"options": "-c default_transaction_read_only=on"})
    if "://" not in url:
        raise SourceError(f"{url!r} is neither a run directory nor a database URL (e.g. sqlite:///runs/x/evolve.db)")
    return engine_for(url, pool_pre_ping=True)
