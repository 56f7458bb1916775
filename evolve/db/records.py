"""Typed records the store returns for its summaries (whole table rows come back as the models' classes).

Callers read fields by name; none of them sees a column list or a result tuple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class ArchiveSummary:
    """One island's archive as it stands (active members only)."""

    size: int
    best_fitness: float
    clusters: int  # distinct score signatures


@dataclass(frozen=True)
class ChildCounts:
    """Programs proposed on one island (the seed excluded) and how many were valid."""

    programs: int
    valid: int


@dataclass(frozen=True)
class ProposalCounts:
    proposals: int
    duplicates: int


@dataclass(frozen=True)
class ModelUsage:
    """LLM calls to one model, summed over a run."""

    model: str
    calls: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass(frozen=True)
class ScoredProgram:
    program_id: int
    score: float | None


class PendingChallenge(NamedTuple):
    """A challenger queued for certification and not yet dealt with."""

    challenge_id: int
    program_id: int
    lower: float | None  # its search score when it was queued
