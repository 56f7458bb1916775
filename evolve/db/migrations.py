"""Versioned schema migrations: one numbered step per schema version, applied in order.

A database records its schema version in `evolve_meta.schema_version`. Opening an older one
runs each step from its version up to SCHEMA_VERSION, each in its own transaction that also
stamps the version it reaches, so a step interrupted by a crash is redone, never half-applied,
and a later step never runs before an earlier one. A database newer than this evolve is refused
by the store. Steps only add (tables, columns with defaults): a migration never rewrites a row.

To change the schema: bump SCHEMA_VERSION in models.py and add the step that brings version
SCHEMA_VERSION - 1 to it here, with a test that opens a database of the older version.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, Engine, update

from evolve.db.models import SCHEMA_VERSION, Certificate, Meta, Remeasurement

Step = Callable[[Connection], None]


def _create(*tables: type) -> Step:
    """A step that creates these tables (if missing: a step redone after a crash is harmless)."""
    def step(connection: Connection) -> None:
        for table in tables:
            table.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]
    return step


# version reached -> the step from the version before it
MIGRATIONS: dict[int, Step] = {
    3: _create(Certificate),  # certifying verifiers: challenges, gates, proofs
    4: _create(Remeasurement),  # measured scores: the repeats of each duel
}
OLDEST = min(MIGRATIONS) - 1  # the oldest version a migration path starts from


def migrate(engine: Engine, found: int) -> list[int]:
    """Apply every step after version `found`, in order; the versions reached."""
    reached = []
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with engine.begin() as connection:  # the step and its version stamp commit together
            MIGRATIONS[version](connection)
            connection.execute(update(Meta.__table__).where(Meta.__table__.c.key == "schema_version")  # type: ignore[attr-defined]
                               .values(value=str(version)))
        reached.append(version)
    return reached
