"""The proposer seam: given a parent and inspirations, propose one edit.

A proposer never raises for a bad proposal: an unreachable endpoint, a garbled
reply or an edit it could not form comes back as a Proposal with `failure`
set, and the engine records it. Proposers do not apply edits or touch the
database; the engine does both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from evolve.edits import Edit


@dataclass(frozen=True)
class ProgramView:
    """What a proposer may see of a stored program: its code and verified search result."""

    id: int
    code: str
    score: float | None
    feedback: str = ""


@dataclass(frozen=True)
class ProposalRequest:
    parent: ProgramView
    inspirations: tuple[ProgramView, ...]
    statement: str  # the problem statement (never held-out cases or verifier source)
    maximize: bool
    island: int
    seed: int  # for the proposer's own randomness, drawn from the run's RNG


@dataclass(frozen=True)
class CallRecord:
    """One request to a model, for accounting (tokens, cost, latency, errors)."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    cost: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class Proposal:
    edit: Edit | None
    proposer: str  # "offline", or the model that wrote the edit
    failure: str = ""  # why no edit came back, when edit is None
    calls: tuple[CallRecord, ...] = field(default_factory=tuple)
    fatal: bool = False  # the failure ends the run (an endpoint that is down, a wrong URL, model or key)


class ProposalCancelled(asyncio.CancelledError):
    """A proposal cut short by a stop; it carries what was done (the LLM attempts made) for the record."""

    def __init__(self, proposal: Proposal) -> None:
        super().__init__()
        self.proposal = proposal


class Proposer(Protocol):
    async def propose(self, request: ProposalRequest) -> Proposal: ...

    async def close(self) -> None: ...

    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None:
        """Told how the proposal fared (for adaptive model choice); may ignore it."""
        ...

    def state(self) -> dict:
        """JSON-serialisable state that must survive resume (e.g. bandit counts)."""
        ...

    def restore(self, state: dict) -> None: ...
