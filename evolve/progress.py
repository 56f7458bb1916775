"""The live display of `evolve run`: evaluations of budget, best score, rate, elapsed time, alarms.

Shown only when stdout is a terminal; otherwise the run is quiet and only the
final summary is printed.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evolve.recorder import Recorder


class LiveProgress:
    def __init__(self, console: Console, budget: int, enabled: bool = True) -> None:
        self.enabled = enabled and console.is_terminal
        self.started = time.monotonic()
        self.done_at_start: int | None = None
        self.progress = Progress(
            TextColumn("[bold]evaluations"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best [bold cyan]{task.fields[best]}"), TextColumn("{task.fields[rate]}/min"),
            TimeElapsedColumn(), TextColumn("[bold red]{task.fields[alarms]}"), console=console,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task("search", total=budget, best="-", rate="-", alarms="")

    def __enter__(self) -> "LiveProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.__exit__(kind, error, tb)

    def update(self, recorder: Recorder) -> None:
        if not self.enabled:
            return
        if self.done_at_start is None:
            self.done_at_start = recorder.evaluations
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        rate = (recorder.evaluations - self.done_at_start) / minutes
        best = "-" if recorder.best_score is None else f"{recorder.best_score:.6g}"
        alarms = f"{recorder.alarms} held-out alarm(s): see evolve status" if recorder.alarms else ""
        self.progress.update(self.task, completed=recorder.evaluations, best=best, rate=f"{rate:.0f}", alarms=alarms)
