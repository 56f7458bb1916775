"""The `evolve` command line (typer + rich).

Every user error (a misspelt key, an unknown problem, a directory that is not
a run, a database of another version) is one line on stderr and a non-zero
exit, with nothing written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from evolve.config import ConfigError, compose_config
from evolve.db.store import StoreError
from evolve.engine import EvaluatorChanged, SearchStalled, SeedInvalid
from evolve.cli_sandbox import sandbox_app
from evolve.paths import CONFIGS
from evolve.problem import ProblemError
from evolve.progress import LiveProgress
from evolve.runlock import RunLocked
from evolve.sandbox.errors import SandboxUnavailable
from evolve.session import RunError, RunResult, resume_run, start_run

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evolve programs with an LLM (or an offline mutator) against frozen verifiers.")
console = Console()
errors = Console(stderr=True)
USER_ERRORS = (ConfigError, ProblemError, RunError, StoreError, SeedInvalid, SearchStalled, EvaluatorChanged,
               SandboxUnavailable, RunLocked)
T = TypeVar("T")

OVERRIDES = typer.Argument(None, help="config overrides, e.g. problem=circle_packing budget.evaluations=300 seed=1")


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except USER_ERRORS as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _drive(coroutine_factory: Callable[[LiveProgress], object], budget: int, progress: bool) -> RunResult:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with LiveProgress(console, budget, enabled=progress) as live:
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


@app.command()
def run(overrides: Optional[list[str]] = OVERRIDES) -> None:
    """Start a search. Example: evolve run problem=circle_packing llm=offline budget.evaluations=300"""
    cfg = _guarded(lambda: compose_config(overrides or []))
    result = _guarded(lambda: _drive(lambda live: start_run(cfg, on_progress=live.update),
                                     cfg.budget.evaluations, cfg.run.progress))
    _summary(result)


@app.command()
def resume(run_dir: Path, overrides: Optional[list[str]] = OVERRIDES) -> None:
    """Continue a stored search; only budgets (budget.*) and concurrency may be changed."""
    from evolve.config import load_saved

    def go() -> RunResult:
        cfg = load_saved(run_dir / "config.yaml", overrides or []) if (run_dir / "config.yaml").is_file() else None
        budget = cfg.budget.evaluations if cfg is not None else 0
        progress = bool(cfg.run.progress) if cfg is not None else False
        return _drive(lambda live: resume_run(run_dir, overrides or [], on_progress=live.update), budget, progress)

    _summary(_guarded(go))


@app.command()
def rescore(run_dir: Path) -> None:
    """Start a new evaluator epoch: re-evaluate the run's archive under the current verifier."""
    from evolve.rescore import rescore_run

    result = _guarded(lambda: asyncio.run(rescore_run(run_dir)))
    console.print(f"epoch {result.epoch}: {result.programs} programs re-evaluated, {result.valid} valid, "
                  f"best score {result.best_score}\nchanged: {result.changes}", highlight=False, soft_wrap=True)


@app.command()
def status(run_dir: Path, as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Per-island size, best, valid and duplicate rates; totals; budgets spent; LLM calls."""
    from evolve.status import render, run_status

    report = _guarded(lambda: run_status(run_dir))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    for part in render(report):
        console.print(part)


@app.command()
def best(run_dir: Path, output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the code here")) -> None:
    """Print (or save) the best program of a run."""
    from evolve.session import open_run, saved_config

    def fetch() -> str:
        store, run = open_run(run_dir, saved_config(run_dir))
        try:
            program = store.program(run.best_program_id) if run.best_program_id is not None else None
            certifying = store.query("SELECT COUNT(*) FROM certificates WHERE run_id=:run", run=run.id)[0][0] > 0
            certificate = store.champion_certificate(run.id, program.id) if certifying and program else None
        finally:
            store.close()
        if program is None and certifying:
            raise RunError(f"{run_dir} has no certified champion yet; `evolve status {run_dir}` shows the best "
                           "search score and the certifications pending")
        if program is None:
            raise RunError(f"{run_dir} has no evaluated program yet")
        if certificate is not None:  # on stderr: stdout stays the program alone
            errors.print(f"certified bound {certificate['bound']} ({certificate['bound_float']:.9g}), program "
                         f"{program.id}, {certificate['solver']}", highlight=False, soft_wrap=True)
        return program.code

    code = _guarded(fetch)
    if output is None:
        sys.stdout.write(code)
    else:
        output.write_text(code)
        console.print(f"wrote {output}")


@app.command()
def problems() -> None:
    """List the bundled problems."""
    from omegaconf import OmegaConf

    for path in sorted((CONFIGS / "problem").glob("*.yaml")):
        data = OmegaConf.load(path)
        console.print(f"[bold]{path.stem}[/]  {data.get('objective', 'maximize')}  {data.get('description', '')}",
                      highlight=False, soft_wrap=True)


@app.command("new-problem")
def new_problem(name: str, directory: Optional[Path] = typer.Option(
        None, "--dir", help="create a self-contained problem folder here (outside the repository)")) -> None:
    """Scaffold a problem (seed, cases, verifier, config) that runs as-is."""
    from evolve.scaffold import ScaffoldError, new_problem as scaffold

    try:
        created = scaffold(name, directory)
    except ScaffoldError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    for path in created:
        console.print(f"created {path}", highlight=False)


RUN_TARGET = typer.Argument(..., help="a run directory, or a database URL such as sqlite:///runs.db")
RUN_ID = typer.Option(None, "--run", help="which run, when the database holds several")


@app.command()
def report(target: str = RUN_TARGET, output: Optional[Path] = typer.Option(None, "-o", "--output"),
           run_id: Optional[int] = RUN_ID) -> None:
    """Write one self-contained HTML file showing the run (opens with no network)."""
    from evolve.report import commands

    console.print(_guarded(lambda: commands.report(target, output, run_id)), highlight=False, soft_wrap=True)


@app.command()
def ui(target: str = RUN_TARGET, host: str = "127.0.0.1", port: int = 8765,
       interval: float = typer.Option(3.0, help="seconds between the page's updates")) -> None:
    """A live, read-only view of a running or finished search in the browser."""
    from evolve.report import commands

    _guarded(lambda: commands.ui(target, host, port, interval, lambda text: print(text, flush=True)))


@app.command()
def export(target: str = RUN_TARGET, output: Optional[Path] = typer.Option(None, "-o", "--output"),
           run_id: Optional[int] = RUN_ID) -> None:
    """Programs, evaluations, proposals and LLM calls as JSON Lines and CSV (and Parquet with pyarrow)."""
    from evolve.report import commands

    console.print(_guarded(lambda: commands.export(target, output, run_id)), highlight=False, soft_wrap=True)


app.add_typer(sandbox_app, name="sandbox", help="Build and check the sandbox image.")
