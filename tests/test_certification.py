"""Certifying verifiers: only a proven bound makes a champion, and solver calls never hold the run hostage.

The fixture problem (tests/fixtures/certifying) lets each candidate state its optimistic search
score ("claim"), the value a solver would find ("truth") and how the solver behaves ("mode").
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

import evolve
from evolve.config import compose_config
from evolve.db.models import SCHEMA_VERSION
from evolve.edits import Rewrite
from evolve.problem import ProblemError, load_problem
from evolve.proposers.base import Proposal, ProposalRequest
from evolve.status import render, run_status
from tests.conftest import query, wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "certifying"


def program(claim: float, truth: float, mode: str = "ok", sleep: float = 0) -> str:
    return ("# EVOLVE-BLOCK-START\ndef algorithm():\n"
            f"    return {{\"claim\": {claim}, \"truth\": {truth}, \"mode\": \"{mode}\", \"sleep\": {sleep}}}\n"
            "# EVOLVE-BLOCK-END\n")


class Script:
    """Proposes the given programs in order (a real LLM's proposals, minus the LLM)."""

    def __init__(self, programs: list[str], delay: float = 0.0) -> None:
        self.programs = programs
        self.delay = delay
        self.count = 0

    async def propose(self, request: ProposalRequest) -> Proposal:
        await asyncio.sleep(self.delay)
        if self.count >= len(self.programs):
            return Proposal(None, "script", failure="the script is over")
        self.count += 1
        return Proposal(Rewrite(self.programs[self.count - 1]), "script")

    async def close(self) -> None: ...
    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None: ...
    def state(self) -> dict:
        return {"count": self.count}
    def restore(self, state: dict) -> None:
        self.count = state.get("count", 0)


def problem_copy(tmp_path: Path, seed: str | None = None) -> Path:
    """The fixture problem in a folder of its own (its hold file and seed can then be changed)."""
    folder = tmp_path / "problem"
    shutil.copytree(FIXTURE, folder)
    if seed is not None:
        (folder / "seed.py").write_text(seed)
    return folder


def overrides(problem_dir: Path, run_dir: Path, evaluations: int, *extra: str) -> list[str]:
    return [f"problem={problem_dir / 'problem.yaml'}", f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true",
            "run.progress=false", "search.islands=1", "search.proposers=1", "search.evaluators=1",
            f"budget.evaluations={evaluations}", "verification.gate_seconds=20", "verification.certify_seconds=20",
            *extra]


def ids_by_code(run_dir: Path) -> dict[str, int]:
    return {code: pid for pid, code in query(run_dir, "SELECT id, code FROM programs")}


def outcome(run_dir: Path, program_id: int) -> dict[str, str]:
    """kind -> status of the program's certificate rows."""
    return dict(query(run_dir, f"SELECT kind, status FROM certificates WHERE program_id={program_id} ORDER BY id"))


@pytest.mark.slow
def test_only_a_proven_bound_makes_a_champion_and_a_witness_replaces_the_search_score(tmp_path: Path) -> None:
    witness, unknown, certified, ordinary, uncertified = (
        program(0.5, 0.7), program(0.4, 0.45, "unknown"), program(0.55, 0.58), program(0.7, 0.7),
        program(0.56, 0.57, "uncertified"))
    bests: list[tuple[int, float]] = []
    result = evolve.run(overrides(FIXTURE, tmp_path / "run", 5),
                        on_best=lambda pid, score, code: bests.append((pid, score)),
                        proposer=Script([witness, unknown, certified, ordinary, uncertified]))
    run_dir = result.run_dir
    ids = ids_by_code(run_dir)
    seed = ids[(FIXTURE / "seed.py").read_text()]
    assert result.status == "finished" and result.evaluations == 5
    # The certified candidate is champion with its proven bound, though others searched lower.
    assert result.best_program_id == ids[certified] and result.best_score == pytest.approx(0.58)
    assert bests == [(seed, 0.6), (ids[certified], pytest.approx(0.58))]
    champions = [json.loads(d)["program_id"] for (d,) in query(run_dir, "SELECT data FROM events WHERE kind='champion'")]
    assert champions == [seed, ids[certified]]
    assert outcome(run_dir, ids[certified]) == {"challenge": "champion", "gate": "proven", "certify": "proven"}
    (bound,) = query(run_dir, f"SELECT bound FROM certificates WHERE program_id={ids[certified]} AND kind='certify'")[0]
    assert bound == "29/50"
    # unknown: never champion, its search score kept.
    assert outcome(run_dir, ids[unknown]) == {"challenge": "unknown", "gate": "unknown"}
    assert query(run_dir, f"SELECT score FROM programs WHERE id={ids[unknown]}") == [(0.4,)]
    # witness: the exact worst case replaces the optimistic score everywhere selection reads it.
    assert outcome(run_dir, ids[witness]) == {"challenge": "witness", "gate": "witness"}
    assert query(run_dir, f"SELECT score FROM programs WHERE id={ids[witness]}") == [(0.7,)]
    assert query(run_dir, f"SELECT score FROM evaluations WHERE program_id={ids[witness]} AND split='search'") \
        == [(0.7,)]
    assert {f for (f,) in query(run_dir, f"SELECT fitness FROM island_members WHERE program_id={ids[witness]}")} \
        == {-0.7}
    # proven by the gate but not certified: not champion.
    assert outcome(run_dir, ids[uncertified]) == {"challenge": "uncertified", "gate": "proven",
                                                  "certify": "uncertified"}
    # No better than the champion's bound: no solver call (queued only while the seed was being certified).
    assert outcome(run_dir, ids[ordinary]) in ({}, {"challenge": "skipped"})

    status = run_status(run_dir)
    cert = status["certification"]
    assert status["best"] == {"score": pytest.approx(0.58), "program_id": ids[certified],
                              "heldout_score": pytest.approx(0.565), "certified": True}
    assert cert["champion"]["bound"] == "29/50" and cert["champion"]["solver"] == "fixture"
    assert cert["champion"]["width"] == pytest.approx(0.03)
    assert cert["best_search"] == {"score": 0.4, "program_id": ids[unknown]}
    assert cert["gates"] == {"witness": 1, "proven": 2, "unknown": 1, "pending": 0}
    assert cert["certify"] == {"proven": 2, "uncertified": 1}
    console = Console(file=io.StringIO(), width=200)
    for part in render(status):
        console.print(part)
    text = console.file.getvalue()
    assert "certified best     29/50 = 0.58 (program" in text
    assert "best search score  0.4 (program" in text and "uncertified, optimistic" in text


@pytest.mark.slow
def test_evaluations_go_on_and_status_answers_during_a_long_certification(tmp_path: Path) -> None:
    slow = program(0.5, 0.55, "slow_certify", sleep=5)
    others = [program(0.8 + i / 1000, 0.9) for i in range(24)]
    run_dir = tmp_path / "run"
    snapshots: list[tuple[dict, dict]] = []  # (status, the slow candidate's certificate rows just after)
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            try:
                status = run_status(run_dir)
                with sqlite3.connect(run_dir / "evolve.db") as connection:
                    rows = connection.execute("SELECT c.kind, c.status FROM certificates c JOIN programs p "
                                              "ON p.id = c.program_id WHERE p.code = ? ORDER BY c.id", (slow,))
                    snapshots.append((status, dict(rows.fetchall())))
            except Exception:  # noqa: BLE001 - the run directory is not there yet
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = evolve.run(overrides(FIXTURE, run_dir, 25), proposer=Script([slow, *others], delay=0.3))
    finally:
        finished.set()
        watcher.join()
    ids = ids_by_code(run_dir)
    assert result.best_program_id == ids[slow] and result.best_score == pytest.approx(0.55)
    # Snapshots taken while the slow candidate had passed its gate and was being certified.
    during = [status for status, rows in snapshots if rows == {"challenge": "pending", "gate": "proven"}]
    assert len(during) >= 5, "status did not answer during the certification"
    assert during[-1]["evaluations"] - during[0]["evaluations"] >= 5, "evaluations stalled during certification"
    assert all(status["certification"]["gates"]["pending"] >= 1 for status in during)
    assert all(status["best"]["program_id"] != ids[slow] for status in during)  # not champion before certified
    (seconds,) = query(run_dir, f"SELECT seconds FROM certificates WHERE program_id={ids[slow]} AND kind='certify'")[0]
    assert seconds >= 5


def worker_pids(marker: str) -> list[int]:
    """Live certification workers whose command line names this verifier."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if b"evolve.certify_worker" in cmdline and marker.encode() in cmdline and stat[stat.rfind(")") + 2] != "Z":
            found.append(int(name))
    return found


def start_held_run(tmp_path: Path, evaluations: int) -> tuple[subprocess.Popen, Path, Path]:
    """`evolve run` whose seed certification lasts until the hold file goes (up to 120 s)."""
    problem_dir = problem_copy(tmp_path, program(0.6, 0.6, "hold"))
    (problem_dir / "hold").touch()
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "evolve", "run",
         *overrides(problem_dir, run_dir, evaluations, "verification.certify_seconds=120")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: worker_pids(str(problem_dir)), 30, "no certification worker started")
    return process, problem_dir, run_dir


@pytest.mark.slow
def test_ctrl_c_during_a_long_certification_stops_the_run_at_once_and_kills_the_solver(tmp_path: Path) -> None:
    process, problem_dir, run_dir = start_held_run(tmp_path, 100000)
    time.sleep(0.5)
    stopped = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - stopped < 5, "the run took too long to stop"
    assert process.returncode == 130, err  # Ctrl-C
    assert "interrupted" in out and "no certified champion yet" in out
    assert worker_pids(str(problem_dir)) == []
    assert query(run_dir, "SELECT status, best_program_id FROM runs") == [("interrupted", None)]
    best = subprocess.run([sys.executable, "-m", "evolve", "best", str(run_dir)], capture_output=True, text=True)
    assert best.returncode == 2 and "no certified champion yet" in best.stderr
    # The interrupted challenger (and any queued behind it) is kept, pending, for the next session.
    (seed,) = query(run_dir, "SELECT seed_program_id FROM runs")[0]
    rows = query(run_dir, "SELECT program_id, kind, status FROM certificates")
    assert rows[0] == (seed, "challenge", "pending") and {(k, s) for _, k, s in rows} == {("challenge", "pending")}


@pytest.mark.slow
def test_kill_9_during_certification_then_resume_certifies_the_pending_challenger(tmp_path: Path) -> None:
    process, problem_dir, run_dir = start_held_run(tmp_path, 0)
    # No evaluation budget at all, but the run waits for its queued certification (the seed's).
    time.sleep(1)
    assert process.poll() is None
    process.kill()
    process.wait()
    wait_for(lambda: not worker_pids(str(problem_dir)), 5, "the certification worker outlived the engine")
    (seed,) = query(run_dir, "SELECT seed_program_id FROM runs")[0]
    assert query(run_dir, "SELECT program_id, kind, status FROM certificates") == [(seed, "challenge", "pending")]

    (problem_dir / "hold").unlink()
    result = evolve.resume(run_dir, ["verification.certify_seconds=30"])  # time limits may change on resume
    assert result.status == "finished" and result.evaluations == 0
    assert result.best_program_id == seed and result.best_score == pytest.approx(0.6)
    assert outcome(run_dir, seed) == {"challenge": "champion", "certify": "proven"}
    (requeued,) = query(run_dir, "SELECT data FROM events WHERE kind='certification_requeued'")[0]
    assert json.loads(requeued)["programs"] == [seed]


@pytest.mark.slow
def test_crashing_and_overrunning_hooks_are_recorded_faults_not_a_crashed_run(tmp_path: Path) -> None:
    crash_gate, crash_certify, overrun, no_gate = (
        program(0.5, 0.5, "crash_gate"), program(0.45, 0.5, "crash_certify"),
        program(0.4, 0.5, "slow_gate", sleep=60), program(0.3, 0.4, "unknown"))
    started = time.monotonic()
    result = evolve.run(overrides(FIXTURE, tmp_path / "run", 3, "verification.gate_seconds=3",
                                  "verification.certify_grace=0.5"),
                        proposer=Script([crash_gate, crash_certify, overrun, no_gate]))
    assert time.monotonic() - started < 30
    assert worker_pids(str(FIXTURE)) == []  # the overrunning gate's process was killed
    run_dir = result.run_dir
    ids = ids_by_code(run_dir)
    assert result.status == "finished" and result.best_score == pytest.approx(0.6)  # the seed's bound
    faults = [json.loads(d) for (d,) in query(run_dir, "SELECT data FROM events WHERE kind='verifier_error'")]
    assert {f["program_id"] for f in faults} == {ids[crash_gate], ids[crash_certify]}
    assert all("verifier verifier.py" in f["message"] and "the solver fell over" in f["message"] for f in faults)
    assert outcome(run_dir, ids[crash_gate]) == {"challenge": "error"}
    assert outcome(run_dir, ids[crash_certify]) == {"challenge": "error", "gate": "proven"}
    # Killed at its time limit plus grace: unknown, with the reason.
    assert outcome(run_dir, ids[overrun]) == {"challenge": "unknown", "gate": "unknown"}
    (detail,) = query(run_dir, f"SELECT detail FROM certificates WHERE program_id={ids[overrun]} AND kind='gate'")[0]
    assert "time limit of 3 s" in json.loads(detail)["reason"]


def test_a_held_out_score_above_the_certified_bound_is_a_soundness_alarm(tmp_path: Path) -> None:
    problem_dir = problem_copy(tmp_path, program(0.6, 0.6, "unsound"))
    result = evolve.run(overrides(problem_dir, tmp_path / "run", 0), proposer=Script([]))
    assert result.best_score == pytest.approx(0.6)
    assert query(result.run_dir, "SELECT unsound FROM certificates WHERE kind='certify'") == [(1,)]
    (data,) = query(result.run_dir, "SELECT data FROM events WHERE kind='certificate_unsound'")[0]
    assert json.loads(data)["heldout"] == pytest.approx(0.7) and json.loads(data)["bound"] == "3/5"
    status = run_status(result.run_dir)
    assert status["certification"]["champion"]["unsound"] is True
    assert [a["kind"] for a in status["alarms"]] == ["certificate_unsound"]
    console = Console(file=io.StringIO(), width=200)
    for part in render(status):
        console.print(part)
    assert "UNSOUND" in console.file.getvalue()


def test_certifying_verifiers_need_both_hooks_and_a_minimized_objective(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="needs objective: minimize"):
        load_problem(compose_config([f"problem={FIXTURE / 'problem.yaml'}", "problem.objective=maximize"]))
    folder = problem_copy(tmp_path)
    source = (folder / "verifier.py").read_text()
    (folder / "verifier.py").write_text(source[:source.index("def certify(")])
    with pytest.raises(ProblemError, match=r"defines gate\(\) but not certify\(\)"):
        load_problem(compose_config([f"problem={folder / 'problem.yaml'}"]))


@pytest.mark.slow
def test_a_database_of_the_previous_version_opens_and_gains_the_certificates_table(tmp_path: Path) -> None:
    result = evolve.run([f"run.dir={tmp_path / 'run'}", "sandbox=process", "sandbox.allow_root=true", "budget.evaluations=2"])
    with sqlite3.connect(result.run_dir / "evolve.db") as connection:
        connection.execute("DROP TABLE certificates")
        connection.execute("UPDATE evolve_meta SET value='2' WHERE key='schema_version'")
    assert run_status(result.run_dir)["certification"] is None
    assert query(result.run_dir, "SELECT value FROM evolve_meta WHERE key='schema_version'") == [
        (str(SCHEMA_VERSION),)]
    assert evolve.resume(result.run_dir, ["budget.evaluations=4"]).evaluations == 4


@pytest.mark.slow
def test_rescore_queues_the_best_programs_for_certification_in_the_new_epoch(tmp_path: Path) -> None:
    from evolve.rescore import RECERTIFY, rescore_run

    folder = problem_copy(tmp_path)
    run_dir = tmp_path / "run"
    candidates = [program(0.55, 0.58), program(0.52, 0.56), program(0.7, 0.7), program(0.65, 0.66)]
    evolve.run(overrides(folder, run_dir, 4), proposer=Script(candidates))
    ids = ids_by_code(run_dir)
    # The verifier changes on purpose: its old certificates no longer vouch for anything.
    verifier = folder / "verifier.py"
    verifier.write_text(verifier.read_text() + "\n# revised\n")
    result = asyncio.run(rescore_run(run_dir))
    assert result.epoch == 1 and result.best_score is None
    pending = query(run_dir, "SELECT program_id FROM certificates WHERE kind='challenge' AND status='pending' "
                             "AND epoch=1 ORDER BY lower")
    best_by_search = [pid for (pid,) in query(run_dir, "SELECT program_id FROM evaluations WHERE epoch=1 AND "
                                                       "split='search' AND valid ORDER BY score")][:RECERTIFY]
    assert [pid for (pid,) in pending] == best_by_search
    # The next session certifies them under the new verifier, before anything new is proposed.
    resumed = evolve.resume(run_dir, ["budget.evaluations=4"])
    assert resumed.best_program_id == ids[program(0.52, 0.56)] and resumed.best_score == pytest.approx(0.56)
    champion = ids[program(0.52, 0.56)]
    assert query(run_dir, f"SELECT epoch, bound FROM certificates WHERE kind='certify' AND status='proven' "
                          f"AND program_id={champion} ORDER BY id") == [(0, "14/25"), (1, "14/25")]
