"""`evolve rescore RUN_DIR`: start a new evaluator epoch after the verifier changed.

The run's archive (every program its islands hold, and the seed) is evaluated
again under the current verifier, data and settings. The new scores form a new
epoch: the islands are rebuilt from them alone, the best is recomputed from
them alone, and every new evaluation row carries the new epoch and evaluator
hash. Scores of different epochs are never compared or mixed in selection.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from evolve.db import models
from evolve.db.rows import challenge_row, evaluation_row, member_row
from evolve.db.store import Store
from evolve.evaluation import Evaluation, Evaluator
from evolve.config import reread_problem, to_yaml
from evolve.problem import SEARCH, compare_identity, identity_hash, load_problem
from evolve.problem_source import bundled_now, find_problem_file, locate, old_layout_name
from evolve.sandbox.factory import limits_from, make_sandbox
from evolve.runlock import RunLocked, run_lock
from evolve.settings import settings_from
from evolve.session import CONFIG_FILE, RunError, open_run, sandbox_label, saved_config


RECERTIFY = 3  # a certifying problem's best programs queued for certification in the new epoch


@dataclass(frozen=True)
class RescoreResult:
    epoch: int
    programs: int
    valid: int
    best_score: float | None
    changes: str


async def rescore_run(run_dir: Path) -> RescoreResult:
    cfg = saved_config(run_dir)
    old_layout = old_layout_name(cfg.problem)  # a run from before problems became one folder: bring it over
    source = bundled_now(old_layout, run_dir) if old_layout else find_problem_file(cfg.problem, run_dir)
    if source is not None:  # edits to problem.yaml (settings, case_timeout) are adopted here, on purpose
        cfg.problem = locate(reread_problem(cfg.problem, source), source, run_dir)
    note = f"the problem's files moved into problems/{old_layout}/" if old_layout else ""
    with run_lock(run_dir):  # never while a search is writing to the run
        result = await _rescore(run_dir, cfg, note)
        (run_dir / CONFIG_FILE).write_text(to_yaml(cfg))  # the run now goes on under what it was rescored with
        return result


async def _rescore(run_dir: Path, config: DictConfig, note: str = "") -> RescoreResult:
    cfg = settings_from(config)  # the core's form; the DictConfig stays the caller's, to store
    problem = load_problem(cfg)
    store, run = open_run(run_dir, cfg)
    try:  # on a database server, never while a copy of the run directory elsewhere drives the run
        store.hold_run(run.id)  # type: ignore[arg-type]
    except RunLocked:
        store.close()
        raise
    sandbox = make_sandbox(cfg, sandbox_label(run_dir))
    try:
        parts = problem.identity_parts(sandbox.identity)
        diff = compare_identity(json.loads(run.evaluator_parts), parts)
        if not diff.changes and diff.sandbox is None:
            raise RunError("the evaluator is unchanged since this run's current epoch; there is nothing to rescore")
        # Salted with the epoch: going back to an earlier epoch's verifier still makes a hash of its own,
        # so one epoch's evaluations are never taken for another's.
        new_hash = identity_hash({**parts, "epoch": str(run.epoch + 1)})
        if run.seed_program_id is None:
            raise RunError(f"{run_dir} has no evaluated program yet; start it afresh instead of rescoring")
        changes = "; ".join(filter(None, [note, diff.changes,
                                          diff.sandbox and "sandbox: {} -> {}".format(*diff.sandbox)]))
        epoch = run.epoch + 1
        islands = _archive(store, run)
        program_ids = sorted({pid for members in islands.values() for pid, _ in members} | {run.seed_program_id})
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), new_hash, cfg.verification.verifier_timeout)
        slots = asyncio.Semaphore(cfg.search.evaluators)

        async def rescore(program_id: int) -> tuple[int, Evaluation]:
            program = store.program(program_id)
            assert program is not None
            async with slots:
                return program_id, await evaluator.evaluate(program.code, SEARCH)

        results = dict(await asyncio.gather(*(rescore(pid) for pid in program_ids)))
    finally:
        await sandbox.close()
    rows = [evaluation_row(e, pid, epoch) for pid, e in results.items()]
    members = [member_row(run.id, island, pid, problem.fitness(results[pid].score),  # type: ignore[arg-type]
                          results[pid].signature())
               for island, entries in islands.items() for pid, _ in entries if results[pid].valid]
    valid = {pid: e for pid, e in results.items() if e.valid}
    best_id = max(valid, key=lambda pid: problem.fitness(valid[pid].score)) if valid else None  # type: ignore[arg-type]
    seed = results.get(run.seed_program_id)  # type: ignore[arg-type]
    challenges = None
    if problem.certifying:
        # Certificates belong to the old verifier: the new epoch has no certified champion until
        # the next session certifies its best programs, queued here as pending challengers.
        ranked = sorted(valid, key=lambda pid: problem.fitness(valid[pid].score), reverse=True)  # type: ignore[arg-type]
        challenges = [challenge_row(run.id, epoch, valid[pid].score, program_id=pid)  # type: ignore[arg-type]
                      for pid in ranked[:RECERTIFY]]
        best_id = None
    store.start_epoch(run.id, rows, members, epoch=epoch, evaluator_hash=new_hash,  # type: ignore[arg-type]
                      evaluator_parts=json.dumps(parts), best_program_id=best_id,
                      best_score=valid[best_id].score if best_id is not None else None,
                      seed_score=seed.score if seed is not None else None, changes=changes, challenges=challenges)
    store.close()
    return RescoreResult(epoch, len(results), len(valid), valid[best_id].score if best_id is not None else None,
                         changes)


def _archive(store: Store, run: models.Run) -> dict[int, list[tuple[int, float]]]:
    """Active island members, by island."""
    islands: dict[int, list[tuple[int, float]]] = {}
    for member in store.archive(run.id):  # type: ignore[arg-type]
        islands.setdefault(member.island, []).append((member.program_id, member.fitness))
    return islands
