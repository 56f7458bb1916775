"""Database URLs: turned into an engine with a bad URL told as a user error, and saved or shown
never with a password.

SQLAlchemy reports a malformed URL, an unknown kind of database and a driver
that is not installed as three unrelated exceptions deep in its stack; here
each becomes one StoreError that names the fix. No connection is made: that
is the caller's business (and `database_error`'s, when the database refuses).

A password given in a URL on the command line is used for that session only; the saved
config keeps the URL without it, so later sessions (`evolve resume`, `evolve status`) take
it from where libpq looks for one: the PGPASSWORD variable or ~/.pgpass (docs/scaling.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

EXAMPLES = "sqlite:///PATH/evolve.db or postgresql://USER@HOST/NAME"


def engine_for(url: str, **options: Any) -> Engine:
    """`create_engine(url, **options)`, or a StoreError saying what is wrong with the URL."""
    from evolve.db.store import StoreError  # store.py imports this module

    try:
        return create_engine(url, **options)
    except NoSuchModuleError:  # before ArgumentError, its base
        kind = url.partition("://")[0]
        raise StoreError(f"the database URL {shown(url)!r} names an unknown kind of database {kind!r}; "
                         f"use {EXAMPLES}") from None
    except ArgumentError:
        raise StoreError(f"{url!r} is not a database URL; write it as {EXAMPLES}") from None
    except ImportError as error:
        extra = " (pip install 'evolve-search[postgres]')" if url.startswith("postgres") else ""
        raise StoreError(f"the database URL {shown(url)!r} needs the Python driver {error.name or error}, which "
                         f"is not installed; install it{extra} or use sqlite:///PATH/evolve.db") from None


def shown(url: str) -> str:
    """The URL for a message or a log line, its password masked: error lines end up in logs and
    issue reports. A file path for SQLite."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def without_password(url: str) -> str:
    """The URL to save: the same database, user and options, no password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # not a URL: the store names it when it fails to open it
    if parsed.password is None:
        return url
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      parsed.query)
    return bare.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def check_url(url: str) -> None:
    """Raise the StoreError `engine_for` would, without keeping an engine: before anything is written."""
    engine_for(url).dispose()
