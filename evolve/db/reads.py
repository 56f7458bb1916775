"""Read-only summaries of a run, for `evolve status`, `evolve best` and resume checks.

Mixed into the Store: every SQL statement evolve runs outside the report's read-only
source lives in evolve/db/. Each method returns typed records (evolve/db/records.py)
or the models' rows, never result tuples.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from evolve.db.models import Certificate, Evaluation, Event, IslandMember
from evolve.db.records import ArchiveSummary, ChildCounts, ModelUsage, ProposalCounts, ScoredProgram


class RunReads:
    engine: Engine

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    # ------------------------------------------------------------------ islands

    def archive(self, run_id: int) -> list[IslandMember]:
        """Every active island-archive entry of the run, in storage order."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(IslandMember).where(
                IslandMember.run_id == run_id, IslandMember.active == True)  # noqa: E712
                .order_by(IslandMember.id)).all())  # type: ignore[arg-type]

    def archive_summaries(self, run_id: int) -> dict[int, ArchiveSummary]:
        """Per island: its active archive's size, best fitness and number of distinct signatures."""
        return {island: ArchiveSummary(size, best, clusters) for island, size, best, clusters in self._rows(
            "SELECT island, COUNT(*), MAX(fitness), COUNT(DISTINCT signature) FROM island_members "
            "WHERE run_id=:run AND active GROUP BY island", run=run_id)}

    def child_counts(self, run_id: int) -> dict[int, ChildCounts]:
        """Per island: programs with a parent (the seed excluded), and how many were valid."""
        return {island: ChildCounts(total, valid or 0) for island, total, valid in self._rows(
            "SELECT island, COUNT(*), SUM(CASE WHEN status='valid' THEN 1 ELSE 0 END) FROM programs "
            "WHERE run_id=:run AND parent_id IS NOT NULL GROUP BY island", run=run_id)}

    def proposal_counts(self, run_id: int) -> dict[int, ProposalCounts]:
        return {island: ProposalCounts(total, duplicates or 0) for island, total, duplicates in self._rows(
            "SELECT island, COUNT(*), SUM(CASE WHEN outcome='duplicate' THEN 1 ELSE 0 END) FROM proposals "
            "WHERE run_id=:run GROUP BY island", run=run_id)}

    def improvements(self, run_id: int, maximize: bool) -> dict[int, int]:
        """Per island: children whose first search score beats their parent's by the same evaluator.

        The child's first search score is compared with the parent's first one in that epoch
        (after `evolve rescore`, the parent's rescored one)."""
        better = ">" if maximize else "<"
        return dict(self._rows(
            "SELECT p.island, COUNT(*) FROM programs p "
            "JOIN evaluations pe ON pe.id = (SELECT MIN(id) FROM evaluations WHERE program_id = p.id "
            "AND split='search') "
            "JOIN evaluations qe ON qe.id = (SELECT MIN(id) FROM evaluations WHERE program_id = p.parent_id "
            "AND split='search' AND epoch = pe.epoch) "
            f"WHERE p.run_id=:run AND pe.valid AND qe.valid AND pe.score {better} qe.score "
            "GROUP BY p.island", run=run_id))

    # ------------------------------------------------------------------ evaluations, calls, events

    def evaluations(self, program_id: int, epoch: int) -> list[Evaluation]:
        """A program's evaluations (every split) in one epoch, in the order they were stored."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(Evaluation).where(
                Evaluation.program_id == program_id, Evaluation.epoch == epoch)
                .order_by(Evaluation.id)).all())  # type: ignore[arg-type]

    def latest_heldout(self, program_id: int, epoch: int) -> Evaluation | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Evaluation).where(
                Evaluation.program_id == program_id, Evaluation.split == "heldout", Evaluation.epoch == epoch)
                .order_by(Evaluation.id.desc()).limit(1)).first()  # type: ignore[union-attr,arg-type]

    def llm_usage(self, run_id: int) -> list[ModelUsage]:
        """Calls, errors, tokens and cost per model."""
        return [ModelUsage(model, calls, errors or 0, prompt or 0, completion or 0, cost or 0.0)
                for model, calls, errors, prompt, completion, cost in self._rows(
                    "SELECT model, COUNT(*), SUM(CASE WHEN error != '' THEN 1 ELSE 0 END), SUM(prompt_tokens), "
                    "SUM(completion_tokens), SUM(cost) FROM llm_calls WHERE run_id=:run GROUP BY model ORDER BY model",
                    run=run_id)]

    def event_counts(self, run_id: int) -> dict[str, int]:
        return dict(self._rows("SELECT kind, COUNT(*) FROM events WHERE run_id=:run GROUP BY kind", run=run_id))

    def last_event(self, run_id: int, kind: str) -> dict[str, Any] | None:
        """The data of the latest event of this kind, if any."""
        with Session(self.engine) as session:
            data = session.exec(select(Event.data).where(Event.run_id == run_id, Event.kind == kind)
                                .order_by(Event.id.desc()).limit(1)).first()  # type: ignore[union-attr]
        return json.loads(data) if data is not None else None

    def remeasurement_count(self, run_id: int) -> int:
        return int(self._rows("SELECT COUNT(*) FROM remeasurements WHERE run_id=:run", run=run_id)[0][0])

    # ------------------------------------------------------------------ certification

    def certificate_counts(self, run_id: int) -> dict[tuple[str, str], int]:
        """Certificate rows per (kind, status); empty for a problem that does not certify."""
        return {(kind, status): n for kind, status, n in self._rows(
            "SELECT kind, status, COUNT(*) FROM certificates WHERE run_id=:run GROUP BY kind, status", run=run_id)}

    def unsound_certificates(self, run_id: int) -> list[Certificate]:
        """Certificates whose proven bound a measured score exceeded, oldest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(Certificate).where(
                Certificate.run_id == run_id, Certificate.unsound == True)  # noqa: E712
                .order_by(Certificate.id)).all())  # type: ignore[arg-type]

    def lowest_valid_program(self, run_id: int) -> ScoredProgram | None:
        """The valid program with the lowest search score (the earliest of equals): a certifying
        problem's best search score, which minimizes."""
        rows = self._rows("SELECT id, score FROM programs WHERE run_id=:run AND status='valid' "
                          "ORDER BY score ASC, id LIMIT 1", run=run_id)
        return ScoredProgram(int(rows[0][0]), rows[0][1]) if rows else None
