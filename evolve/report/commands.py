"""The bodies of `evolve report`, `evolve ui` and `evolve export` (the CLI only wires them)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from evolve.errors import EvolveError
from evolve.report.source import SourceError, open_source


class OutputError(EvolveError):
    """The -o path cannot be written; the message says why and what to do."""


def _check_output(output: Path | None, folder: bool) -> None:
    """Refuse an -o path that cannot be what is asked for, before the database is opened."""
    if output is None:
        return
    if folder and output.exists() and not output.is_dir():
        raise OutputError(f"cannot write {output}: it is a file, and export writes a folder; choose another -o path")
    if not folder and output.is_dir():
        raise OutputError(f"cannot write {output}: it is a folder; name a file with -o (e.g. {output / 'report.html'})")
    if output.parent.exists() and not output.parent.is_dir():
        raise OutputError(f"cannot write {output}: {output.parent} is a file, not a folder; choose another -o path")


def _unwritable(error: OSError, output: Path | None) -> OutputError:
    return OutputError(f"cannot write {error.filename or output}: {error.strerror or error}; "
                       "choose another -o path")


def report(target: str, output: Path | None, run_id: int | None) -> str:
    from evolve.report.report import write_report

    _check_output(output, folder=False)
    try:
        path = write_report(target, output, run_id)
    except OSError as error:
        if error.filename is None:  # not a file of ours: a fault, with its traceback
            raise
        raise _unwritable(error, output) from None
    return f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)"


def ui(target: str, host: str, port: int, interval: float, say: Callable[[str], None]) -> None:
    from evolve.report.server import serve

    if interval < 0.5:
        raise SourceError(f"--interval {interval} is too short; use 0.5 seconds or more")
    if not 0 <= port <= 65535:
        raise SourceError(f"--port {port} is not a port number; use one from 1024 to 65535")
    source = open_source(target)
    try:
        serve(source, host, port, interval,
              lambda url: say(f"serving {url} (read-only; Ctrl-C stops)"))
    except OSError as error:
        raise SourceError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                          "pick another port with --port") from None


def export(target: str, output: Path | None, run_id: int | None) -> str:
    from evolve.report.export import export_run, parquet_available

    _check_output(output, folder=True)
    source = open_source(target)
    try:
        chosen = source.run_id(run_id)
        directory = output or ((Path(target) / "export") if "://" not in target else Path(f"export-run{chosen}"))
        written = export_run(source, chosen, directory)
    except OSError as error:
        if error.filename is None:
            raise
        raise _unwritable(error, output) from None
    finally:
        source.close()
    lines = [f"{table}: {info['rows']} rows" for table, info in written.items()]
    formats = "JSON Lines, CSV and Parquet" if parquet_available() else \
        "JSON Lines and CSV (Parquet too once pyarrow is installed: pip install pyarrow)"
    return f"wrote {formats} to {directory}\n" + "\n".join(lines)
