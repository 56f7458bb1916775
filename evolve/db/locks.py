"""A run held on the database server: two machines cannot drive the same run.

The run directory's file lock (evolve/runlock.py) guards one machine. A run kept in
PostgreSQL can be resumed from a copy of its directory on another machine, so the session
also takes a PostgreSQL advisory lock keyed by the run's id, on a connection it keeps open.
The server drops the lock when that connection ends, even after `kill -9` of the holder,
so a crashed run never stays locked. SQLite lives in the run directory: the file lock is enough.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from evolve.runlock import RunLocked

NAMESPACE = 0x65766F6C  # "evol": the first key of evolve's advisory locks, the run id is the second


def holds_locks(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def take(engine: Engine, run_id: int, where: str) -> Connection | None:
    """The connection that holds the run (None where no lock is needed), or RunLocked naming the holder."""
    if not holds_locks(engine):
        return None
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")  # no transaction left open
    try:
        taken = connection.execute(text("SELECT pg_try_advisory_lock(CAST(:ns AS integer), CAST(:run AS integer))"),
                                   {"ns": NAMESPACE, "run": run_id}).scalar()
    except BaseException:
        release(connection)
        raise
    if not taken:
        release(connection)
        raise RunLocked(f"run {run_id} in {where} is driven by another evolve process "
                        f"({holder(engine, run_id) or 'unknown client'}); wait for it to finish or stop it first")
    return connection


def release(connection: Connection) -> None:
    """Let the run go: ending the server connection releases its advisory locks, whatever state it is in."""
    connection.invalidate()
    connection.close()


def holder(engine: Engine, run_id: int) -> str:
    """Who holds the run's lock ("" if nobody): the client address and server pid of its connection."""
    if not holds_locks(engine):
        return ""
    with engine.connect() as connection:
        row = connection.execute(text(
            "SELECT a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :ns AND l.objid::bigint = :run "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"ns": NAMESPACE, "run": run_id}).first()
    if row is None:
        return ""
    return f"a client at {row[0] or 'a local socket'}, server process {row[1]}"
