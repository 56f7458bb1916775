"""The run's decisions, as pure functions of plain values: no database, no event loop, no clock.

The Recorder keeps the run's state and stores it; the Engine schedules work; both ask this
module what a result means: a new champion, a challenger to certify, a contender to re-measure,
an archive entry, time to migrate or reset islands (and which, from where), a held-out or
soundness alarm, or the end of the run.
Fitness is always "larger is better" (`Problem.fitness`), so nothing here knows the objective.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from evolve.alarms import Baselines, step
from evolve.certification import better
from evolve.champions import worth_a_duel

UNSOUND_MARGIN = 1e-9  # a held-out score this far above a certified bound is a soundness alarm


# ---------------------------------------------------------------------- champions


class Standing(NamedTuple):
    """What one evaluated candidate is, against the current champion."""

    new_best: bool  # champion at once (exact scores, not certifying)
    challenger: bool  # certifying problems: queued for certification, never champion by itself
    contender: bool  # measured scores: a re-measurement against the champion decides


def standing(valid: bool, fitness: float | None, champion: float | None, *, certifying: bool, measured: bool,
             has_champion: bool, min_gain: float) -> Standing:
    """The candidate's standing; `fitness` and `champion` (the best's fitness, None if none) are larger-better.

    Beating the champion means a strictly larger fitness (a tie is not a new champion). A certifying
    problem's search score is optimistic, so beating the champion's certified bound only makes a
    challenger; a measured score beating an existing champion by more than `min_gain` makes a contender.
    """
    beats = valid and (champion is None or fitness > champion)  # type: ignore[operator]
    duel = measured and not certifying and has_champion
    contender = beats and duel and worth_a_duel(fitness, champion, min_gain)  # type: ignore[arg-type]
    return Standing(beats and not certifying and not duel, beats and certifying, contender)


def still_challenges(score: float, champion_bound: float | None) -> bool:
    """Is a queued challenger still worth certifying (its search score below the champion's proven bound)?"""
    return champion_bound is None or score < champion_bound


def crowns(status: str, bound: str, bound_float: float, champion_bound: str | None,
           champion_float: float | None) -> bool:
    """Does a certify result make a champion: a proven bound strictly better than the champion's?"""
    return status == "proven" and better(bound, bound_float, champion_bound, champion_float)


def scores_agree(first: tuple[bool, float | None], second: tuple[bool, float | None], tolerance: float) -> bool:
    """Do two evaluations of one program (valid, score) agree, within a relative `tolerance`?"""
    (first_valid, first_score), (second_valid, second_score) = first, second
    if first_valid != second_valid:
        return False
    if not first_valid:
        return True
    allowed = tolerance * max(abs(first_score), abs(second_score), 1e-12)  # type: ignore[arg-type]
    return abs(first_score - second_score) <= allowed  # type: ignore[operator]


def unsound(bound: float | None, heldout_valid: bool, heldout_score: float | None) -> bool:
    """A valid held-out score above a proven upper bound: the certificate (or the verifier) is wrong."""
    return bound is not None and heldout_valid and heldout_score > bound + UNSOUND_MARGIN  # type: ignore[operator]


class HeldoutCheck(NamedTuple):
    """What a champion's held-out evaluation means for the run."""

    event: str  # "" (nothing to record), "heldout_unavailable", "heldout_failed" or "heldout_divergence"
    findings: list[dict[str, Any]]  # the comparisons that fired (heldout_divergence)
    baselines: Baselines  # what the next champion is judged against

    @property
    def alarm(self) -> bool:
        return self.event in ("heldout_failed", "heldout_divergence")


def heldout_check(program_id: int, search: float, heldout: tuple[bool, float | None] | None, baselines: Baselines,
                  margin: float, ratio: float, unavailable_noted: bool) -> HeldoutCheck:
    """The held-out alarm's decision for a champion (evolve/alarms.py), fitness larger-better.

    `search`: its search fitness (a certified bound's, if certified); `heldout`: (valid, fitness) of its
    held-out evaluation, None if the problem has no held-out split (said once per run: `unavailable_noted`).
    A failed held-out evaluation is an alarm of its own, neither judged nor a baseline.
    """
    if heldout is None:
        return HeldoutCheck("" if unavailable_noted else "heldout_unavailable", [], baselines)
    valid, fitness = heldout
    if not valid:
        return HeldoutCheck("heldout_failed", [], baselines)
    findings, after = step(baselines, program_id, search, fitness, margin, ratio)
    return HeldoutCheck("heldout_divergence" if findings else "", findings, after)


# ---------------------------------------------------------------------- islands


def admits(signature: str, fitness: float, signatures: Collection[str], archive_size: int,
           worst: float | None) -> bool:
    """Would an island archive take a program in: its behaviour is already there, there is room
    for another cluster, or it beats the worst cluster (`worst`: that cluster's fitness)."""
    return (signature in signatures or len(signatures) < archive_size
            or worst is None or fitness > worst)


def due(evaluations: int, interval: int | None) -> bool:
    """Is a periodic step (migration, island reset, drift check) due after this many evaluations? 0/None: never."""
    return bool(interval) and evaluations % interval == 0  # type: ignore[operator]


def ring(has_best: Sequence[bool]) -> list[tuple[int, int]]:
    """Migration moves (from, to): each island's best goes to the next island around the ring."""
    count = len(has_best)
    return [(i, (i + 1) % count) for i, has in enumerate(has_best) if has and count > 1]


def weakest(bests: Sequence[float | None], fraction: float) -> list[int]:
    """The islands to reset, by their best fitness (None: empty, weakest of all), weakest first:
    the weakest `fraction`, at least one, never all; ties keep the islands' order."""
    if len(bests) < 2:
        return []
    count = min(len(bests) - 1, max(1, int(len(bests) * fraction)))
    lowest = float("-inf")
    return sorted(range(len(bests)), key=lambda i: lowest if bests[i] is None else bests[i])[:count]  # type: ignore[return-value]


def resets(bests: Sequence[float | None], fraction: float,
           choose: Callable[[list[int]], int]) -> list[tuple[int, int]]:
    """Island resets (island, donor), in order: each of the weakest islands is cleared and reseeded with
    the best program of a donor island, which `choose` (the run's RNG) picks among the islands that
    have a best by then (an island reseeded earlier in the same round can donate). An island with no
    possible donor is left as it is."""
    has_best = [best is not None for best in bests]
    plan = []
    for index in weakest(bests, fraction):
        donors = [i for i, has in enumerate(has_best) if has and i != index]
        if not donors:
            continue
        plan.append((index, choose(donors)))
        has_best[index] = True
    return plan


# ---------------------------------------------------------------------- the end of the run


@dataclass(frozen=True)
class Budget:
    evaluations: int
    wall_time: float | None = None
    llm_cost: float | None = None
    target: float | None = None  # fitness that ends the run when reached


@dataclass(frozen=True)
class Spent:
    evaluations: int
    wall_seconds: float
    llm_cost: float
    best: float | None  # the champion's fitness, None if none yet


def exhausted(spent: Spent, budget: Budget, reserved: int = 0) -> str:
    """Which budget is spent ('' if none), counting `reserved` evaluations as done."""
    if spent.evaluations + reserved >= budget.evaluations:
        return "evaluation budget spent"
    if budget.wall_time is not None and spent.wall_seconds >= budget.wall_time:
        return "wall-time budget spent"
    if budget.llm_cost is not None and spent.llm_cost >= budget.llm_cost:
        return "LLM cost budget spent"
    if budget.target is not None and spent.best is not None and spent.best >= budget.target:
        return "target score reached"
    return ""


@dataclass(frozen=True)
class InFlight:
    """Work the run must wait for before it is done; each event returns a new record."""

    tickets: int = 0  # candidates reserved: being proposed, queued or evaluated (not yet stored)
    finishing: int = 0  # stored candidates whose held-out / re-check work is still running
    challenges: int = 0  # challengers queued or being certified

    def ticket_taken(self) -> InFlight:
        return replace(self, tickets=self.tickets + 1)

    def ticket_returned(self) -> InFlight:
        return replace(self, tickets=self.tickets - 1)

    def stored(self) -> InFlight:
        """A candidate was stored: it counts as an evaluation now, and its follow-up work begins."""
        return replace(self, tickets=self.tickets - 1, finishing=self.finishing + 1)

    def finished(self) -> InFlight:
        return replace(self, finishing=self.finishing - 1)

    def challenge_queued(self) -> InFlight:
        return replace(self, challenges=self.challenges + 1)

    def challenge_resolved(self) -> InFlight:
        return replace(self, challenges=self.challenges - 1)

    @property
    def idle(self) -> bool:
        return self.tickets == 0 and self.finishing == 0 and self.challenges == 0


def done(in_flight: InFlight, exhausted_reason: str) -> bool:
    """The run ends when a budget is spent and nothing started is left unfinished."""
    return in_flight.idle and bool(exhausted_reason)
