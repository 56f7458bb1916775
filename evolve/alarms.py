"""The held-out alarm: the search score rises, the held-out score does not follow.

Selection only ever sees search scores. Each new champion is also scored on the
held-out cases and compared with two baselines: the first champion of the epoch
(the seed, in a fresh run) and the previous champion. The alarm fires from the
first champion whose search score improved on a baseline while its held-out
score

- got worse by more than `margin` ("worse"), or
- improved by less than 1/`ratio` of the search gain, counting any held-out gain
  below `margin` as none ("stalled"): a shortcut that arrives in one step.

Gains are relative (a fraction of the larger of the two scores), so the settings
mean the same on every problem. A champion whose held-out evaluation failed is
its own event (`heldout_failed`), not a score: it is neither judged nor used as
a baseline. `judge` is the decision and `step` the move from one champion to the
next, pure functions of immutable `Baselines`; the recorder keeps a run's baselines
and evolve/policy.py's `heldout_check` says which event a champion makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

WORSE, STALLED = "worse", "stalled"


@dataclass(frozen=True)
class Standing:
    """A champion's scores as fitness (larger is better)."""

    program_id: int
    search: float
    heldout: float


def relative_gain(new: float, old: float) -> float:
    """(new - old) over the larger magnitude: in [-2, 2], 0 when both are 0."""
    scale = max(abs(new), abs(old))
    return 0.0 if scale == 0 else (new - old) / scale


def judge(new: Standing, baselines: dict[str, Standing], margin: float, ratio: float) -> list[dict[str, Any]]:
    """The comparisons of `new` with each baseline that raise the alarm (empty: no alarm)."""
    findings = []
    for name, base in baselines.items():
        if base.program_id == new.program_id:
            continue
        search_gain = relative_gain(new.search, base.search)
        heldout_gain = relative_gain(new.heldout, base.heldout)
        if search_gain <= 0:
            continue
        if heldout_gain < -margin:
            rule = WORSE
        elif search_gain > ratio * max(heldout_gain, margin):
            rule = STALLED
        else:
            continue
        findings.append({"baseline": name, "baseline_program": base.program_id, "rule": rule,
                         "search_gain": search_gain, "heldout_gain": heldout_gain,
                         "search": [base.search, new.search], "heldout": [base.heldout, new.heldout]})
    return findings


def describe(program_id: int, findings: list[dict[str, Any]], evaluations: int | None = None) -> str:
    """One line for `evolve status` and the run summary: what was compared, and what to do."""
    parts = []
    for f in findings:
        held = (f"fell {-f['heldout_gain']:.1%}" if f["rule"] == WORSE
                else f"moved only {f['heldout_gain']:+.1%}")
        parts.append(f"vs {f['baseline']} (program {f['baseline_program']}): search improved "
                     f"{f['search_gain']:.1%}, held-out {held}")
    when = f" (after {evaluations} evaluations)" if evaluations is not None else ""
    return (f"held-out alarm at champion {program_id}{when}: " + "; ".join(parts) + ". The search may be exploiting "
            "something particular to the search cases (a shortcut, or tuning to their kind): compare the "
            "programs (`evolve best`), and add search cases like the held-out ones or fix the verifier before "
            "trusting this champion")


@dataclass(frozen=True)
class Baselines:
    """The baselines of one epoch: its first champion with a held-out score, and the latest one."""

    first: Standing | None = None
    previous: Standing | None = None
    seed_program_id: int | None = None  # names the first baseline "the seed" when it is the seed

    def named(self) -> dict[str, Standing]:
        named = {}
        if self.first is not None:
            named["the seed" if self.first.program_id == self.seed_program_id else "the first champion"] = self.first
        if self.previous is not None and self.previous != self.first:
            named["the previous champion"] = self.previous
        return named


def step(baselines: Baselines, program_id: int, search: float, heldout: float | None, margin: float,
         ratio: float) -> tuple[list[dict[str, Any]], Baselines]:
    """Judge a champion with a held-out score (None: failed, not judged, not a baseline): the
    findings, and the baselines the next champion is judged against."""
    if heldout is None:
        return [], baselines
    new = Standing(program_id, search, heldout)
    findings = judge(new, baselines.named(), margin, ratio)
    return findings, replace(baselines, first=baselines.first or new, previous=new)


class HeldoutAlarm:
    """`step` over a sequence of champions, keeping the baselines between them."""

    def __init__(self, margin: float, ratio: float, seed_program_id: int | None = None) -> None:
        self.margin = margin
        self.ratio = ratio
        self.baselines = Baselines(seed_program_id=seed_program_id)

    def observe(self, program_id: int, search: float, heldout: float | None) -> list[dict[str, Any]]:
        findings, self.baselines = step(self.baselines, program_id, search, heldout, self.margin, self.ratio)
        return findings
