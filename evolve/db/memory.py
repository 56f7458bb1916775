"""A run kept in dicts: the store seam (evolve/seams.py) without a database.

For tests of the engine and for embedding a short search: nothing is written to disk, so
such a run cannot be resumed, reported or rescored (those read a database). Each call
changes its tables in one go, as the SQL store's transactions do; rows are the same
models the SQL store returns, copied out so a caller's change never reaches the store.
"""

from __future__ import annotations

import json
from itertools import count
from typing import Any, Callable, Iterable, TypeVar

from sqlmodel import SQLModel

from evolve.db.models import (
    Certificate,
    Evaluation,
    Event,
    IslandMember,
    LLMCall,
    Program,
    Proposal,
    Remeasurement,
    Run,
    utcnow,
)
from evolve.db.records import PendingChallenge
from evolve.db.rows import Row
from evolve.db.store import StoreError

M = TypeVar("M", bound=SQLModel)


class MemoryStore:
    url = "memory://"

    def __init__(self) -> None:
        self.tables: dict[type[SQLModel], dict[int, Any]] = {}  # model -> id -> row, in id order
        self._ids: dict[type[SQLModel], count[int]] = {}  # per table, from 1, as SQLite numbers rows

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ tables

    def _add(self, model: type[M], row: Row) -> int:
        record = model(**{"created": utcnow(), **row}) if "created" in model.model_fields else model(**row)
        record.id = next(self._ids.setdefault(model, count(1)))  # type: ignore[attr-defined]
        self.tables.setdefault(model, {})[record.id] = record  # type: ignore[attr-defined]
        return record.id  # type: ignore[attr-defined,no-any-return]

    def _rows(self, model: type[M], where: Callable[[M], bool] = lambda _: True) -> list[M]:
        """Matching rows in id order (the stored ones: the store's own methods may change them)."""
        return [row for row in self.tables.get(model, {}).values() if where(row)]

    @staticmethod
    def _copy(row: M | None) -> M | None:
        return row.model_copy() if row is not None else None

    def _event(self, run_id: int, kind: str, data: dict[str, Any]) -> None:
        self._add(Event, {"run_id": run_id, "kind": kind, "data": json.dumps(data)})

    # ------------------------------------------------------------------ runs

    def create_run(self, run: Run) -> Run:
        run.id = self._add(Run, run.model_dump(exclude={"id"}))
        return run

    def load_run(self, run_id: int | None = None) -> Run:
        runs = self._rows(Run, lambda r: run_id is None or r.id == run_id)
        if not runs:
            raise StoreError("the memory store holds no run" + (f" with id {run_id}" if run_id is not None else ""))
        return runs[0].model_copy()

    def save_run(self, run_id: int, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.tables[Run][run_id], name, value)

    # ------------------------------------------------------------------ results

    def store_result(self, run_state: Row, program: Row, evaluation: Row, proposal: Row | None,
                     calls: Iterable[Row] = (), members: Iterable[Row] = (), point_here: tuple[str, ...] = (),
                     challenge: Row | None = None) -> int:
        program_id = self._add(Program, program)
        self._add(Evaluation, {**evaluation, "program_id": program_id})
        if proposal is not None:
            self._proposal({**proposal, "program_id": program_id}, calls)
        for member in members:
            self._add(IslandMember, {**member, "program_id": program_id})
        if challenge is not None:
            self._add(Certificate, {**challenge, "program_id": program_id})
        self.save_run(program["run_id"], **{**run_state, **{name: program_id for name in point_here}})
        return program_id

    def store_proposal(self, run_state: Row, proposal: Row, calls: Iterable[Row] = ()) -> None:
        self._proposal(proposal, calls)
        self.save_run(proposal["run_id"], **run_state)

    def _proposal(self, proposal: Row, calls: Iterable[Row]) -> None:
        proposal_id = self._add(Proposal, proposal)
        for call in calls:
            self._add(LLMCall, {**call, "proposal_id": proposal_id})

    def store_evaluation(self, evaluation: Row) -> None:
        self._add(Evaluation, evaluation)

    def store_duel(self, run_id: int, rows: list[Row], run_fields: Row, **decision: Any) -> None:
        for row in rows:
            self._add(Remeasurement, row)
        self._event(run_id, "duel", decision)
        self.save_run(run_id, **run_fields)

    def add_event(self, run_id: int, kind: str, **data: Any) -> None:
        self._event(run_id, kind, data)

    # ------------------------------------------------------------------ certification

    def certification_step(self, run_id: int, rows: Iterable[Row], resolve: tuple[int, str] | None = None,
                           rescore: Row | None = None, run: Row | None = None) -> list[int]:
        ids = [self._add(Certificate, row) for row in rows]
        if resolve is not None:
            for challenge in self._rows(Certificate, lambda c: (c.run_id, c.program_id, c.kind, c.status)
                                        == (run_id, resolve[0], "challenge", "pending")):
                challenge.status = resolve[1]
        if rescore is not None:  # a witness's exact score replaces the search score (see models.py)
            program_id, score = rescore["program_id"], rescore["score"]
            for evaluation in self._rows(Evaluation, lambda e: e.program_id == program_id and e.split == "search"
                                         and e.epoch == rescore["epoch"] and e.valid):
                evaluation.score = score
            self.tables[Program][program_id].score = score
            for member in self._rows(IslandMember, lambda m: m.run_id == run_id and m.program_id == program_id):
                member.fitness = rescore["fitness"]
        if run is not None:
            self.save_run(run_id, **run)
        return ids

    def mark_unsound(self, certificate_id: int, run_id: int, **data: Any) -> None:
        self.tables[Certificate][certificate_id].unsound = True
        self._event(run_id, "certificate_unsound", data)

    def pending_challenges(self, run_id: int, epoch: int) -> list[PendingChallenge]:
        return [PendingChallenge(c.id, c.program_id, c.lower) for c in self._rows(  # type: ignore[arg-type]
            Certificate, lambda c: (c.run_id, c.kind, c.status, c.epoch) == (run_id, "challenge", "pending", epoch))]

    def champion_certificate(self, run_id: int, program_id: int) -> Certificate | None:
        proven = self._rows(Certificate, lambda c: (c.run_id, c.program_id, c.kind, c.status)
                            == (run_id, program_id, "certify", "proven"))
        return self._copy(proven[-1] if proven else None)

    def unsound_certificates(self, run_id: int) -> list[Certificate]:
        return [c.model_copy() for c in self._rows(Certificate, lambda c: c.run_id == run_id and c.unsound)]

    # ------------------------------------------------------------------ islands

    def add_members(self, members: list[Row], event_kind: str, run_id: int, **data: Any) -> None:
        for member in members:
            self._add(IslandMember, member)
        self._event(run_id, event_kind, data)

    def reset_island(self, run_id: int, island: int, members: list[Row], **data: Any) -> None:
        for member in self._rows(IslandMember, lambda m: m.run_id == run_id and m.island == island):
            member.active = False
        for member in members:
            self._add(IslandMember, member)
        self._event(run_id, "reset", {"island": island, **data})

    def active_members(self, run_id: int, island: int, limit: int) -> list[tuple[IslandMember, Program, str]]:
        """As the SQL store's join: one entry per search evaluation under the run's evaluator hash."""
        evaluator_hash = self.tables[Run][run_id].evaluator_hash
        found = [(member.model_copy(), self.tables[Program][member.program_id].model_copy(), evaluation.feedback)
                 for member in self._rows(IslandMember,
                                          lambda m: (m.run_id, m.island, m.active) == (run_id, island, True))
                 for evaluation in self._rows(Evaluation, lambda e: e.program_id == member.program_id
                                              and e.split == "search" and e.evaluator_hash == evaluator_hash)]
        return sorted(found, key=lambda entry: -entry[0].fitness)[:limit]

    # ------------------------------------------------------------------ reads

    def program(self, program_id: int) -> Program | None:
        return self._copy(self.tables.get(Program, {}).get(program_id))

    def code_hashes(self, run_id: int) -> dict[str, int]:
        return {p.code_hash: p.id for p in self._rows(Program, lambda p: p.run_id == run_id)}  # type: ignore[misc]

    def events(self, run_id: int, kinds: tuple[str, ...]) -> list[tuple[str, dict]]:
        return [(e.kind, json.loads(e.data))
                for e in self._rows(Event, lambda e: e.run_id == run_id and e.kind in kinds)]

    def evaluations(self, program_id: int, epoch: int) -> list[Evaluation]:
        return [e.model_copy()
                for e in self._rows(Evaluation, lambda e: (e.program_id, e.epoch) == (program_id, epoch))]

    def search_evaluation(self, program_id: int, epoch: int) -> Evaluation | None:
        found = self._rows(Evaluation, lambda e: (e.program_id, e.split, e.epoch) == (program_id, "search", epoch))
        return self._copy(found[0] if found else None)
