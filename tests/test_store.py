"""The store's reads against a real SQLite file and a real PostgreSQL server (tests/postgres_support.py): what `evolve status`, `evolve best`, rescore and resume
ask of a run, written through the same methods and row builders the recorder uses."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from evolve.db import models
from evolve.db.records import ArchiveSummary, ChildCounts, ModelUsage, PendingChallenge, ProposalCounts, ScoredProgram
from evolve.db.rows import (call_rows, certificate_row, challenge_row, evaluation_row, member_row, program_row,
                            proposal_row, remeasurement_row)
from evolve.db.store import IDLE_BEFORE_PING, Store, open_store
from evolve.evaluation import Evaluation
from evolve.problem import Verdict
from evolve.proposers.base import CallRecord


def scored(score: float | None, split: str = "search", cases: tuple[float, ...] = (1.0,)) -> Evaluation:
    if score is None:
        return Evaluation(split, False, None, {"a": Verdict(False, 0.0, {}, "wrong")}, "[a] wrong", 0.1, "h")
    verdicts = {f"c{i}": Verdict(True, s, {"size": i}) for i, s in enumerate(cases)}
    return Evaluation(split, True, score, verdicts, "", 0.2, "h")


STATE = {"status": "running"}  # the run's fields stored with each result (the recorder's counters)


class Run:
    """A run written through the store's own write methods, as the recorder writes one."""

    def __init__(self, url: str) -> None:
        self.store = Store(url, create=True)
        self.run = self.store.create_run(models.Run(problem="p", config_yaml="", evaluator_hash="h"))
        self.id: int = self.run.id  # type: ignore[assignment]

    def program(self, evaluation: Evaluation, island: int = 0, parent: int | None = None, member: bool = True,
                proposal: str | None = "new", calls: tuple[CallRecord, ...] = (), challenge: bool = False) -> int:
        fitness = evaluation.score if evaluation.score is not None else 0.0
        members = [member_row(self.id, island, 0, fitness, evaluation.signature())] if member else []
        for entry in members:
            del entry["program_id"]  # the store fills in the new program's id
        row = None if proposal is None else proposal_row(self.id, island, parent, "m", proposal, "", "")
        return self.store.store_result(
            STATE, program_row(self.id, parent, island, f"code {fitness} {island} {parent}",
                               f"{fitness}-{island}-{parent}", "rewrite", "", "m", evaluation),
            evaluation_row(evaluation, 0, 0), row, call_rows(self.id, calls), members,
            challenge=challenge_row(self.id, 0, evaluation.score) if challenge else None)


@pytest.fixture
def run(database_url: str):
    made = Run(database_url)
    yield made
    made.store.close()


def test_island_summaries_count_archives_children_proposals_and_improvements(run: Run) -> None:
    seed = run.program(scored(1.0), proposal=None)
    better = run.program(scored(2.0, cases=(2.0,)), island=0, parent=seed)
    run.program(scored(0.5, cases=(0.5,)), island=1, parent=seed)
    run.program(scored(None), island=1, parent=better, member=False)
    run.store.store_proposal(STATE, proposal_row(run.id, 1, seed, "m", "duplicate", "same code", ""))

    assert run.store.archive_summaries(run.id) == {0: ArchiveSummary(2, 2.0, 2), 1: ArchiveSummary(1, 0.5, 1)}
    assert run.store.child_counts(run.id) == {0: ChildCounts(1, 1), 1: ChildCounts(2, 1)}
    assert run.store.proposal_counts(run.id) == {0: ProposalCounts(1, 0), 1: ProposalCounts(3, 1)}
    assert run.store.improvements(run.id, maximize=True) == {0: 1}
    assert run.store.improvements(run.id, maximize=False) == {1: 1}
    assert [(m.island, m.program_id, m.fitness) for m in run.store.archive(run.id)] == [
        (0, seed, 1.0), (0, better, 2.0), (1, better + 1, 0.5)]


def test_an_island_reset_leaves_only_the_new_archive_active(run: Run) -> None:
    seed = run.program(scored(1.0), proposal=None)
    child = run.program(scored(3.0, cases=(3.0,)), island=1, parent=seed)
    run.store.reset_island(run.id, 1, [member_row(run.id, 1, seed, 1.0, "1")], from_island=0)
    assert [(m.island, m.program_id) for m in run.store.archive(run.id)] == [(0, seed), (1, seed)]
    assert child not in [m.program_id for m in run.store.archive(run.id)]
    assert run.store.archive_summaries(run.id) == {0: ArchiveSummary(1, 1.0, 1), 1: ArchiveSummary(1, 1.0, 1)}


def test_evaluations_and_heldout_come_back_as_rows_in_order_and_by_epoch(run: Run) -> None:
    seed = run.program(scored(1.0), proposal=None)
    run.store.store_evaluation(evaluation_row(scored(0.9, "heldout"), seed, 0))
    run.store.store_evaluation(evaluation_row(scored(0.8, "heldout"), seed, 0))
    run.store.store_evaluation(evaluation_row(scored(0.7, "heldout"), seed, 1))
    rows = run.store.evaluations(seed, 0)
    assert [(e.split, e.score) for e in rows] == [("search", 1.0), ("heldout", 0.9), ("heldout", 0.8)]
    assert json.loads(rows[0].metrics) == {"c0": {"valid": True, "score": 1.0, "size": 0}}
    heldout = run.store.latest_heldout(seed, 0)
    assert heldout is not None and heldout.score == 0.8
    assert run.store.latest_heldout(seed, 2) is None
    first = run.store.search_evaluation(seed, 0)
    assert first is not None and first.valid and first.score == 1.0


def test_llm_usage_sums_calls_per_model(run: Run) -> None:
    seed = run.program(scored(1.0), proposal=None)
    run.program(scored(2.0, cases=(2.0,)), parent=seed, calls=(
        CallRecord("a", 10, 5, 0.1, 0.01), CallRecord("a", 3, 0, 0.1, 0.0, error="timeout"),
        CallRecord("b", 1, 1, 0.1, 0.5)))
    assert run.store.llm_usage(run.id) == [ModelUsage("a", 2, 1, 13, 5, 0.01), ModelUsage("b", 1, 0, 1, 1, 0.5)]


def test_events_are_counted_and_the_latest_of_a_kind_is_read(run: Run) -> None:
    run.store.add_event(run.id, "session_end", reason="first")
    run.store.add_event(run.id, "session_end", reason="second")
    run.store.add_event(run.id, "reset", island=1)
    assert run.store.event_counts(run.id) == {"session_end": 2, "reset": 1}
    assert run.store.last_event(run.id, "session_end") == {"reason": "second"}
    assert run.store.last_event(run.id, "champion") is None


def test_duels_store_their_remeasurements(run: Run) -> None:
    seed = run.program(scored(1.0), proposal=None)
    child = run.program(scored(2.0, cases=(2.0,)), parent=seed)
    rows = [remeasurement_row(run.id, 0, child, pid, role, 0, scored(score, cases=(score,)))
            for pid, role, score in ((child, "contender", 2.1), (seed, "champion", 0.9))]
    run.store.store_duel(run.id, rows, {"best_program_id": child}, contender_id=child, crowned=True)
    assert run.store.remeasurement_count(run.id) == 2
    assert run.store.load_run(run.id).best_program_id == child


def test_certification_reads(run: Run) -> None:
    seed = run.program(scored(5.0), proposal=None, challenge=True)
    child = run.program(scored(4.0, cases=(4.0,)), parent=seed, challenge=True)
    assert run.store.pending_challenges(run.id, 0) == [
        PendingChallenge(1, seed, 5.0), PendingChallenge(2, child, 4.0)]
    (certified,) = run.store.certification_step(
        run.id, [certificate_row(run.id, seed, 0, "certify", "proven", {"why": "z3"}, bound="9/2", bound_float=4.5,
                                 lower=5.0, solver="z3", calls=1)], (seed, "champion"))
    run.store.mark_unsound(certified, run.id, program_id=seed)
    assert run.store.certificate_counts(run.id) == {("challenge", "champion"): 1, ("challenge", "pending"): 1,
                                                    ("certify", "proven"): 1}
    assert [(p.program_id, p.lower) for p in run.store.pending_challenges(run.id, 0)] == [(child, 4.0)]
    assert run.store.pending_challenges(run.id, 1) == []
    champion = run.store.champion_certificate(run.id, seed)
    assert champion is not None and (champion.bound, champion.bound_float, champion.solver) == ("9/2", 4.5, "z3")
    assert json.loads(champion.detail) == {"why": "z3"}
    assert run.store.champion_certificate(run.id, child) is None
    assert [(c.program_id, c.bound) for c in run.store.unsound_certificates(run.id)] == [(seed, "9/2")]
    assert run.store.lowest_valid_program(run.id) == ScoredProgram(child, 4.0)


def test_a_gate_witness_replaces_the_search_score_and_keeps_the_estimate_in_its_row(run: Run) -> None:
    """What certification changes in the history tables, as evolve/db/models.py documents it."""
    seed = run.program(scored(5.0), proposal=None, challenge=True)
    gate = certificate_row(run.id, seed, 0, "gate", "witness", {}, bound="4", bound_float=4.0, value="21/4",
                           value_float=5.25, lower=5.0, calls=1)
    run.store.certification_step(run.id, [gate], (seed, "witness"),
                                 dict(run_id=run.id, program_id=seed, epoch=0, score=5.25, fitness=-5.25))
    program = run.store.program(seed)
    assert program is not None and program.score == 5.25
    evaluation = run.store.search_evaluation(seed, 0)
    assert evaluation is not None and evaluation.score == 5.25
    assert [m.fitness for m in run.store.archive(run.id)] == [-5.25]
    assert run.store.certificate_counts(run.id) == {("challenge", "witness"): 1, ("gate", "witness"): 1}


def test_an_empty_run_reads_as_empty(run: Run) -> None:
    assert run.store.archive(run.id) == []
    assert run.store.archive_summaries(run.id) == {}
    assert run.store.child_counts(run.id) == {} and run.store.proposal_counts(run.id) == {}
    assert run.store.llm_usage(run.id) == [] and run.store.event_counts(run.id) == {}
    assert run.store.certificate_counts(run.id) == {} and run.store.lowest_valid_program(run.id) is None
    assert run.store.remeasurement_count(run.id) == 0


def test_reads_work_on_a_reopened_database(database_url: str) -> None:
    made = Run(database_url)
    seed = made.program(scored(1.0), proposal=None)
    made.store.close()
    store = open_store(database_url)
    try:
        assert [m.program_id for m in store.archive(made.id)] == [seed]
        assert store.evaluations(seed, 0)[0].score == 1.0
    finally:
        store.close()


def test_a_result_is_stored_whole_or_not_at_all(run: Run) -> None:
    """A result whose last row the database refuses leaves no program, proposal, archive entry or run state
    behind (SQLite: one transaction; PostgreSQL: one statement), and the next result is stored whole."""
    seed = run.program(scored(1.0), proposal=None)
    before = (run.store.code_hashes(run.id), run.store.proposal_counts(run.id), run.store.load_run(run.id).evaluations)
    program = program_row(run.id, seed, 0, "refused", "refused", "rewrite", "", "m", scored(2.0))
    stranger = member_row(run.id + 1000, 0, 0, 2.0, "s")  # no such run: the foreign key refuses it
    del stranger["program_id"]
    with pytest.raises(DBAPIError):
        run.store.store_result({"evaluations": 7}, program, evaluation_row(scored(2.0), 0, 0),
                               proposal_row(run.id, 0, seed, "m", "new", "", ""), [], [stranger],
                               ("best_program_id",), challenge_row(run.id, 0, 2.0))
    assert (run.store.code_hashes(run.id), run.store.proposal_counts(run.id),
            run.store.load_run(run.id).evaluations) == before

    kept = program_row(run.id, seed, 0, "kept", "kept", "rewrite", "", "m", scored(2.0))
    member = member_row(run.id, 0, 0, 2.0, "s")
    del member["program_id"]
    new = run.store.store_result({"evaluations": 7}, kept, evaluation_row(scored(2.0), 0, 0),
                                 proposal_row(run.id, 0, seed, "m", "new", "", ""),
                                 call_rows(run.id, [CallRecord("gpt", 3, 4, 0.5, 0.01)]), [member],
                                 ("best_program_id",), challenge_row(run.id, 0, 2.0))
    stored = run.store.load_run(run.id)
    assert (stored.evaluations, stored.best_program_id, run.store.code_hashes(run.id)["kept"]) == (7, new, new)
    assert run.store.evaluations(new, 0)[0].score == 2.0
    assert run.store.pending_challenges(run.id, 0)[-1].program_id == new
    assert {m.program_id for m in run.store.archive(run.id)} == {seed, new}


def _drop_connections_of(url: str) -> int:
    """The server ends every other session on the database (as a restart or an idle timeout would)."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return len(connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        admin.dispose()


def test_a_server_connection_dropped_while_it_rested_is_replaced_before_a_write(postgres_url: str) -> None:
    made = Run(postgres_url)
    try:
        seed = made.program(scored(1.0), proposal=None)
        assert _drop_connections_of(postgres_url) >= 1
        time.sleep(IDLE_BEFORE_PING + 0.2)  # rested: the pool checks the connection before lending it
        child = made.program(scored(2.0), parent=seed)
        assert made.store.code_hashes(made.id) == {"1.0-0-None": seed, f"2.0-0-{seed}": child}
    finally:
        made.store.close()
