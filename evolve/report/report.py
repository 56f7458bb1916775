"""`evolve report`: one self-contained HTML file (inline SVG and CSS, no script, no network)."""

from __future__ import annotations

from pathlib import Path

from evolve.report.data import collect
from evolve.report.page import page
from evolve.report.source import open_source


def write_report(target: str | Path, output: Path | None = None, run_id: int | None = None) -> Path:
    """Write the report of a run (a run directory or a database URL); returns the file written."""
    source = open_source(target)
    try:
        chosen = source.run_id(run_id)
        html = page(collect(source, chosen))
    finally:
        source.close()
    if output is None:
        output = (Path(target) / "report.html") if "://" not in str(target) else Path(f"report-run{chosen}.html")
    output.write_text(html, encoding="utf-8")
    return output
