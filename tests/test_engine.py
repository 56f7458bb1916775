"""End-to-end searches through the library API, checked against the database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import random
from pathlib import Path

import pytest
from omegaconf import DictConfig

import evolve
from evolve.edits import Rewrite, SearchReplace
from evolve.engine import SearchStalled
from evolve.proposers.base import Proposal, ProposalRequest
from evolve.proposers.offline import OfflineProposer
from evolve.db.store import Store
from tests.conftest import query


@pytest.mark.slow
def test_search_improves_on_the_seed_and_stores_every_evaluation(quick: list[str]) -> None:
    bests: list[float] = []
    result = evolve.run(quick + ["budget.evaluations=60"], on_best=lambda pid, score, code: bests.append(score))
    run_dir = result.run_dir
    assert result.status == "finished" and result.reason == "evaluation budget spent"
    assert result.evaluations == 60
    assert result.best_score > result.seed_score
    assert bests == sorted(bests) and bests[-1] == result.best_score
    # 60 candidates plus the seed, each evaluated once on the search split.
    assert query(run_dir, "SELECT COUNT(*) FROM programs") == [(61,)]
    # ... plus a second evaluation of each champion (re-verification).
    (champions,) = query(run_dir, "SELECT COUNT(*) FROM events WHERE kind='champion'")[0]
    assert champions == len(bests) + 1  # the seed is the first champion
    assert query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE split='search'") == [(61 + champions,)]
    assert query(run_dir, "SELECT COUNT(DISTINCT code_hash) FROM programs") == [(61,)]
    # Every proposal is accounted for, whatever became of it.
    (proposals,) = query(run_dir, "SELECT proposals FROM runs")[0]
    assert query(run_dir, "SELECT COUNT(*) FROM proposals") == [(proposals,)]
    # The best was scored on the held-out case too; every evaluation carries the evaluator hash.
    assert query(run_dir, f"SELECT COUNT(*) FROM evaluations WHERE split='heldout' "
                          f"AND program_id={result.best_program_id}") == [(1,)]
    (run_hash,) = query(run_dir, "SELECT evaluator_hash FROM runs")[0]
    assert query(run_dir, "SELECT DISTINCT evaluator_hash FROM evaluations") == [(run_hash,)]


class SeedRecordingProposer(OfflineProposer):
    """The offline proposer, noting the seed of each request: a draw from the run's RNG."""

    def __init__(self, llm: DictConfig) -> None:
        super().__init__(llm)
        self.seeds: list[int] = []

    async def propose(self, request: ProposalRequest) -> Proposal:
        self.seeds.append(request.seed)
        return await super().propose(request)


def _as_tuples(value: object) -> object:
    """A stored RNG state back from JSON: random.setstate wants tuples, not lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def _words_before(state: tuple, value: int, limit: int = 200) -> int | None:
    """How many 32-bit words a generator in `state` yields before a 63-bit draw equal to `value`, if under `limit`."""
    for skip in range(limit):
        rng = random.Random()
        rng.setstate(state)
        for _ in range(skip):
            rng.getrandbits(32)
        if rng.getrandbits(63) == value:
            return skip
    return None


@pytest.mark.slow
def test_resume_continues_counters_and_budget(quick: list[str]) -> None:
    first = evolve.run(quick + ["budget.evaluations=20"])
    (rng_before,) = query(first.run_dir, "SELECT rng_state FROM runs")[0]
    proposer = SeedRecordingProposer(evolve.compose(quick).llm)
    # One proposer: requests are planned in order, so the first seed is the resumed session's first draw.
    second = evolve.resume(first.run_dir, ["budget.evaluations=35", "search.proposers=1"], proposer=proposer)
    assert second.evaluations == 35
    assert second.seed_score == first.seed_score and second.best_score >= first.best_score
    assert query(first.run_dir, "SELECT COUNT(*) FROM programs WHERE parent_id IS NULL") == [(1,)]
    assert query(first.run_dir, "SELECT COUNT(DISTINCT program_id) FROM evaluations WHERE split='search'") == [(36,)]
    assert query(first.run_dir, "SELECT COUNT(*) FROM events WHERE kind='session_start'") == [(2,)]
    # The RNG continued from the stored state rather than starting again from the seed: the resumed
    # session's first seed is among the next few draws of the stored state. (Started again from
    # `seed`, it would be among the first draws of the first session, long before that state.)
    stored = _as_tuples(json.loads(rng_before))
    assert _words_before(stored, proposer.seeds[0]) is not None
    (rng_after,) = query(first.run_dir, "SELECT rng_state FROM runs")[0]
    assert rng_after != rng_before  # and the state the resumed session reached is stored in turn


@pytest.mark.slow
def test_target_score_and_wall_time_budgets_stop_the_search(quick: list[str], tmp_path: Path) -> None:
    result = evolve.run(quick + ["budget.evaluations=500", "budget.target_score=1.2834"])
    assert result.reason == "target score reached" and result.evaluations < 500
    timed = evolve.run([f"run.dir={tmp_path / 'timed'}", "sandbox=process", "sandbox.allow_root=true", "budget.evaluations=100000",
                        "budget.wall_time=3"])
    assert timed.reason == "wall-time budget spent" and timed.evaluations < 100000


class ScriptedProposer:
    """Cycles through kinds of proposal a real LLM produces, good and bad."""

    def __init__(self) -> None:
        self.count = 0

    async def propose(self, request: ProposalRequest) -> Proposal:
        self.count += 1
        code = request.parent.code
        kind = self.count % 4
        if kind == 0:
            return Proposal(None, "scripted", failure="the reply had no code block")
        if kind == 1:
            return Proposal(Rewrite(code.replace("def construct(n: int) -> dict:", "def construct(n):")), "scripted")
        if kind == 2:
            return Proposal(SearchReplace((("margin = 0.1\n", "margin = 0.2\n"),)), "scripted")
        return Proposal(Rewrite(code.replace("margin = ", f"margin = 0.0{self.count} + 0 * ")), "scripted")

    async def close(self) -> None: ...
    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None: ...
    def state(self) -> dict:
        return {"count": self.count}
    def restore(self, state: dict) -> None: ...


@pytest.mark.slow
def test_rejected_failed_and_duplicate_proposals_are_recorded_with_reasons(quick: list[str]) -> None:
    result = evolve.run(quick + ["budget.evaluations=8", "search.proposers=1", "search.evaluators=1"],
                        proposer=ScriptedProposer())
    rows = query(result.run_dir, "SELECT outcome, reason FROM proposals")
    outcomes = {outcome for outcome, _ in rows}
    assert outcomes == {"new", "failed", "rejected", "duplicate"}
    reasons = {outcome: reason for outcome, reason in rows if outcome != "new"}
    assert reasons["failed"] == "the reply had no code block"
    assert "outside the EVOLVE-BLOCKs" in reasons["rejected"]
    assert "same normalized code" in reasons["duplicate"]
    # A rejected edit is never evaluated: no stored program has the changed signature.
    assert query(result.run_dir, "SELECT COUNT(*) FROM programs WHERE code LIKE '%def construct(n):%'") == [(0,)]
    (state,) = query(result.run_dir, "SELECT proposer_state FROM runs")[0]
    assert json.loads(state)["count"] >= 8


class BrokenProposer(ScriptedProposer):
    async def propose(self, request: ProposalRequest) -> Proposal:
        return Proposal(None, "broken", failure="connection refused by 127.0.0.1:9")


def test_a_proposer_that_always_fails_stops_the_run_with_its_reason(quick: list[str]) -> None:
    with pytest.raises(SearchStalled, match="connection refused"):
        evolve.run(quick, proposer=BrokenProposer())
    run_dir = Path(quick[0].split("=", 1)[1])
    assert query(run_dir, "SELECT status FROM runs") == [("failed",)]
    assert query(run_dir, "SELECT COUNT(*) FROM proposals WHERE outcome='failed'") == [(50,)]


@pytest.mark.slow
def test_runs_sharing_one_database_stay_apart(tmp_path: Path) -> None:
    shared = f"database.url=sqlite:///{tmp_path / 'shared.db'}"
    first = evolve.run([f"run.dir={tmp_path / 'a'}", "sandbox=process", "sandbox.allow_root=true", shared, "budget.evaluations=6"])
    second = evolve.run([f"run.dir={tmp_path / 'b'}", "sandbox=process", "sandbox.allow_root=true", shared, "budget.evaluations=4", "seed=3"])
    resumed = evolve.resume(second.run_dir, ["budget.evaluations=9"])
    assert resumed.evaluations == 9
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        counts = dict(connection.execute(
            "SELECT run_id, COUNT(*) FROM programs WHERE parent_id IS NOT NULL GROUP BY run_id").fetchall())
    assert counts == {1: 6, 2: 9} and first.evaluations == 6


class HeldWrite(Store):
    """The SQL store; the first candidate's write waits until the proposer lets it go."""

    def __init__(self, url: str) -> None:
        super().__init__(url, create=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writing = asyncio.Event()  # set (on the loop) when the first candidate's write has begun
        self.release = threading.Event()

    def store_result(self, run_state, program, *args, **kwargs):  # type: ignore[no-untyped-def]
        if program["parent_id"] is not None and not self.release.is_set():
            self.loop.call_soon_threadsafe(self.writing.set)  # type: ignore[union-attr]
            self.release.wait(30)
        return super().store_result(run_state, program, *args, **kwargs)


class ProposesDuringTheWrite(ScriptedProposer):
    """New programs only; the second proposal returns while the first candidate is being stored."""

    def __init__(self, store: HeldWrite) -> None:
        super().__init__()
        self.store = store

    async def propose(self, request: ProposalRequest) -> Proposal:
        self.count += 1
        self.store.loop = asyncio.get_running_loop()
        if self.count == 2:
            await self.store.writing.wait()
            self.store.release.set()  # the write completes only after this task has asked for its next ticket
        code = request.parent.code.replace("margin = 0.1", f"margin = 0.1 + {self.count}e-4")
        return Proposal(Rewrite(code), "scripted")


@pytest.mark.timeout(60)
def test_proposing_goes_on_when_the_tickets_ran_out_during_a_write(quick: list[str], tmp_path: Path) -> None:
    # While a candidate is stored it counts both as an evaluation and as a ticket: a proposal task
    # asking then finds none left. It must wait for the write, not stop (the run would never end).
    (tmp_path / "run").mkdir()
    store = HeldWrite(f"sqlite:///{tmp_path / 'run' / 'evolve.db'}")
    result = evolve.run(quick + ["budget.evaluations=3", "search.proposers=1", "search.evaluators=1",
                                 "verification.recheck_champion=false"],
                        proposer=ProposesDuringTheWrite(store), store=store)
    assert result.status == "finished" and result.reason == "evaluation budget spent"
    assert result.evaluations == 3
    assert query(result.run_dir, "SELECT outcome, COUNT(*) FROM proposals GROUP BY outcome") == [("new", 3)]
