"""Versioned schema migrations: an older database is brought up step by step, nothing stored is lost.

Each test runs on a fresh SQLite file and on a fresh database of a real PostgreSQL server.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from evolve.db import models
from evolve.db.migrations import MIGRATIONS, OLDEST
from evolve.db.store import Store, StoreError
from tests.test_store import Run, scored

NEWER_TABLES = {3: "certificates", 4: "remeasurements"}  # what each version added, as the models say


def test_every_version_after_the_oldest_has_its_step() -> None:
    # Bumping SCHEMA_VERSION without a step to reach it fails here, not on a user's database.
    assert sorted(MIGRATIONS) == list(range(OLDEST + 1, models.SCHEMA_VERSION + 1))


def as_older_version(url: str, version: int) -> None:
    """Turn a current database into one of an older version: the tables it lacked removed, the stamp set."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for added, table in NEWER_TABLES.items():
            if added > version:
                connection.execute(text(f"DROP TABLE {table}"))
        connection.execute(text("UPDATE evolve_meta SET value=:v WHERE key='schema_version'"), {"v": str(version)})
    engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("version", range(OLDEST, models.SCHEMA_VERSION))
def test_an_older_database_is_migrated_in_order_and_keeps_its_rows(database_url: str, version: int) -> None:
    written = Run(database_url)
    ids = [written.program(scored(score)) for score in (1.0, 2.0, 3.0)]
    before = {pid: (written.store.program(pid).code, [e.score for e in written.store.evaluations(pid, 0)])  # type: ignore[union-attr]
              for pid in ids}
    written.store.close()
    as_older_version(database_url, version)
    assert not {NEWER_TABLES[v] for v in NEWER_TABLES if v > version} & table_names(database_url)

    store = Store(database_url, create=False)
    try:
        with store.engine.connect() as connection:
            stamp = connection.execute(text("SELECT value FROM evolve_meta WHERE key='schema_version'")).scalar()
        assert stamp == str(models.SCHEMA_VERSION)
        assert set(NEWER_TABLES.values()) <= table_names(database_url)
        assert {pid: (store.program(pid).code, [e.score for e in store.evaluations(pid, 0)])  # type: ignore[union-attr]
                for pid in ids} == before
    finally:
        store.close()
    Store(database_url, create=False).close()  # opening again finds nothing to do


def test_a_step_redone_after_a_crash_is_harmless(database_url: str) -> None:
    # A crash between a step's work and its stamp cannot happen (one transaction), but a database
    # whose tables are ahead of its stamp (made by hand, or by an older release's create_all) migrates too.
    Run(database_url).store.close()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE evolve_meta SET value=:v WHERE key='schema_version'"), {"v": str(OLDEST)})
    engine.dispose()
    Store(database_url, create=False).close()
    assert set(NEWER_TABLES.values()) <= table_names(database_url)


@pytest.mark.parametrize("stamp", [str(OLDEST - 1), str(models.SCHEMA_VERSION + 1), "garbage"])
def test_a_version_with_no_path_is_refused_untouched(database_url: str, stamp: str) -> None:
    Run(database_url).store.close()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE evolve_meta SET value=:v WHERE key='schema_version'"), {"v": stamp})
    engine.dispose()
    with pytest.raises(StoreError, match=f"schema version {stamp} does not match"):
        Store(database_url, create=False)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT value FROM evolve_meta WHERE key='schema_version'")).scalar() == stamp
    engine.dispose()
