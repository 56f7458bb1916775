"""Shared fixtures: short searches on the bundled circle packing problem."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest


@pytest.fixture
def quick(tmp_path: Path) -> list[str]:
    """Overrides for a short, fast search in a fresh run directory (process sandbox)."""
    return [f"run.dir={tmp_path / 'run'}", "sandbox=process", "run.progress=false", "budget.evaluations=30"]


def query(run_dir: Path, sql: str) -> list[tuple]:
    """Read a run's database directly, as a user's own tooling would."""
    with sqlite3.connect(run_dir / "evolve.db") as connection:
        return connection.execute(sql).fetchall()
