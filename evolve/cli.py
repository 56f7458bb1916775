"""The `evolve` command line (typer + rich).

Every user error (a misspelt key, an unknown problem, a directory that is not
a run, a damaged or locked database) is one line on stderr and exit status 2,
with nothing written. Anything unexpected is one line too, naming the file that
holds the full traceback (exit 1). Ctrl-C exits 130 and says how to resume.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.text import Text
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from evolve import bundle
from evolve.config import compose_config
from evolve.db.store import database_error
from evolve.errors import EvolveError
from evolve.cli_sandbox import sandbox_app
from evolve.paths import PROBLEMS
from evolve.progress import LiveProgress
from evolve.scaffold import ScaffoldError
from evolve.session import CONFIG_FILE, RunError, RunResult, resume_run, start_run

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evolve programs with an LLM (or an offline mutator) against frozen verifiers.")
console = Console()
errors = Console(stderr=True)
USER_ERROR, UNEXPECTED, INTERRUPTED = 2, 1, 130
_run_dir: list[Path] = []  # the run a command works on, once known: where a crash report goes

OVERRIDES = typer.Argument(None, help="config overrides, e.g. problem=circle_packing budget.evaluations=300 seed=1")
# Only what resume accepts (evolve.config.RESUMABLE_PREFIXES); a test runs this example.
RESUME_EXAMPLE = "budget.evaluations=1000 budget.wall_time=3600 search.evaluators=4"
RUN_TARGET = typer.Argument(..., help="a run directory, or a database URL such as sqlite:///runs.db")
RUN_ID = typer.Option(None, "--run", help="which run, when the database holds several")
RESUME_OVERRIDES = typer.Argument(None, help=f"budget and concurrency overrides, e.g. {RESUME_EXAMPLE}")


def command(function: Callable[..., None]) -> Callable[..., None]:
    """Every command's errors end as one line: user errors (2), the unexpected (1, traceback in a file), Ctrl-C (130)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        _run_dir.clear()
        try:
            function(*args, **kwargs)
        except typer.Exit:
            raise
        except EvolveError as error:  # a user error (evolve.errors): its message says what to do
            _error(str(error))
            raise typer.Exit(USER_ERROR) from None
        except DBAPIError as error:
            _error(str(database_error(error, _database_of(_run_dir[-1]) if _run_dir else "of this run")))
            raise typer.Exit(USER_ERROR) from None
        except KeyboardInterrupt:
            _error(f"interrupted{_resume_hint()}")
            raise typer.Exit(INTERRUPTED) from None
        except Exception as error:  # noqa: BLE001 - a bug: one line here, the whole story in a file
            report = _crash_report()
            _error(f"unexpected {type(error).__name__}: {_first_line(error)} (a bug; please report it with "
                   f"the full traceback, written to {report})")
            raise typer.Exit(UNEXPECTED) from None

    return wrapper


def _remember(target: str) -> None:
    """The run directory a command works on (for crash reports and hints); a database URL is none."""
    if "://" not in target:
        _run_dir.append(Path(target))


def _database_of(run_dir: Path) -> str:
    """The URL of a run's database, as its saved config names it (SQLite in the run directory by default)."""
    from evolve.session import database_url, saved_config

    try:
        return database_url(saved_config(run_dir), run_dir)
    except Exception:  # noqa: BLE001 - no readable config: the default place
        return f"sqlite:///{run_dir / 'evolve.db'}"


def _error(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _resume_hint() -> str:
    if _run_dir and (_run_dir[-1] / CONFIG_FILE).is_file():
        return f"; continue with `evolve resume {_run_dir[-1]}`"
    return ""


def _crash_report() -> Path:
    """The current exception's traceback, in the run directory when there is one, else a temporary file."""
    text = traceback.format_exc()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if _run_dir and _run_dir[-1].is_dir():
        try:
            path = _run_dir[-1] / f"crash-{stamp}.log"
            path.write_text(text)
            return path
        except OSError:
            pass
    with tempfile.NamedTemporaryFile("w", prefix=f"evolve-crash-{stamp}-", suffix=".log", delete=False) as handle:
        handle.write(text)
    return Path(handle.name)


def _drive(coroutine_factory: Callable[[LiveProgress], object], budget: int, progress: bool,
           interval: float) -> RunResult:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with LiveProgress(console, budget, enabled=progress, interval=interval) as live:
        return asyncio.run(coroutine_factory(live))  # type: ignore[arg-type]


def _summary(result: RunResult) -> None:
    best = (f"best score {result.best_score} (program {result.best_program_id})"
            if result.best_program_id is not None else  # a certifying problem whose bounds are not yet proven
            "no certified champion yet (see `evolve status`)")
    console.print(
        f"{result.status} ({result.reason}): {result.evaluations} evaluations; "
        f"seed score {result.seed_score}, {best}\n"
        f"run directory: {result.run_dir}", highlight=False, soft_wrap=True)
    for notice in result.notices:
        console.print(Text.assemble(("alarm: ", "bold yellow"), notice), highlight=False, soft_wrap=True)
    if result.alarms:
        console.print(f"[bold red]{result.alarms} held-out alarm(s) fired[/]: the search score rose while the "
                      "held-out score did not (overfitting to the search cases?); see "
                      f"`evolve status {result.run_dir}`", highlight=False, soft_wrap=True)
    if result.status == "interrupted":
        console.print(f"next: continue with `evolve resume {result.run_dir}`", highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED)
    if result.best_program_id is not None:
        console.print(f"next: `evolve best {result.run_dir} -o best.py` saves the best program (`-o DIR` writes "
                      "a multi-file program's files); "
                      f"`evolve resume {result.run_dir} budget.evaluations=N` searches further",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"next: `evolve status {result.run_dir}` shows what is pending; "
                      f"`evolve resume {result.run_dir} budget.evaluations=N` searches further",
                      highlight=False, soft_wrap=True)


@app.command()
@command
def run(overrides: Optional[list[str]] = OVERRIDES) -> None:
    """Start a search. Example: evolve run problem=circle_packing llm=offline budget.evaluations=300"""
    cfg = compose_config(overrides or [])
    if cfg.run.dir:
        _run_dir.append(Path(cfg.run.dir))
    _summary(_drive(lambda live: start_run(cfg, on_progress=live.update), cfg.budget.evaluations, cfg.run.progress,
                    cfg.run.progress_interval))


@app.command()
@command
def resume(run_dir: Path, overrides: Optional[list[str]] = RESUME_OVERRIDES) -> None:
    """Continue a stored search; only budgets (budget.*) and concurrency may be changed."""
    from evolve.config import load_saved

    _run_dir.append(run_dir)
    cfg = load_saved(run_dir / "config.yaml", overrides or []) if (run_dir / "config.yaml").is_file() else None
    budget = cfg.budget.evaluations if cfg is not None else 0
    progress = bool(cfg.run.progress) if cfg is not None else False
    interval = float(cfg.run.progress_interval) if cfg is not None else 0.0
    _summary(_drive(lambda live: resume_run(run_dir, overrides or [], on_progress=live.update), budget, progress,
                    interval))


@app.command()
@command
def rescore(run_dir: Path) -> None:
    """Start a new evaluator epoch: re-evaluate the run's archive under the current verifier."""
    from evolve.rescore import rescore_run

    _run_dir.append(run_dir)
    result = asyncio.run(rescore_run(run_dir))
    console.print(f"epoch {result.epoch}: {result.programs} programs re-evaluated, {result.valid} valid, "
                  f"best score {result.best_score}\nchanged: {result.changes}", highlight=False, soft_wrap=True)


@app.command()
@command
def status(target: str = RUN_TARGET, as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
           run_id: Optional[int] = RUN_ID) -> None:
    """Per-island size, best, valid and duplicate rates; totals; budgets spent; LLM calls."""
    from evolve.status import render, run_status

    _remember(target)
    report = run_status(target, run_id)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    for part in render(report):
        console.print(part)


@app.command()
@command
def best(target: str = RUN_TARGET,
         output: Optional[Path] = typer.Option(None, "-o", "--output",
                                               help="write the code here (a folder for a multi-file program)"),
         run_id: Optional[int] = RUN_ID) -> None:
    """Print (or save) the best program of a run."""
    from evolve.db.urls import shown
    from evolve.session import open_target

    _remember(target)
    run_dir = shown(target) if "://" in target else target  # how messages name the run: never a password
    if output is not None and not output.parent.is_dir() and not output.is_dir():
        raise RunError(f"cannot write {output}: the folder {output.parent} does not exist; create it first "
                       "or choose another -o path")
    _cfg, store, run = open_target(target, run_id)
    try:
        program = store.program(run.best_program_id) if run.best_program_id is not None else None
        certifying = bool(store.certificate_counts(run.id))  # type: ignore[arg-type]
        certificate = store.champion_certificate(run.id, program.id) if certifying and program else None
    finally:
        store.close()
    if program is None and certifying:
        raise RunError(f"{run_dir} has no certified champion yet; `evolve status {run_dir}` shows the best "
                       "search score and the certifications pending")
    if program is None:
        raise RunError(f"{run_dir} has no evaluated program yet")
    if certificate is not None:  # on stderr: stdout stays the program alone
        errors.print(f"certified bound {certificate.bound} ({certificate.bound_float:.9g}), program "
                     f"{program.id}, {certificate.solver}", highlight=False, soft_wrap=True)
    if output is None:
        sys.stdout.write(program.code)
        return
    if bundle.is_bundle(program.code):  # a multi-file program: -o names a folder, its files go inside
        try:
            written = bundle.write_out(program.code, output)
        except OSError as error:
            raise RunError(f"cannot write the program's files under {output}: {error.strerror or error}; "
                           "choose another -o folder") from None
        console.print(f"wrote {len(written)} files under {output}: {', '.join(str(p.relative_to(output)) for p in written)}")
        return
    if output.is_dir():
        raise RunError(f"cannot write {output}: it is a folder; give a file name with -o")
    try:
        output.write_text(program.code)
    except OSError as error:
        raise RunError(f"cannot write {output}: {error.strerror or error}; choose another -o path") from None
    console.print(f"wrote {output}")


@app.command()
@command
def problems() -> None:
    """List the problems `problem=NAME` can select: bundled ones and those installed packages register."""
    from omegaconf import OmegaConf

    from evolve.problem_registry import BUNDLED, ENTRY_POINT_GROUP, available_problems

    found = available_problems()
    if not any(entry.origin == BUNDLED for entry in found):
        raise RunError(f"no bundled problems in {PROBLEMS}: this installation is incomplete; "
                       "reinstall evolve (`pip install --force-reinstall evolve-search`)")
    names = [entry.name for entry in found]
    for entry in found:
        origin = "" if entry.origin == BUNDLED else escape(f"  (from {entry.origin})")
        if entry.origin != BUNDLED and names.count(entry.name) > 1:
            origin += "  [yellow]name taken twice: run it as problem=PATH[/]"
        if entry.file is None:
            console.print(f"[bold]{entry.name}[/]{origin}  unusable: {escape(entry.error)}", highlight=False,
                          soft_wrap=True)
            continue
        data = OmegaConf.load(entry.file)
        console.print(f"[bold]{entry.name}[/]  {data.get('objective', 'maximize')}  "
                      f"{escape(str(data.get('description', '')))}{origin}", highlight=False, soft_wrap=True)
    console.print(f"(any folder with a problem.yaml runs as problem=PATH; packages add names through the "
                  f"'{ENTRY_POINT_GROUP}' entry point group)", highlight=False, soft_wrap=True, style="dim")


@app.command("new-problem")
@command
def new_problem(name: str, directory: Optional[Path] = typer.Option(
        None, "--dir", help="the folder to create (default: ./NAME in the current directory)"),
        bundled: bool = typer.Option(False, "--bundled", help="create it as problems/NAME in this source "
                                                               "checkout (run as problem=NAME)")) -> None:
    """Scaffold a self-contained problem folder (problem.yaml, seed, verifier, cases, prompt) that runs as-is."""
    from evolve.scaffold import new_problem as scaffold

    if bundled and directory is not None:
        raise ScaffoldError("--dir and --bundled exclude each other: choose a folder or the checkout")
    target = None if bundled else (directory if directory is not None else Path.cwd() / name)
    created = scaffold(name, target)
    for path in created:
        console.print(f"created {path}", highlight=False)
    where = name if target is None else created[0].parent
    console.print(f"try it: evolve run problem={where} budget.evaluations=50", highlight=False, soft_wrap=True)




@app.command()
@command
def report(target: str = RUN_TARGET, output: Optional[Path] = typer.Option(None, "-o", "--output"),
           run_id: Optional[int] = RUN_ID) -> None:
    """Write one self-contained HTML file showing the run (opens with no network)."""
    from evolve.report import commands

    console.print(commands.report(target, output, run_id), highlight=False, soft_wrap=True)


@app.command()
@command
def ui(target: str = RUN_TARGET, host: str = "127.0.0.1", port: int = 8765,
       interval: float = typer.Option(3.0, help="seconds between the page's updates")) -> None:
    """A live, read-only view of a running or finished search in the browser."""
    from evolve.report import commands

    commands.ui(target, host, port, interval, lambda text: print(text, flush=True))


@app.command()
@command
def export(target: str = RUN_TARGET, output: Optional[Path] = typer.Option(None, "-o", "--output"),
           run_id: Optional[int] = RUN_ID) -> None:
    """Programs, evaluations, proposals and LLM calls as JSON Lines and CSV (and Parquet with pyarrow)."""
    from evolve.report import commands

    console.print(commands.export(target, output, run_id), highlight=False, soft_wrap=True)


app.add_typer(sandbox_app, name="sandbox", help="Build and check the sandbox image.")
