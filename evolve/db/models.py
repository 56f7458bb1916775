"""Database tables (sqlmodel): portable across SQLite and PostgreSQL.

`programs` and `evaluations` are history: written once, and never changed
but for one documented case below. `proposals`, `llm_calls`, `events` and
`remeasurements` are appended to only.
`island_members` is the selection archive (what each island holds now), so a
resumed run rebuilds its islands from it without scanning the history.
`runs` carries everything else resume needs: counters, RNG state, spend.
`certificates` holds a certifying verifier's results (gate and certify calls) and
the challengers still waiting for them. `remeasurements` holds the repeated,
interleaved evaluations that decide whether a measured score makes a champion.

What is rewritten in place, and why (every UPDATE is in evolve/db/store.py):
- `programs.score` and the valid search-split `evaluations.score` of that
  program in that epoch, when a certifying verifier's gate finds a witness
  (`Store.certification_step`, rescore=...): the search score of a certifying
  problem is an optimistic estimate, and the witness's exact worst-case value is
  the program's true score, which selection and `evolve status` must use. Nothing
  is lost: the estimate stays in the `lower` column of the program's `challenge`
  and `gate` certificate rows (the gate row also holds the exact `value`), and the
  evaluation's per-case `metrics` are left as the verifier first reported them.
  Making this append-only would move every reader of a score to a second table;
  the in-place update with the estimate kept elsewhere was the smaller honest change.
- `island_members.fitness` (the same witness) and `island_members.active` (an
  island reset, a rescore's new epoch): the archive is current state, not history.
- `certificates.status` of a `challenge` row, from pending to its outcome, and
  `certificates.unsound`, set when a measured score exceeds the proven bound.
- `runs`: counters, RNG and proposer state, best program, evaluator identity and epoch.
- `evolve_meta.schema_version`, when an older database is upgraded.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4  # older databases are brought up to it step by step (evolve/db/migrations.py)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Meta(SQLModel, table=True):
    __tablename__ = "evolve_meta"
    key: str = Field(primary_key=True)
    value: str


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    id: Optional[int] = Field(default=None, primary_key=True)
    problem: str
    created: datetime = Field(default_factory=utcnow)
    config_yaml: str = Field(sa_column=Column(Text))
    evaluator_hash: str
    evaluator_parts: str = Field(default="{}", sa_column=Column(Text))  # JSON: part -> hash
    epoch: int = 0  # evaluator epoch: `evolve rescore` starts a new one; epochs are never mixed
    status: str = "running"  # running | finished | interrupted | failed
    seed_program_id: Optional[int] = None
    seed_score: Optional[float] = None
    best_program_id: Optional[int] = None
    best_score: Optional[float] = None
    evaluations: int = 0  # candidate evaluations on the search split (the budget's unit)
    proposals: int = 0  # proposal rows written
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    wall_seconds: float = 0.0  # summed over every session of the run
    llm_cost: float = 0.0
    rng_state: str = Field(default="", sa_column=Column(Text))  # JSON
    proposer_state: str = Field(default="{}", sa_column=Column(Text))  # JSON


class Program(SQLModel, table=True):
    __tablename__ = "programs"
    __table_args__ = (Index("ix_programs_run_hash", "run_id", "code_hash"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    parent_id: Optional[int] = Field(default=None, foreign_key="programs.id")
    island: int
    code: str = Field(sa_column=Column(Text))
    code_hash: str
    edit_kind: str = ""  # seed | rewrite | diff
    edit: str = Field(default="", sa_column=Column(Text))  # what the proposer returned
    proposer: str = ""
    status: str  # valid | invalid
    score: Optional[float] = None  # search-split score (None when invalid)
    signature: str = ""  # per-case score signature (diversity clusters)
    created: datetime = Field(default_factory=utcnow)


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_program_split", "program_id", "split"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    program_id: int = Field(foreign_key="programs.id")
    split: str  # search | heldout
    valid: bool
    score: Optional[float] = None
    metrics: str = Field(default="{}", sa_column=Column(Text))  # JSON: per-case verdicts
    feedback: str = Field(default="", sa_column=Column(Text))
    seconds: float = 0.0
    evaluator_hash: str
    epoch: int = 0
    created: datetime = Field(default_factory=utcnow)


class Proposal(SQLModel, table=True):
    """Every proposal, whatever became of it: new program, duplicate, rejected edit, failure."""

    __tablename__ = "proposals"
    __table_args__ = (Index("ix_proposals_run_island", "run_id", "island"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    island: int
    parent_id: Optional[int] = Field(default=None, foreign_key="programs.id")
    proposer: str = ""
    outcome: str  # new | duplicate | rejected | failed | cancelled (the run stopped first)
    reason: str = Field(default="", sa_column=Column(Text))
    edit: str = Field(default="", sa_column=Column(Text))
    program_id: Optional[int] = Field(default=None, foreign_key="programs.id")
    created: datetime = Field(default_factory=utcnow)


class IslandMember(SQLModel, table=True):
    __tablename__ = "island_members"
    __table_args__ = (Index("ix_members_run_island_active", "run_id", "island", "active", "fitness"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    island: int
    program_id: int = Field(foreign_key="programs.id")
    fitness: float  # larger is better, whatever the objective
    signature: str
    active: bool = True


class LLMCall(SQLModel, table=True):
    __tablename__ = "llm_calls"
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    proposal_id: Optional[int] = Field(default=None, foreign_key="proposals.id")
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    cost: float = 0.0
    error: str = Field(default="", sa_column=Column(Text))
    created: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Migrations, resets, alarms, verifier faults, sessions started and stopped."""

    __tablename__ = "events"
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    kind: str
    data: str = Field(default="{}", sa_column=Column(Text))  # JSON
    created: datetime = Field(default_factory=utcnow)


class Certificate(SQLModel, table=True):
    """A certifying verifier's work on one program.

    kind `challenge`: the program was queued for certification (status pending until
    it is dealt with, then the outcome); kind `gate` / `certify`: one call's result.
    """

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_run_kind_status", "run_id", "kind", "status"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    program_id: int = Field(foreign_key="programs.id", index=True)
    epoch: int = 0
    kind: str  # challenge | gate | certify
    status: str  # challenge: pending | <outcome>; gate: witness | proven | unknown; certify: proven | uncertified
    bound: Optional[str] = None  # exact: the proven bound (certify), the bound tested (gate)
    bound_float: Optional[float] = None
    value: Optional[str] = None  # exact: a gate witness's worst-case value
    value_float: Optional[float] = None
    lower: Optional[float] = None  # the search score (optimistic lower estimate)
    width: Optional[float] = None  # bound - lower, as the verifier reports it
    calls: int = 0
    seconds: float = 0.0
    solver: str = ""
    detail: str = Field(default="{}", sa_column=Column(Text))  # JSON
    unsound: bool = False  # a measured (held-out) score exceeded this proven bound
    created: datetime = Field(default_factory=utcnow)


class Remeasurement(SQLModel, table=True):
    """One evaluation of a duel: a contender (its measured score beat the champion's once) and the
    champion, evaluated again in interleaved pairs; see evolve/champions.py."""

    __tablename__ = "remeasurements"
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    epoch: int = 0
    contender_id: int = Field(foreign_key="programs.id")  # which duel
    program_id: int = Field(foreign_key="programs.id")  # whose evaluation this is
    role: str  # contender | champion
    repeat: int  # pair number, 0-based
    valid: bool
    score: Optional[float] = None
    metrics: str = Field(default="{}", sa_column=Column(Text))  # JSON: per-case verdicts
    seconds: float = 0.0
    created: datetime = Field(default_factory=utcnow)
