"""The report of a large run: generation time and file size for a synthetic 100,000-program run.

Builds a run database the engine could have written (programs with a deep lineage, one search
evaluation each, held-out evaluations of champions, proposals of every outcome, LLM calls over
three models, migrations, resets and champion events), inserted in bulk. Then times
`evolve report` on it (targets: under 30 s, under 10 MB) and the live view's first render.

    python bench/report_size.py [--programs 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolve.config import compose_config, to_yaml  # noqa: E402
from evolve.db.store import Store, sqlite_url  # noqa: E402
from evolve.paths import ROOT  # noqa: E402
from evolve.report.data import collect, stamp  # noqa: E402
from evolve.report.report import write_report  # noqa: E402
from evolve.report.source import open_source  # noqa: E402

ISLANDS = 4
MODELS = (("big-model", 3.0, 15.0), ("mid-model", 0.5, 1.5), ("small-model", 0.1, 0.4))


def build(run_dir: Path, size: int) -> None:
    cfg = compose_config(["problem=circle_packing", f"run.dir={run_dir}", f"budget.evaluations={size}"])
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    Store(sqlite_url(run_dir), create=True).close()
    (run_dir / "run-id").write_text("1")
    seed = (ROOT / "problems/circle_packing/seed.py").read_text()
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def at(i: int) -> str:  # about 2 evaluations a second, with a two-hour pause in the middle
        return str(start + timedelta(seconds=i * 0.5 + (7200 if i > size // 2 else 0)))

    programs, evaluations, proposals, calls, events = [], [], [], [], []
    codes, scores, best, best_id = {1: seed}, {1: 1.0}, 1.0, 1
    programs.append((1, 1, None, 0, seed, "seed", "seed", "", "seed", "valid", 1.0, "", at(0)))
    evaluations.append((1, "search", 1, 1.0, "{}", "", 0.2, "bench", 0, at(0)))
    champions = [1]
    proposal_id = call_id = 0
    for pid in range(2, size + 1):
        i = pid - 1
        parent = best_id if rng.random() < 0.3 else rng.randrange(max(1, pid - 2000), pid)
        code = codes[parent].replace("margin = ", f"margin = {rng.random():.3f} * 0 + ", 1) \
            if len(codes[parent]) < 3000 else seed.replace("margin = 0.1", f"margin = {rng.random():.6f}")
        valid = rng.random() > 0.15
        score = scores[parent] + rng.gauss(-0.002, 0.01) if valid else None
        codes[pid], scores[pid] = code, score if score is not None else scores[parent]
        if pid > 5000:  # only recent parents are drawn again: keep memory flat
            codes.pop(pid - 5000, None)
        island = pid % ISLANDS
        programs.append((pid, 1, parent, island, code, f"h{pid}", "diff", "", MODELS[pid % 3][0],
                         "valid" if valid else "invalid", score, "", at(i)))
        feedback = "" if valid else ("[n26] timeout: exceeded the 10 s time limit" if rng.random() < 0.2
                                     else "[n26] error: Traceback ...")
        evaluations.append((pid, "search", int(valid), score, "{}", feedback, 0.3, "bench", 0, at(i)))
        for outcome in (["duplicate"] if rng.random() < 0.08 else []) + ["new"]:
            proposal_id += 1
            proposals.append((proposal_id, 1, island, parent, MODELS[pid % 3][0], outcome, "", "",
                              pid if outcome == "new" else None, at(i)))
            call_id += 1
            model, price_in, price_out = MODELS[rng.choice((0, 1, 1, 2, 2, 2))]
            prompt, completion = rng.randint(1500, 4000), rng.randint(100, 900)
            calls.append((call_id, 1, proposal_id, model, prompt, completion, rng.random() * 4,
                          (prompt * price_in + completion * price_out) / 1e6, "", at(i)))
        if valid and score > best:
            best, best_id = score, pid
            champions.append(pid)
            heldout = score + rng.gauss(-0.01, 0.01)
            evaluations.append((pid, "heldout", 1, heldout, "{}", "", 0.3, "bench", 0, at(i)))
            events.append((1, "champion", json.dumps({"program_id": pid, "search": score, "heldout": heldout,
                                                      "epoch": 0}), at(i)))
        if i % 50 == 0:
            events.append((1, "migration", json.dumps({"moves": [[1, pid]], "at": i}), at(i)))
        if i % 200 == 0:
            events.append((1, "reset", json.dumps({"island": i % ISLANDS, "from_island": 0, "program_id": best_id,
                                                   "at": i}), at(i)))
    with sqlite3.connect(run_dir / "evolve.db") as connection:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(
            "INSERT INTO runs (id, problem, created, config_yaml, evaluator_hash, evaluator_parts, epoch, status, "
            "seed_program_id, seed_score, best_program_id, best_score, evaluations, proposals, duplicates, rejected, "
            "failures, wall_seconds, llm_cost, rng_state, proposer_state) VALUES (1, 'circle_packing', ?, ?, 'bench', "
            "'{}', 0, 'finished', 1, 1.0, ?, ?, ?, ?, ?, 0, 0, ?, ?, '', '{}')",
            (at(0), to_yaml(cfg), best_id, best, size - 1, len(proposals), len(proposals) - size + 1, size * 0.5,
             sum(c[7] for c in calls)))
        connection.executemany("INSERT INTO programs (id, run_id, parent_id, island, code, code_hash, edit_kind, edit, "
                               "proposer, status, score, signature, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", programs)
        connection.executemany("INSERT INTO evaluations (program_id, split, valid, score, metrics, feedback, seconds, "
                               "evaluator_hash, epoch, created) VALUES (?,?,?,?,?,?,?,?,?,?)", evaluations)
        connection.executemany("INSERT INTO proposals (id, run_id, island, parent_id, proposer, outcome, reason, edit, "
                               "program_id, created) VALUES (?,?,?,?,?,?,?,?,?,?)", proposals)
        connection.executemany("INSERT INTO llm_calls (id, run_id, proposal_id, model, prompt_tokens, "
                               "completion_tokens, latency, cost, error, created) VALUES (?,?,?,?,?,?,?,?,?,?)", calls)
        connection.executemany("INSERT INTO events (run_id, kind, data, created) VALUES (?,?,?,?)", events)
    print(f"built: {size} programs, {len(evaluations)} evaluations, {len(proposals)} proposals, {len(calls)} LLM "
          f"calls, {len(events)} events, {len(champions)} champions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build the run here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.keep or Path(scratch) / "run"
        began = time.perf_counter()
        build(run_dir, args.programs)
        print(f"database: {(run_dir / 'evolve.db').stat().st_size / 1e6:.0f} MB, built in "
              f"{time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        path = write_report(run_dir, Path(scratch) / "report.html")
        print(f"report: {time.perf_counter() - began:.1f} s, {path.stat().st_size / 1e6:.2f} MB")
        source = open_source(run_dir)
        began = time.perf_counter()
        collect(source, 1)
        print(f"live view, one full refresh of its data: {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        stamp(source, 1)
        print(f"live view, one poll of an unchanged run: {(time.perf_counter() - began) * 1000:.0f} ms")
        source.close()


if __name__ == "__main__":
    main()
