"""Progress of `evolve run` / `resume`: evaluations of budget, best score, rate, elapsed time, alarms.

On a terminal: a live bar. With output redirected (a log file, CI, nohup): one
plain line every `run.progress_interval` seconds, so a log shows the run is alive.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evolve.recorder import Recorder


@dataclass(frozen=True)
class Snapshot:
    evaluations: int
    best: str
    rate: float
    alarms: int


class LiveProgress:
    def __init__(self, console: Console, budget: int, enabled: bool = True, interval: float = 30.0) -> None:
        self.console = console
        self.budget = budget
        self.enabled = enabled and console.is_terminal
        self.plain = enabled and not console.is_terminal and interval > 0
        self.interval = interval
        self.started = time.monotonic()
        self.done_at_start: int | None = None
        self.latest = Snapshot(0, "-", 0.0, 0)
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None
        self.progress = Progress(
            TextColumn("[bold]evaluations"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best [bold cyan]{task.fields[best]}"), TextColumn("{task.fields[rate]}/min"),
            TimeElapsedColumn(), TextColumn("[bold red]{task.fields[alarms]}"), console=console,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task("search", total=budget, best="-", rate="-", alarms="")

    def __enter__(self) -> "LiveProgress":
        self.progress.__enter__()
        if self.plain:
            self.ticker = threading.Thread(target=self._tick, name="evolve-progress", daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join(timeout=5)
        self.progress.__exit__(kind, error, tb)

    def update(self, recorder: Recorder) -> None:
        if not (self.enabled or self.plain):
            return
        run = recorder.view()
        if self.done_at_start is None:
            self.done_at_start = run.evaluations
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        rate = (run.evaluations - self.done_at_start) / minutes
        best = "-" if run.best_score is None else f"{run.best_score:.6g}"
        self.latest = Snapshot(run.evaluations, best, rate, run.alarms)
        if self.enabled:
            alarms = f"{run.alarms} held-out alarm(s): see evolve status" if run.alarms else ""
            self.progress.update(self.task, completed=run.evaluations, best=best, rate=f"{rate:.0f}",
                                 alarms=alarms)

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval):
            self.console.print(self.line(), highlight=False, soft_wrap=True)
            self.console.file.flush()

    def line(self) -> str:
        """One plain progress line: no colours, no cursor movement, readable in any log."""
        now = self.latest
        elapsed = int(time.monotonic() - self.started)
        alarms = f", {now.alarms} held-out alarm(s): see evolve status" if now.alarms else ""
        return (f"[{time.strftime('%H:%M:%S')}] evaluations {now.evaluations}/{self.budget}, best {now.best}, "
                f"{now.rate:.0f}/min, elapsed {elapsed // 60}m{elapsed % 60:02d}s{alarms}")
