"""The rows a result becomes, built in one place for every writer (the recorder and `evolve rescore`).

Rows are plain dicts: the store inserts them with SQLAlchemy Core on the hot path. A field the
store fills in (the new program's id) is left out or zero, as each builder says.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from evolve.evaluation import Evaluation
    from evolve.proposers.base import CallRecord

Row = dict[str, Any]


def evaluation_row(evaluation: "Evaluation", program_id: int, epoch: int) -> Row:
    """An evaluation with its per-case verdicts as JSON (program_id 0: the store fills it in)."""
    metrics = {case_id: {"valid": v.valid, "score": v.score, **v.metrics} for case_id, v in evaluation.verdicts.items()}
    return dict(program_id=program_id, split=evaluation.split, valid=evaluation.valid, score=evaluation.score,
                metrics=json.dumps(metrics, default=str), feedback=evaluation.feedback, seconds=evaluation.seconds,
                evaluator_hash=evaluation.evaluator_hash, epoch=epoch)


def program_row(run_id: int, parent_id: int | None, island: int, code: str, code_hash: str, edit_kind: str,
                edit: str, proposer: str, evaluation: "Evaluation") -> Row:
    return dict(run_id=run_id, parent_id=parent_id, island=island, code=code, code_hash=code_hash,
                edit_kind=edit_kind, edit=edit, proposer=proposer,
                status="valid" if evaluation.valid else "invalid", score=evaluation.score,
                signature=evaluation.signature())


def proposal_row(run_id: int, island: int, parent_id: int | None, proposer: str, outcome: str, reason: str,
                 edit: str, program_id: int | None = None) -> Row:
    """A proposal, whatever became of it (with a new program, the store fills in its id)."""
    row: Row = dict(run_id=run_id, island=island, parent_id=parent_id, proposer=proposer, outcome=outcome,
                    reason=reason, edit=edit)
    if program_id is not None:
        row["program_id"] = program_id
    return row


def remeasurement_row(run_id: int, epoch: int, contender_id: int, program_id: int, role: str, repeat: int,
                      evaluation: "Evaluation") -> Row:
    """One evaluation of a duel (role: contender | champion), per-case verdicts as an evaluation stores them."""
    return dict(run_id=run_id, epoch=epoch, contender_id=contender_id, program_id=program_id, role=role,
                repeat=repeat, valid=evaluation.valid, score=evaluation.score, seconds=evaluation.seconds,
                metrics=evaluation_row(evaluation, program_id, epoch)["metrics"])


def member_row(run_id: int, island: int, program_id: int, fitness: float, signature: str) -> Row:
    """An active island-archive entry."""
    return dict(run_id=run_id, island=island, program_id=program_id, fitness=fitness, signature=signature,
                active=True)


def challenge_row(run_id: int, epoch: int, lower: float | None, program_id: int | None = None) -> Row:
    """A program queued for certification (pending); without program_id the store fills it in."""
    row: Row = dict(run_id=run_id, epoch=epoch, kind="challenge", status="pending", lower=lower)
    if program_id is not None:
        row["program_id"] = program_id
    return row


def certificate_row(run_id: int, program_id: int, epoch: int, kind: str, status: str, detail: dict[str, Any],
                    **fields: Any) -> Row:
    """One gate or certify call's result."""
    return dict(run_id=run_id, program_id=program_id, epoch=epoch, kind=kind, status=status,
                detail=json.dumps(detail, default=str), **fields)


def call_rows(run_id: int, calls: Iterable["CallRecord"]) -> list[Row]:
    """LLM calls of one proposal (the store fills in the proposal's id)."""
    return [dict(run_id=run_id, model=c.model, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                 latency=c.latency, cost=c.cost, error=c.error) for c in calls]
