"""Per-candidate engine overhead with 1k, 10k and 100k programs in the database.

Measured per candidate: parent selection and the proposal request (Engine._plan),
applying the edit and hashing it (Engine._accept), and storing the result with
the run's state in one transaction (Recorder.record_program). Proposal and
evaluation time are excluded: the proposer's edit and the verified Evaluation
are made beforehand.

    python bench/engine_overhead.py [--sizes 1000 10000 100000] [--candidates 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from evolve.config import compose_config  # noqa: E402
from evolve.settings import settings_from  # noqa: E402
from evolve.db import models  # noqa: E402
from evolve.db.store import Store, sqlite_url  # noqa: E402
from evolve.edits import Rewrite, normalized_hash  # noqa: E402
from evolve.engine import Engine  # noqa: E402
from evolve.evaluation import Evaluation  # noqa: E402
from evolve.problem import Verdict, load_problem  # noqa: E402
from evolve.proposers.base import Proposal  # noqa: E402
from evolve.recorder import Recorder  # noqa: E402


def populate(store: Store, run_id: int, seed_code: str, size: int, islands: int) -> None:
    """`size` evaluated programs spread over the islands, inserted in bulk."""
    rng = random.Random(size)
    programs, evaluations, members = [], [], []
    for pid in range(1, size + 1):
        score = rng.random() * 2
        code = seed_code.replace("margin = 0.1", f"margin = {rng.random():.12f}")
        island = pid % islands
        signature = f"{score:.6g}"
        programs.append(dict(id=pid, run_id=run_id, parent_id=None if pid == 1 else rng.randrange(1, pid),
                             island=island, code=code, code_hash=normalized_hash(code) if pid < 50 else f"h{pid}",
                             edit_kind="rewrite", edit="", proposer="bench", status="valid", score=score,
                             signature=signature, created=models.utcnow()))
        evaluations.append(dict(program_id=pid, split="search", valid=True, score=score, metrics="{}",
                                feedback="ok", seconds=0.1, evaluator_hash="bench", created=models.utcnow()))
        members.append(dict(run_id=run_id, island=island, program_id=pid, fitness=score, signature=signature,
                            active=True))
    with store.engine.begin() as connection:
        for table, rows in ((models.Program, programs), (models.Evaluation, evaluations),
                            (models.IslandMember, members)):
            for start in range(0, len(rows), 5000):
                connection.execute(insert(table), rows[start:start + 5000])
    store.save_run(run_id, seed_program_id=1, best_program_id=1, best_score=0.0, seed_score=0.0, evaluations=size)


async def measure(size: int, candidates: int, workdir: Path) -> list[float]:
    cfg = settings_from(compose_config(["sandbox=process", f"budget.evaluations={size + candidates + 1}"]))
    problem = load_problem(cfg)
    store = Store(sqlite_url(workdir), create=True)
    run = store.create_run(models.Run(problem=problem.name, config_yaml="", evaluator_hash="bench"))
    populate(store, run.id, problem.seed_code, size, cfg.search.islands)  # type: ignore[arg-type]
    run = store.load_run()
    recorder = Recorder(cfg, problem, store, run)
    engine = Engine(cfg, problem, proposer=None, evaluator=None, recorder=recorder)  # type: ignore[arg-type]
    rng = random.Random(0)
    timings = []
    for index in range(candidates):
        score = rng.random() * 2
        evaluation = Evaluation("search", True, score, {"n26": Verdict(True, score)}, "ok", 0.1, "bench")
        started = time.perf_counter()
        work = engine._plan()
        edit = Rewrite(work.parent.code.replace("margin = ", f"margin = 0.{index:06d} + 0 * ", 1))
        candidate = await engine._accept(work, Proposal(edit, "bench"))
        assert candidate is not None
        await recorder.record_program(work.island, work.parent, candidate.proposal, candidate.code,
                                      candidate.code_hash, candidate.diff, evaluation)
        await recorder.maybe_migrate_or_reset()
        timings.append((time.perf_counter() - started) * 1000)
        engine.pending_hashes.discard(candidate.code_hash)
    await recorder.finish("finished")
    store.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--candidates", type=int, default=1000)
    args = parser.parse_args()
    results = {}
    print(f"{'programs':>9} {'median ms':>10} {'p99 ms':>8} {'mean ms':>8}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as directory:
            timings = asyncio.run(measure(size, args.candidates, Path(directory)))
        timings.sort()
        median = statistics.median(timings)
        p99 = timings[int(len(timings) * 0.99) - 1]
        results[size] = {"median_ms": round(median, 3), "p99_ms": round(p99, 3)}
        print(f"{size:>9} {median:>10.3f} {p99:>8.3f} {statistics.mean(timings):>8.3f}")
    first, last = results[args.sizes[0]], results[args.sizes[-1]]
    print(f"ratio of medians {args.sizes[-1]} / {args.sizes[0]}: {last['median_ms'] / first['median_ms']:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
