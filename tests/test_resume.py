"""Resume after a stop: what a kill left half-done is finished first; edits, moves and sandbox changes
between sessions are refused with the reason, or adopted on purpose.

Real `evolve` processes, real signals, a problem folder of its own (problem.yaml) in tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query, wait_for

EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "run.progress=false"]

# The candidate stops on its held-out case while `gate` exists (telling the test it got there):
# the engine is then between storing a new champion and finishing its checks.
SEED = '''import os
import time


# EVOLVE-BLOCK-START
def guess() -> float:
    return 0.5
# EVOLVE-BLOCK-END


def main(target: float, gate: str = "") -> float:
    if gate and os.path.exists(gate):
        open(gate + ".reached", "w").close()
        deadline = time.monotonic() + 120
        while os.path.exists(gate) and time.monotonic() < deadline:  # a killed engine's orphan ends with the gate
            time.sleep(0.05)
    return guess()
'''

VERIFIER = '''from evolve.problem import Verdict


def verify(case, run, settings):
    if run.status != "ok" or type(run.output) not in (int, float):
        return Verdict(False, feedback=f"{run.status}: {run.message}")
    distance = abs(float(run.output) - case.private["target"]) * settings["scale"]
    return Verdict(True, -distance, feedback=f"off by {distance:.4f}")
'''


def make_problem(folder: Path, gate: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.py").write_text(SEED)
    (folder / "verifier.py").write_text(VERIFIER)
    (folder / "prompt.md").write_text("Return a number close to the hidden target.\n")
    heldout_inputs = {"target": 0, "gate": str(gate) if gate else ""}
    (folder / "cases.json").write_text(json.dumps({
        "search": [{"id": "s1", "inputs": {"target": 0}, "private": {"target": 3.0}}],
        "heldout": [{"id": "h1", "inputs": heldout_inputs, "private": {"target": 3.5}}]}))
    (folder / "problem.yaml").write_text(
        "name: gated\nseed_program: seed.py\nprompt: prompt.md\ncases: cases.json\nverifier: verifier.py\n"
        "entry: main\nobjective: maximize\ncase_timeout: 180\nsettings:\n  scale: 1.0\n")
    return folder / "problem.yaml"


def evolve_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=240)


def champion_events(run_dir: Path) -> list[dict]:
    return [json.loads(d) for (d,) in query(run_dir, "SELECT data FROM events WHERE kind='champion' ORDER BY id")]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_champion_whose_checks_a_kill_cut_short_gets_them_on_resume(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("")
    problem = make_problem(tmp_path / "gated", gate)
    engine = subprocess.Popen([*EVOLVE, "run", f"problem={problem}", "run.dir=r", "budget.evaluations=6", *FAST],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: Path(f"{gate}.reached").exists() or engine.poll() is not None, 120,
                 "the seed's held-out evaluation did not start")
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    run_dir = tmp_path / "r"
    ((seed, best),) = query(run_dir, "SELECT seed_program_id, best_program_id FROM runs")
    assert seed == best and champion_events(run_dir) == []  # stored as best, its checks cut short
    assert query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE split='heldout'") == [(0,)]

    gate.unlink()
    resumed = evolve_cmd("resume", "r", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    first = champion_events(run_dir)[0]
    assert first["program_id"] == seed and first["heldout"] is not None
    assert query(run_dir, f"SELECT COUNT(*) FROM evaluations WHERE split='heldout' AND program_id={seed}") == [(1,)]
    assert query(run_dir, f"SELECT COUNT(*) FROM evaluations WHERE split='search' AND program_id={seed}") == [(2,)]
    # ... before any new work: the first candidate of the resumed session came after the seed's checks.
    (resumed_at,) = query(run_dir, "SELECT created FROM events WHERE kind='champion_resumed'")[0]
    (checked_at,) = query(run_dir, "SELECT MIN(created) FROM events WHERE kind='champion'")[0]
    (first_child,) = query(run_dir, "SELECT MIN(created) FROM programs WHERE parent_id IS NOT NULL")[0]
    assert resumed_at <= checked_at <= first_child
    assert query(run_dir, "SELECT evaluations FROM runs") == [(6,)]
