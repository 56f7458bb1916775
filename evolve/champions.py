"""Noise-aware champions: a measured score must win a paired, interleaved re-measurement.

A problem whose score is *measured* (run time, PAR-2) declares `score_kind: measured`.
One measurement that beats the champion by more than `min_gain` only makes a *contender* (a
smaller gain is no champion and no duel): the engine then
evaluates contender and champion `repeats` more times each, alternating which goes
first, so that both see the same machine at nearly the same moment. Each pair gives
the contender's relative gain over the champion on that repeat; the contender becomes
champion only if the one-sided lower confidence bound (Student t over the repeats) of
the mean gain exceeds `min_gain`. The unit is the repeat, not the case: load that slows
one sandbox job slows all of its cases together. The measurement that made the
contender is not reused: it was selected for being lucky.

`decide` is the decision, a pure function; `remeasure` runs the interleaved pairs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from evolve.alarms import relative_gain
from evolve.evaluation import Evaluation

EXACT, MEASURED = "exact", "measured"


@dataclass(frozen=True)
class Decision:
    crowned: bool
    gains: tuple[float, ...]  # the contender's relative gain over the champion, per repeat
    mean_gain: float
    lower_bound: float  # one-sided, at `confidence`
    confidence: float
    min_gain: float
    reason: str

    def as_dict(self) -> dict:
        return {"crowned": self.crowned, "gains": list(self.gains), "mean_gain": self.mean_gain,
                "lower_bound": self.lower_bound, "confidence": self.confidence, "min_gain": self.min_gain,
                "reason": self.reason}


def decide(contender: Sequence[float | None], champion: Sequence[float | None], confidence: float,
           min_gain: float) -> Decision:
    """Pairs of fitness (larger is better; None: invalid on that repeat), one pair per repeat."""
    if any(c is None for c in contender):
        return Decision(False, (), 0.0, -math.inf, confidence, min_gain, "the contender was invalid on a repeat")
    if any(c is None for c in champion):
        return Decision(False, (), 0.0, -math.inf, confidence, min_gain, "the champion was invalid on a repeat")
    gains = tuple(relative_gain(c, i) for c, i in zip(contender, champion))  # type: ignore[arg-type]
    mean = statistics.fmean(gains)
    spread = statistics.stdev(gains) if len(gains) > 1 else math.inf
    lower = mean - t_quantile(confidence, len(gains) - 1) * spread / math.sqrt(len(gains)) if spread else mean
    crowned = lower > min_gain
    reason = (f"mean gain {mean:+.2%} over {len(gains)} repeats, lower bound {lower:+.2%} at {confidence:.0%} "
              f"confidence {'>' if crowned else '<='} the required {min_gain:.2%}")
    return Decision(crowned, gains, mean, lower, confidence, min_gain, reason)


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with `dof` degrees of freedom (p >= 0.5), by bisection on its CDF."""
    if dof < 1:
        return math.inf
    low, high = 0.0, 1.0
    while _t_cdf(high, dof) < p:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_cdf(middle, dof) < p else (low, middle)
    return (low + high) / 2


def _t_cdf(x: float, dof: int) -> float:
    """P(T <= x) for x >= 0: 1/2 plus the density integrated over [0, x] (Simpson's rule)."""
    norm = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    steps = 2000
    h = x / steps
    total = 0.0
    for k in range(steps + 1):
        weight = 1 if k in (0, steps) else 4 if k % 2 else 2
        total += weight * (1 + (k * h) ** 2 / dof) ** (-(dof + 1) / 2)
    return 0.5 + norm * total * h / 3


def worth_a_duel(candidate: float, champion: float, min_gain: float) -> bool:
    """Fitness of one measurement against the champion's: a duel only for a gain the duel could confirm.

    Without this, every change that does nothing (half of them measure better than the champion by
    chance) would cost 2 x repeats evaluations."""
    return relative_gain(candidate, champion) > min_gain


Evaluate = Callable[[str], Awaitable[Evaluation]]


async def remeasure(evaluate: Evaluate, contender: str, champion: str,
                    repeats: int) -> list[tuple[Evaluation, Evaluation]]:
    """`repeats` pairs (contender, champion), each pair measured back to back, alternating the order."""
    pairs = []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            first = await evaluate(contender)
            pairs.append((first, await evaluate(champion)))
        else:
            second = await evaluate(champion)
            pairs.append((await evaluate(contender), second))
    return pairs
