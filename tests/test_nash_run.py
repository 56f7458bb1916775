"""The nash_guarantee problem end to end, through the `evolve` command as a user runs it.

- A short offline run certifies an algorithm better than the seed; only proven bounds make champions.
- `evolve status` shows the certified bound and the optimistic search best apart, with the gate counts.
- A real, slow Z3 certification (DFM at 1/3) never holds the run hostage: evaluations go on,
  status answers, Ctrl-C stops the run at once and kills the solver.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from tests.conftest import query, wait_for

ROOT = Path(__file__).resolve().parents[1]
PROBLEM_FILE = ROOT / "problems" / "nash_guarantee" / "problem.yaml"
BASELINES = ROOT / "problems" / "nash_guarantee" / "baselines"
EVOLVE = [sys.executable, "-m", "evolve"]
SEED_BOUND = 0.5  # the seed (ZeroSumNE of U1 alone, then best responses) is certified at DMP's 1/2
ONE_AT_A_TIME = ["search.islands=1", "search.proposers=1", "search.evaluators=1"]

# Why seed=5 and 4 evaluations suffice: the offline proposer plans its first candidates while the island
# holds only the seed (it runs ahead of the single evaluator by the queue's length), so they are
# fixed mutations of the seed drawn from the run's RNG, whatever the timing. With seed=5 the second
# candidate changes the zero-sum game to U1 - U2 (BBM, certified at (3 - sqrt 5)/2 = 0.3819660);
# two more evaluations are slack. The run's length is set by the certification chain (seed certified,
# its held-out and re-check, the challenger's gate and certify, its held-out and re-check), about 25 s.
IMPROVING_RUN = ["problem=nash_guarantee", "llm=offline", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "seed=5",
                 "budget.evaluations=4", *ONE_AT_A_TIME]


def evolve_cmd(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # COLUMNS: rich would wrap the status table at 80 columns when stdout is not a terminal.
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "240"})


@pytest.fixture(scope="module")
def improved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("nash_run")
    result = evolve_cmd("run", *IMPROVING_RUN, "run.dir=r", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout, result.stdout
    return cwd / "r"


def certify_row(run_dir: Path, program_id: int) -> dict[str, Any]:
    rows = query(run_dir, "SELECT status, bound, bound_float, width, solver FROM certificates "
                          f"WHERE kind='certify' AND program_id={program_id} ORDER BY id")
    assert len(rows) == 1, f"program {program_id} has {len(rows)} certify rows: {rows}"
    return dict(zip(("status", "bound", "bound_float", "width", "solver"), rows[0]))


def adversary_epsilon(run_dir: Path, program_id: int) -> float:
    """The search score as the verifier reported it: the numeric adversary's epsilon on the one search case."""
    (metrics,) = query(run_dir, f"SELECT metrics FROM evaluations WHERE program_id={program_id} "
                                "AND split='search' ORDER BY id LIMIT 1")[0]
    return json.loads(metrics)["constraints"]["adversary"]["epsilon"]


def labelled_rows(text: str) -> dict[str, str]:
    """The status header's "label   value" lines (the islands table has no such lines)."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"(\S.*?)\s{2,}(\S.*?)\s*$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


# ---------------------------------------------------------------- a short offline run improves on the seed

@pytest.mark.slow
def test_a_short_offline_run_certifies_a_better_algorithm_than_the_seed(improved_run: Path) -> None:
    run_dir = improved_run
    (status, seed_id, best_id, best_score, evaluations), = query(
        run_dir, "SELECT status, seed_program_id, best_program_id, best_score, evaluations FROM runs")
    assert status == "finished" and evaluations == 4
    # The seed's own certificate: 1/2, proven by Z3.
    seed = certify_row(run_dir, seed_id)
    assert seed["status"] == "proven" and seed["solver"].startswith("z3 ")
    assert abs(seed["bound_float"] - SEED_BOUND) <= 1e-6 and abs(float(Fraction(seed["bound"])) - SEED_BOUND) <= 1e-6
    # The champion is another program, with a proven bound clearly below the seed's.
    assert best_id is not None and best_id != seed_id
    champion = certify_row(run_dir, best_id)
    assert champion["status"] == "proven" and champion["solver"].startswith("z3 ")
    assert Fraction(champion["bound"]) < Fraction(SEED_BOUND) - Fraction(1, 1000)
    assert float(Fraction(champion["bound"])) == pytest.approx(champion["bound_float"], abs=1e-12)
    assert best_score == champion["bound_float"]  # the run's best is the proven bound, not a search score
    assert champion["width"] <= 1e-6  # bisected to the problem's width
    # It got there through the gate: proven better than the seed's bound before its own certification.
    assert query(run_dir, f"SELECT status, bound FROM certificates WHERE kind='gate' AND program_id={best_id}") \
        == [("proven", seed["bound"])]
    # Its search score is optimistic (never above the certificate), and so is its held-out score.
    assert adversary_epsilon(run_dir, best_id) <= champion["bound_float"]
    (heldout,), = query(run_dir, f"SELECT score FROM evaluations WHERE program_id={best_id} AND split='heldout'")
    assert heldout <= champion["bound_float"] + 1e-9
    assert query(run_dir, "SELECT COUNT(*) FROM certificates WHERE unsound") == [(0,)]
    champions = [json.loads(d)["program_id"] for (d,) in query(run_dir, "SELECT data FROM events "
                                                                         "WHERE kind='champion' ORDER BY id")]
    assert champions == [seed_id, best_id]


# ---------------------------------------------------------------- status keeps the two kinds of score apart

@pytest.mark.slow
def test_status_shows_the_certified_bound_and_the_search_best_apart_with_gate_counts(improved_run: Path) -> None:
    run_dir = improved_run
    (best_id,), = query(run_dir, "SELECT best_program_id FROM runs")
    champion = certify_row(run_dir, best_id)
    (search_id, search_score), = query(run_dir, "SELECT id, score FROM programs WHERE status='valid' "
                                                "ORDER BY score, id LIMIT 1")
    gates = dict(query(run_dir, "SELECT status, COUNT(*) FROM certificates WHERE kind='gate' GROUP BY status"))
    certified = dict(query(run_dir, "SELECT status, COUNT(*) FROM certificates WHERE kind='certify' "
                                    "GROUP BY status"))

    result = evolve_cmd("status", str(run_dir), "--json", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cert = report["certification"]
    assert report["best"]["certified"] is True and report["best"]["program_id"] == best_id
    assert report["best"]["score"] == champion["bound_float"]
    assert cert["champion"]["program_id"] == best_id
    assert cert["champion"]["bound"] == champion["bound"] and cert["champion"]["bound_float"] == champion["bound_float"]
    assert cert["champion"]["solver"] == champion["solver"]
    # The search best is the numeric adversary's score of its program: optimistic, below the proven bound.
    assert cert["best_search"] == {"score": search_score, "program_id": search_id}
    assert search_score == adversary_epsilon(run_dir, search_id)
    assert search_score <= champion["bound_float"]
    assert cert["gates"] == {"witness": gates.get("witness", 0), "proven": gates.get("proven", 0),
                             "unknown": gates.get("unknown", 0), "pending": 0}
    assert cert["gates"]["proven"] >= 1
    assert cert["certify"] == {"proven": certified.get("proven", 0), "uncertified": certified.get("uncertified", 0)}
    assert cert["certify"]["proven"] >= 2  # the seed and the champion

    text = evolve_cmd("status", str(run_dir), cwd=run_dir.parent)
    assert text.returncode == 0, text.stderr
    rows = labelled_rows(text.stdout)
    assert rows["certified best"].startswith(f"{champion['bound']} = {champion['bound_float']:.6g} "
                                             f"(program {best_id};")
    assert champion["solver"] in rows["certified best"]
    assert rows["best search score"] == f"{search_score:.6g} (program {search_id}; uncertified, optimistic)"
    assert rows["gates"] == (
        f"witness {cert['gates']['witness']}, proven {cert['gates']['proven']}, "
        f"unknown {cert['gates']['unknown']}, pending 0")


# ---------------------------------------------------------------- a slow real certification and Ctrl-C

def dfm_problem(folder: Path) -> Path:
    """The real problem (verifier, cases, settings) with the DFM baseline as its seed.

    DFM's proof hint 1/3 is its first SMT query: tens of seconds of Z3 per arm on this kind of machine.
    """
    algorithm = json.loads((BASELINES / "dfm.json").read_text())["algorithm"]
    body = json.dumps(algorithm, indent=4).replace("\n", "\n    ")  # JSON of strings and lists is Python
    seed = folder / "dfm_seed.py"
    seed.write_text('"""DFM (Deligkas, Fasoulakis, Markakis): slow to certify."""\n\n\n# EVOLVE-BLOCK-START\n'
                    f"def algorithm() -> dict:\n    return {body}\n# EVOLVE-BLOCK-END\n")
    config = OmegaConf.to_container(OmegaConf.load(PROBLEM_FILE))
    assert isinstance(config, dict)
    for key in ("prompt", "cases", "verifier"):
        config[key] = str(PROBLEM_FILE.parent / config[key])  # relative to the problem.yaml
    config["seed_program"] = str(seed)
    path = folder / "nash_dfm.yaml"
    OmegaConf.save(OmegaConf.create(config), path)
    return path


def certify_workers(engine_pid: int) -> list[int]:
    """Live certification worker processes started by this engine."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and worker_alive(int(name)) and _parent(int(name)) == engine_pid:
            found.append(int(name))
    return found


def worker_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"evolve.certify_worker" in cmdline and stat[stat.rfind(")") + 2] != "Z"


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[1])


def stored_evaluations(run_dir: Path) -> int:
    return query(run_dir, "SELECT evaluations FROM runs")[0][0]


@pytest.mark.slow
def test_a_slow_z3_certification_never_holds_the_run_hostage(tmp_path: Path) -> None:
    problem = dfm_problem(tmp_path)
    run_dir = tmp_path / "r"
    process = subprocess.Popen(
        [*EVOLVE, "run", f"problem={problem}", "llm=offline", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "run.dir=r",
         "budget.evaluations=100000", "verification.certify_seconds=600", *ONE_AT_A_TIME],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The seed is stored and its certification (no champion yet, so no gate) is running in a worker.
        worker = wait_for(lambda: certify_workers(process.pid), 60, "no certification worker started")[0]
        (seed_id,), = query(run_dir, "SELECT seed_program_id FROM runs")
        assert query(run_dir, "SELECT program_id, kind, status FROM certificates WHERE program_id="
                              f"{seed_id}") == [(seed_id, "challenge", "pending")]
        at_start = stored_evaluations(run_dir)

        # Status answers at once while Z3 works (the call itself takes tens of seconds).
        asked = time.monotonic()
        answer = evolve_cmd("status", "r", "--json", cwd=tmp_path, timeout=30)
        answered_in = time.monotonic() - asked
        assert answer.returncode == 0, answer.stderr
        assert answered_in < 10, f"status took {answered_in:.1f} s while the solver ran"
        report = json.loads(answer.stdout)
        assert report["status"] == "running" and report["evaluations"] >= at_start
        assert report["certification"]["champion"] is None and report["best"]["program_id"] is None
        assert report["certification"]["gates"]["pending"] >= 1

        # Evaluations go on meanwhile: recorded while the same solver call is still running.
        wait_for(lambda: stored_evaluations(run_dir) >= at_start + 2, 60, "evaluations stalled during certification")
        assert worker_alive(worker), "the certification ended before evaluations could be observed"
        assert query(run_dir, f"SELECT kind FROM certificates WHERE program_id={seed_id}") == [("challenge",)]
        during = stored_evaluations(run_dir)

        stopped = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        stopped_in = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err  # Ctrl-C
    assert stopped_in < 10, f"the run took {stopped_in:.1f} s to stop"
    assert "interrupted" in out and "no certified champion yet" in out
    assert not worker_alive(worker), "the solver process outlived the run"

    # What was stored is kept: the seed's evaluation, the evaluations made meanwhile, the pending challenge.
    (status, evaluations, best_id), = query(run_dir, "SELECT status, evaluations, best_program_id FROM runs")
    assert status == "interrupted" and best_id is None and evaluations >= during
    (valid, seed_score), = query(run_dir, f"SELECT valid, score FROM evaluations WHERE program_id={seed_id} "
                                          "AND split='search'")
    assert valid and seed_score == adversary_epsilon(run_dir, seed_id) and seed_score <= 1 / 3
    assert query(run_dir, f"SELECT kind, status FROM certificates WHERE program_id={seed_id}") \
        == [("challenge", "pending")]
    after = evolve_cmd("status", "r", "--json", cwd=tmp_path, timeout=30)
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["status"] == "interrupted" and report["evaluations"] == evaluations
    assert report["seed_score"] == seed_score and report["certification"]["champion"] is None
    assert report["certification"]["gates"]["pending"] >= 1
