"""The held-out divergence alarm: the search score rises, the held-out score does not.

Selection only ever sees search scores. Each new champion is also scored on the
held-out cases; when, over the last `window` champions, the search fitness has
risen by more than `margin` while the held-out fitness has not, the search is
probably exploiting something particular to the search cases (a shortcut)
instead of solving the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class DivergenceAlarm:
    window: int
    margin: float
    history: list[tuple[int, float, float]] = field(default_factory=list)  # program, search, held-out fitness

    def observe(self, program_id: int, search: float, heldout: float | None) -> dict | None:
        """Record a champion; returns the alarm's details when it fires."""
        self.history.append((program_id, search, -math.inf if heldout is None else heldout))
        if self.window < 2 or len(self.history) < self.window:
            return None
        first, last = self.history[-self.window], self.history[-1]
        search_gain = last[1] - first[1]
        heldout_gain = last[2] - first[2]
        if search_gain > self.margin and not heldout_gain > self.margin:
            self.history = self.history[-1:]  # re-arm: the next alarm needs a fresh window
            return {
                "champions": [p for p, _, _ in (first, last)],
                "search_gain": search_gain,
                "heldout_gain": heldout_gain if math.isfinite(heldout_gain) else None,
                "window": self.window,
            }
        return None
