"""The in-memory store serves the engine as the SQL one does: a whole search through `evolve.run`, and the
same writes read back alike from both."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

import evolve
from evolve import seams
from evolve.db import models
from evolve.db.memory import MemoryStore
from evolve.db.rows import certificate_row, evaluation_row, member_row
from evolve.db.store import Store
from evolve.evaluation import Evaluator
from evolve.problem import load_problem
from evolve.sandbox.bwrap import BwrapSandbox
from evolve.sandbox.docker import DockerSandbox
from evolve.sandbox.factory import limits_from
from evolve.sandbox.process import ProcessSandbox
from tests.conftest import query
from tests.test_store import STATE, Run, scored


@pytest.mark.slow
def test_a_search_runs_on_the_memory_store_and_writes_no_database(quick: list[str], tmp_path: Path) -> None:
    store = MemoryStore()
    result = evolve.run(quick + ["budget.evaluations=12"], store=store)
    assert result.status == "finished" and result.evaluations == 12
    assert result.best_score >= result.seed_score
    run = store.load_run()
    assert (run.status, run.evaluations, run.best_program_id) == ("finished", 12, result.best_program_id)
    programs = store.tables[models.Program]
    assert len(programs) == 13  # the seed and one new program per evaluation
    assert len({p.code_hash for p in programs.values()}) == 13
    assert [kind for kind, _ in store.events(run.id, ("session_start", "session_end"))] == [  # type: ignore[arg-type]
        "session_start", "session_end"]
    assert store.search_evaluation(result.best_program_id, 0).score == result.best_score  # type: ignore[union-attr]
    assert not (tmp_path / "run" / "evolve.db").exists()


class MemoryRun(Run):
    def __init__(self) -> None:  # noqa: D107 - the same writes as tests/test_store.py's Run, into memory
        self.store = MemoryStore()  # type: ignore[assignment]
        self.run = self.store.create_run(models.Run(problem="p", config_yaml="", evaluator_hash="h"))
        self.id = self.run.id  # type: ignore[assignment]


def history(made: Run) -> list[object]:
    """Everything the engine reads back, after the same writes."""
    store = made.store
    seed = made.program(scored(5.0, cases=(5.0,)), proposal=None, challenge=True)
    child = made.program(scored(4.0, cases=(4.0,)), island=1, parent=seed, challenge=True)
    made.program(scored(None), island=1, parent=child, member=False, proposal="new")
    store.store_proposal(STATE, dict(run_id=made.id, island=0, parent_id=seed, proposer="m", outcome="duplicate",
                                     reason="", edit=""))
    store.store_evaluation(evaluation_row(scored(4.5, "heldout"), seed, 0))
    (certified,) = store.certification_step(
        made.id, [certificate_row(made.id, seed, 0, "certify", "proven", {}, bound="9/2", bound_float=4.5)],
        (seed, "champion"), run={"best_program_id": seed})
    store.certification_step(made.id, [certificate_row(made.id, child, 0, "gate", "witness", {}, value_float=4.25)],
                             (child, "witness"), dict(run_id=made.id, program_id=child, epoch=0, score=4.25,
                                                      fitness=-4.25))
    store.mark_unsound(certified, made.id, program_id=seed)
    store.add_members([member_row(made.id, 0, child, -4.25, "4.25")], "migration", made.id, moves=[[0, child]])
    store.reset_island(made.id, 1, [member_row(made.id, 1, seed, 5.0, "5")], from_island=0)
    store.add_event(made.id, "champion", program_id=seed, epoch=0)
    store.certification_step(made.id, [], None, run={"best_score": 4.5})
    run = store.load_run(made.id)

    def members(island: int) -> list[tuple]:
        return [(m.program_id, m.fitness, p.code, feedback)
                for m, p, feedback in store.active_members(made.id, island, 9)]

    return [
        (run.best_program_id, run.best_score, run.status),
        members(0), members(1),
        store.code_hashes(made.id),
        store.events(made.id, ("champion", "migration", "reset", "certificate_unsound")),
        [(e.split, e.score, e.valid, e.metrics) for e in store.evaluations(seed, 0)],
        [(e.split, e.score) for e in store.evaluations(child, 0)],
        store.search_evaluation(child, 0).score,  # type: ignore[union-attr]
        store.program(child).score,  # type: ignore[union-attr]
        [(c.program_id, c.lower) for c in store.pending_challenges(made.id, 0)],
        store.champion_certificate(made.id, seed).bound,  # type: ignore[union-attr]
        [(c.program_id, c.bound) for c in store.unsound_certificates(made.id)],
        store.program(999),
    ]


def test_the_memory_store_reads_back_what_the_sql_store_does(database_url: str) -> None:
    sql = Run(database_url)  # on SQLite and on PostgreSQL
    try:
        expected = history(sql)
    finally:
        sql.store.close()
    assert history(MemoryRun()) == expected
    assert expected[6] == [("search", 4.25)] and expected[9] == []  # the witness replaced it; nothing pending


def test_a_memory_store_row_changed_by_its_reader_stays_as_stored() -> None:
    made = MemoryRun()
    seed = made.program(scored(1.0), proposal=None)
    made.store.program(seed).score = 99.0  # type: ignore[union-attr]
    made.store.load_run().status = "failed"
    assert made.store.program(seed).score == 1.0  # type: ignore[union-attr]
    assert made.store.load_run().status == "running"


@pytest.mark.parametrize("implementation", [Store, MemoryStore])
def test_each_store_has_every_method_of_the_store_seam(implementation: type) -> None:
    assert_implements(seams.Store, implementation)


def test_the_evaluator_and_sandboxes_implement_their_seams() -> None:
    assert_implements(seams.Evaluator, Evaluator)
    for sandbox in (ProcessSandbox, BwrapSandbox, DockerSandbox):
        assert_implements(seams.Sandbox, sandbox)
    assert ProcessSandbox().identity.startswith("process:python-")


def assert_implements(protocol: type, implementation: type) -> None:
    """Same methods with the same parameters; attributes declared (class-level or set in __init__)."""
    for name, member in vars(protocol).items():
        if name.startswith("_"):
            continue
        if callable(member):
            assert list(inspect.signature(member).parameters) == list(
                inspect.signature(getattr(implementation, name)).parameters), (implementation, name)
    init = inspect.getsource(implementation.__init__) if "__init__" in vars(implementation) else ""
    for name in getattr(protocol, "__annotations__", {}):
        assert hasattr(implementation, name) or f"self.{name} =" in init or any(
            f"self.{name} =" in inspect.getsource(base.__init__) for base in implementation.__mro__[1:]
            if "__init__" in vars(base)), (implementation, name)


@pytest.mark.slow
def test_a_given_sandbox_and_evaluator_score_the_run_and_resume_continues_it(quick: list[str]) -> None:
    cfg = evolve.compose(quick + ["budget.evaluations=6"])
    sandbox = ProcessSandbox()
    evaluator = Evaluator(load_problem(cfg), sandbox, limits_from(cfg), "given-evaluator")
    first = evolve.run(cfg, sandbox=sandbox, evaluator=evaluator)
    assert first.status == "finished" and first.evaluations == 6
    assert query(first.run_dir, "SELECT evaluator_hash FROM runs") == [("given-evaluator",)]
    assert query(first.run_dir, "SELECT DISTINCT evaluator_hash FROM evaluations") == [("given-evaluator",)]
    sandbox_part = json.loads(query(first.run_dir, "SELECT evaluator_parts FROM runs")[0][0])["sandbox"]
    assert sandbox_part == sandbox.identity
    # Resumed with the configured parts: the islands come back (their search evaluations carry the run's hash).
    second = evolve.resume(first.run_dir, ["budget.evaluations=9"])
    assert second.evaluations == 9 and second.best_score >= first.best_score
    assert query(first.run_dir, "SELECT COUNT(*) FROM programs WHERE parent_id IS NULL") == [(1,)]
    assert query(first.run_dir, "SELECT DISTINCT evaluator_hash FROM evaluations") == [("given-evaluator",)]
