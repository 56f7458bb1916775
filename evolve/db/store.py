"""The program database: every write the engine makes, each in one transaction.

The engine calls these methods from a single worker thread (they block);
each result is stored together with the run's counters and RNG state, so the
database is consistent at every instant and `kill -9` loses nothing that was
complete. The rows come from evolve/db/rows.py; the summaries `evolve status`
reads are in evolve/db/reads.py. No module outside evolve/db/ writes SQL
(tests/test_sql_in_store.py), apart from the report's read-only source.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Table, bindparam, event, insert, inspect, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlmodel import Session, SQLModel, select

from evolve.db.migrations import OLDEST, migrate
from evolve.db.models import (
    SCHEMA_VERSION,
    Certificate,
    Evaluation,
    Event,
    IslandMember,
    LLMCall,
    Meta,
    Program,
    Proposal,
    Remeasurement,
    Run,
    utcnow,
)
from evolve.db.reads import RunReads
from evolve.db.records import PendingChallenge
from evolve.db.rows import Row
from evolve.db import locks
from evolve.db.one_statement import OneStatement
from evolve.db.urls import engine_for, is_sqlite, shown
from evolve.errors import EvolveError


def stamped(row: Row, **extra: Any) -> Row:
    """A row with its creation time (Core inserts do not run the models' default factories)."""
    return {"created": utcnow(), **row, **extra}


def _event(run_id: int, kind: str, data: dict[str, Any]) -> Row:
    return stamped({"run_id": run_id, "kind": kind, "data": json.dumps(data)})


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


# Statements built once: executing them with parameter dicts reuses SQLAlchemy's compiled form.
_INSERT = {model: insert(_table(model))
           for model in (Program, Evaluation, Proposal, LLMCall, IslandMember, Certificate, Remeasurement)}
_UPDATE_RUN = update(_table(Run)).where(_table(Run).c.id == bindparam("run"))


class StoreError(EvolveError, RuntimeError):
    """The database cannot be used; the message says why."""


BUSY_TIMEOUT = 30  # seconds a write waits for another process's lock on an SQLite database


def database_error(error: DBAPIError, url: str) -> StoreError:
    """One line for a database the driver refused: unreachable, locked by someone else, or damaged."""
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    if not is_sqlite(url) and isinstance(error, OperationalError):
        return StoreError(f"cannot use the database {shown(url)} ({detail}); check that the server runs and the "
                          "URL's host, port, user and database name, and give a password in PGPASSWORD or ~/.pgpass")
    url = shown(url)  # a file path for SQLite; never a password
    if "locked" in detail or "busy" in detail:
        return StoreError(f"the database {url} stayed locked by another process for over {BUSY_TIMEOUT} s "
                          f"({detail}); close whatever holds it (an open sqlite3 shell, a copy in progress)")
    return StoreError(f"the database {url} cannot be read ({detail}): it is damaged or not an evolve database; "
                      "restore it from a copy, or start a new run")


def sqlite_url(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / 'evolve.db'}"


class Store(RunReads):
    """The SQL implementation of the store seam (evolve/seams.py): SQLite or PostgreSQL by URL."""

    def __init__(self, url: str, create: bool) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._held: Connection | None = None  # the connection holding the run's lock on a server
        # On a server a result is one statement (evolve/db/one_statement.py), atomic without BEGIN/COMMIT.
        self._autocommit = None if is_sqlite(url) else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._one_statement = OneStatement()
        try:
            if create:
                SQLModel.metadata.create_all(self.engine)
                with Session(self.engine) as session:
                    if session.get(Meta, "schema_version") is None:
                        session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                        session.commit()
            self._check_version()
        except DBAPIError as error:
            self.engine.dispose()
            raise database_error(error, url) from None

    def _check_version(self) -> None:
        if not inspect(self.engine).has_table("evolve_meta"):
            raise StoreError(f"{shown(self.url)} is not an evolve database (no evolve_meta table)")
        with Session(self.engine) as session:
            row = session.get(Meta, "schema_version")
        found = int(row.value) if row is not None and row.value.isdigit() else None
        if found is not None and OLDEST <= found < SCHEMA_VERSION:
            migrate(self.engine, found)  # versioned steps, in order (evolve/db/migrations.py)
            return
        if found != SCHEMA_VERSION:
            shown_version = row.value if row else "none"
            raise StoreError(
                f"database schema version {shown_version} does not match this evolve's version {SCHEMA_VERSION}; "
                "use the evolve release that created it"
            )

    def close(self) -> None:
        if self._held is not None:
            locks.release(self._held)
            self._held = None
        self.engine.dispose()

    def hold_run(self, run_id: int) -> None:
        """Hold the run until close() (on PostgreSQL: an advisory lock, so no other machine drives it);
        RunLocked if another process holds it."""
        if self._held is None:
            self._held = locks.take(self.engine, run_id, shown(self.url))

    def run_holder(self, run_id: int) -> str | None:
        """Who drives the run now ("" if nobody), or None where the database cannot tell (SQLite)."""
        return locks.holder(self.engine, run_id) if locks.holds_locks(self.engine) else None

    # ------------------------------------------------------------------ runs

    def create_run(self, run: Run) -> Run:
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(run)
            session.commit()
            session.refresh(run)
            return run

    def load_run(self, run_id: int | None = None) -> Run:
        """The run with this id (several runs may share one database), else the first one."""
        with Session(self.engine, expire_on_commit=False) as session:
            if run_id is None:
                run = session.exec(select(Run).order_by(Run.id)).first()  # type: ignore[arg-type]
            else:
                run = session.get(Run, run_id)
        if run is None:
            raise StoreError(f"{shown(self.url)} holds no run" + (f" with id {run_id}" if run_id is not None else ""))
        return run

    def save_run(self, run_id: int, **fields: Any) -> None:
        with Session(self.engine) as session:
            session.exec(update(Run).where(Run.id == run_id).values(**fields))  # type: ignore[call-overload]
            session.commit()

    # ------------------------------------------------------------------ results
    # The hot path uses SQLAlchemy Core with plain dict rows: one short transaction per
    # result, no ORM unit of work (see bench/engine_overhead.py).

    def store_result(
        self,
        run_state: Row,
        program: Row,
        evaluation: Row,
        proposal: Row | None,
        calls: Iterable[Row] = (),
        members: Iterable[Row] = (),
        point_here: tuple[str, ...] = (),
        challenge: Row | None = None,
    ) -> int:
        """One evaluated program, its proposal and calls, and the run's new state, atomically.

        `point_here` names run fields (best_program_id, seed_program_id) set to the new program's id;
        `challenge` is the pending certificate row of a program queued for certification.
        """
        if self._autocommit is not None:
            statement, parameters = self._one_statement.result(
                run_state, stamped(program), stamped(evaluation), None if proposal is None else stamped(proposal),
                [stamped(call) for call in calls], members, point_here, None if challenge is None else stamped(challenge))
            with self._autocommit.connect() as connection:
                return int(connection.execute(statement, parameters).scalar_one())
        with self.engine.begin() as connection:
            program_id = connection.execute(_INSERT[Program], stamped(program)).inserted_primary_key[0]
            connection.execute(_INSERT[Evaluation], stamped(evaluation, program_id=program_id))
            if proposal is not None:
                self._insert_proposal(connection, stamped(proposal, program_id=program_id), calls)
            rows = [{**member, "program_id": program_id} for member in members]
            if rows:
                connection.execute(_INSERT[IslandMember], rows)
            if challenge is not None:
                connection.execute(_INSERT[Certificate], stamped(challenge, program_id=program_id))
            state = {**run_state, **{name: program_id for name in point_here}}
            connection.execute(_UPDATE_RUN, {"run": program["run_id"], **state})
        return int(program_id)

    def store_proposal(self, run_state: Row, proposal: Row, calls: Iterable[Row] = ()) -> None:
        """A proposal that produced no new program (duplicate, rejected, failed)."""
        if self._autocommit is not None:
            statement, parameters = self._one_statement.proposal(run_state, stamped(proposal),
                                                                 [stamped(call) for call in calls])
            with self._autocommit.connect() as connection:
                connection.execute(statement, parameters)
            return
        with self.engine.begin() as connection:
            self._insert_proposal(connection, stamped(proposal), calls)
            connection.execute(_UPDATE_RUN, {"run": proposal["run_id"], **run_state})

    @staticmethod
    def _insert_proposal(connection: Connection, proposal: Row, calls: Iterable[Row]) -> None:
        proposal_id = connection.execute(_INSERT[Proposal], proposal).inserted_primary_key[0]
        rows = [stamped(call, proposal_id=proposal_id) for call in calls]
        if rows:
            connection.execute(_INSERT[LLMCall], rows)

    def store_evaluation(self, evaluation: Row) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(_table(Evaluation)).values(**stamped(evaluation)))

    def store_duel(self, run_id: int, rows: list[Row], run_fields: Row, **decision: Any) -> None:
        """A duel's re-measurements, its decision (a `duel` event) and the run's new best, atomically."""
        with self.engine.begin() as connection:
            connection.execute(_INSERT[Remeasurement], [stamped(row) for row in rows])
            connection.execute(insert(_table(Event)).values(**_event(run_id, "duel", decision)))
            if run_fields:
                connection.execute(_UPDATE_RUN, {"run": run_id, **run_fields})

    def add_event(self, run_id: int, kind: str, **data: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(_table(Event)).values(**_event(run_id, kind, data)))

    # ------------------------------------------------------------------ certification

    def certification_step(self, run_id: int, rows: Iterable[Row], resolve: tuple[int, str] | None = None,
                           rescore: Row | None = None, run: Row | None = None) -> list[int]:
        """One step of a challenger's certification, atomically: result rows, the challenge's outcome
        (`resolve`: program id, outcome), a witness's score replacing the search score, the run's new champion."""
        table = _table(Certificate)
        with self.engine.begin() as connection:
            ids = [connection.execute(_INSERT[Certificate], stamped(row)).inserted_primary_key[0] for row in rows]
            if resolve is not None:
                connection.execute(update(table).where(
                    table.c.run_id == run_id, table.c.program_id == resolve[0], table.c.kind == "challenge",
                    table.c.status == "pending").values(status=resolve[1]))
            if rescore is not None:
                self._replace_score(connection, **rescore)
            if run is not None:
                connection.execute(_UPDATE_RUN, {"run": run_id, **run})
        return [int(i) for i in ids]

    @staticmethod
    def _replace_score(connection: Connection, run_id: int, program_id: int, epoch: int, score: float,
                       fitness: float) -> None:
        """A truer score (a certifying verifier's exact witness) replaces the optimistic search score."""
        evaluations, programs, members = _table(Evaluation), _table(Program), _table(IslandMember)
        connection.execute(update(evaluations).where(
            evaluations.c.program_id == program_id, evaluations.c.split == "search",
            evaluations.c.epoch == epoch, evaluations.c.valid).values(score=score))
        connection.execute(update(programs).where(programs.c.id == program_id).values(score=score))
        connection.execute(update(members).where(
            members.c.run_id == run_id, members.c.program_id == program_id).values(fitness=fitness))

    def mark_unsound(self, certificate_id: int, run_id: int, **data: Any) -> None:
        """A measured score above a proven bound: the certificate is flagged and the event recorded."""
        table = _table(Certificate)
        with self.engine.begin() as connection:
            connection.execute(update(table).where(table.c.id == certificate_id).values(unsound=True))
            connection.execute(insert(_table(Event)).values(**_event(run_id, "certificate_unsound", data)))

    def pending_challenges(self, run_id: int, epoch: int) -> list[PendingChallenge]:
        """Challengers queued but not dealt with (the run was killed), oldest first."""
        table = _table(Certificate)
        with self.engine.connect() as connection:
            rows = connection.execute(
                core_select(table.c.id, table.c.program_id, table.c.lower)
                .where(table.c.run_id == run_id, table.c.kind == "challenge", table.c.status == "pending",
                       table.c.epoch == epoch).order_by(table.c.id)).all()
        return [PendingChallenge(int(i), int(p), lower) for i, p, lower in rows]

    def champion_certificate(self, run_id: int, program_id: int) -> Certificate | None:
        """The proven certify row that made this program champion (the latest one)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Certificate).where(
                Certificate.run_id == run_id, Certificate.program_id == program_id, Certificate.kind == "certify",
                Certificate.status == "proven")
                .order_by(Certificate.id.desc()).limit(1)).first()  # type: ignore[union-attr]

    def search_evaluation(self, program_id: int, epoch: int) -> Evaluation | None:
        """A program's search-split evaluation in this epoch (the first one)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Evaluation).where(
                Evaluation.program_id == program_id, Evaluation.split == "search", Evaluation.epoch == epoch)
                .order_by(Evaluation.id).limit(1)).first()  # type: ignore[arg-type]

    # ------------------------------------------------------------------ islands

    def add_members(self, members: list[Row], event_kind: str, run_id: int, **data: Any) -> None:
        with self.engine.begin() as connection:
            if members:
                connection.execute(insert(_table(IslandMember)), members)
            connection.execute(insert(_table(Event)).values(**_event(run_id, event_kind, data)))

    def reset_island(self, run_id: int, island: int, members: list[Row], **data: Any) -> None:
        """Empty an island's archive and reseed it, recording the reset."""
        table = _table(IslandMember)
        with self.engine.begin() as connection:
            connection.execute(update(table).where(table.c.run_id == run_id, table.c.island == island)
                               .values(active=False))
            if members:
                connection.execute(insert(table), members)
            connection.execute(insert(_table(Event)).values(**_event(run_id, "reset", {"island": island, **data})))

    def start_epoch(self, run_id: int, evaluations: list[Row], members: list[Row], changes: str,
                    challenges: list[Row] | None = None, **run_fields: Any) -> None:
        """Store a rescore: new-epoch evaluations, islands rebuilt from them only, the run's new identity
        (and, for a certifying problem, the pending challenges the next session certifies)."""
        with self.engine.begin() as connection:
            if evaluations:
                connection.execute(insert(_table(Evaluation)), [stamped(e) for e in evaluations])
            if challenges:
                connection.execute(insert(_table(Certificate)), [stamped(c) for c in challenges])
            connection.execute(update(_table(IslandMember)).where(_table(IslandMember).c.run_id == run_id)
                               .values(active=False))
            if members:
                connection.execute(insert(_table(IslandMember)), members)
            connection.execute(update(_table(Run)).where(_table(Run).c.id == run_id).values(**run_fields))
            connection.execute(insert(_table(Event)).values(**_event(run_id, "rescore", {
                "epoch": run_fields.get("epoch"), "changes": changes, "programs": len(evaluations)})))

    def active_members(self, run_id: int, island: int, limit: int) -> list[tuple[IslandMember, Program, str]]:
        """The island's archive, best first, with each program's search feedback."""
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(IslandMember, Program, Evaluation.feedback)
                .join(Program, Program.id == IslandMember.program_id)  # type: ignore[arg-type]
                .join(Run, Run.id == IslandMember.run_id)  # type: ignore[arg-type]
                .join(Evaluation, (Evaluation.program_id == Program.id) & (Evaluation.split == "search")
                      & (Evaluation.evaluator_hash == Run.evaluator_hash))  # type: ignore[arg-type]
                .where(IslandMember.run_id == run_id, IslandMember.island == island, IslandMember.active == True)  # noqa: E712
                .order_by(IslandMember.fitness.desc())  # type: ignore[attr-defined]
                .limit(limit)
            ).all()
        return [(member, program, feedback) for member, program, feedback in rows]

    # ------------------------------------------------------------------ reads

    def program(self, program_id: int) -> Program | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Program, program_id)

    def code_hashes(self, run_id: int) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.exec(select(Program.code_hash, Program.id).where(Program.run_id == run_id)).all()
        return {code_hash: program_id for code_hash, program_id in rows}

    def events(self, run_id: int, kinds: tuple[str, ...]) -> list[tuple[str, dict]]:
        with Session(self.engine) as session:
            rows = session.exec(select(Event.kind, Event.data)
                                .where(Event.run_id == run_id, Event.kind.in_(kinds))  # type: ignore[attr-defined]
                                .order_by(Event.id)).all()
        return [(kind, json.loads(data)) for kind, data in rows]


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = engine_for(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = engine_for(url)
    _ping_when_idle(engine)
    return engine


IDLE_BEFORE_PING = 1.0  # seconds a pooled server connection may rest before it is checked on checkout


def _ping_when_idle(engine: Engine) -> None:
    """Check a server connection on checkout only after it rested: `pool_pre_ping` costs the writer a
    round trip per result, though its connection was used a moment ago. A connection the server dropped
    while it rested (restart, idle timeout) is replaced before use (SQLAlchemy's custom pre-ping recipe);
    one that breaks in use fails that write, which is reported as the one-line StoreError."""

    @event.listens_for(engine, "checkin")
    def _rested_from(_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("checked_in", float("-inf")) < IDLE_BEFORE_PING:
            return
        try:
            engine.dialect.do_ping(connection)  # the dialect's own ping, which leaves no transaction open
        except Exception:
            raise DisconnectionError() from None  # the pool retries with a new connection


def open_store(url: str) -> Store:
    """Open an existing run database, with a clear error if it is not one."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StoreError(f"no database at {path}")
    return Store(url, create=False)
