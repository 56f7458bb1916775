"""`evolve export`: a run's programs, evaluations, proposals and LLM calls as files for pandas / polars.

JSON Lines and CSV always; Parquet too when pyarrow is installed. Rows are streamed, so a
large run is exported without holding it in memory (Parquet excepted: one table at a time).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from evolve.report.source import EXPORTED_TABLES, RunSource

BOOLEANS = {"valid"}  # SQLite stores them as 0/1; the export says true/false as PostgreSQL would
FORMATS = ("jsonl", "csv", "parquet")


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def export_run(source: RunSource, run_id: int, directory: Path,
               formats: Iterable[str] = FORMATS) -> dict[str, dict[str, Any]]:
    """Write every table in every format asked for (Parquet only if pyarrow imports); returns
    {table: {"rows": n, "files": [paths]}}."""
    wanted = [f for f in formats if f != "parquet" or parquet_available()]
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Any]] = {}
    for table in EXPORTED_TABLES:
        columns, rows = source.table_rows(table, run_id)
        files = [directory / f"{table}.{fmt}" for fmt in wanted]
        count = _write(columns, rows, files)
        written[table] = {"rows": count, "files": [str(f) for f in files]}
    return written


def _write(columns: list[str], rows: Iterable[Any], files: list[Path]) -> int:
    jsonl = next((f for f in files if f.suffix == ".jsonl"), None)
    csv_path = next((f for f in files if f.suffix == ".csv"), None)
    parquet = next((f for f in files if f.suffix == ".parquet"), None)
    gathered: dict[str, list[Any]] | None = {c: [] for c in columns} if parquet else None
    count = 0
    with _open(jsonl) as json_out, _open(csv_path) as csv_out:
        writer = csv.writer(csv_out) if csv_out is not None else None
        if writer is not None:
            writer.writerow(columns)
        for raw in rows:
            record = {c: _plain(c, v) for c, v in zip(columns, raw)}
            if json_out is not None:
                json_out.write(json.dumps(record) + "\n")
            if writer is not None:
                writer.writerow(["" if v is None else v for v in record.values()])
            if gathered is not None:
                for c, v in record.items():
                    gathered[c].append(v)
            count += 1
    if parquet is not None and gathered is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(gathered), parquet)
    return count


def _plain(column: str, value: Any) -> Any:
    if column in BOOLEANS and value is not None:
        return bool(value)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ")
    return value


class _open:
    """A text file to write, or nothing (a format not asked for)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: Any = None

    def __enter__(self) -> Any:
        if self.path is not None:
            self.handle = self.path.open("w", encoding="utf-8", newline="")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
