"""Resume after a stop: what a kill left half-done is finished first; edits, moves and sandbox changes
between sessions are refused with the reason, or adopted on purpose.

Real `evolve` processes, real signals, a problem folder of its own (problem.yaml) in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query, wait_for

pytestmark = pytest.mark.slow  # every test here drives `evolve` processes (several seconds each)

EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false"]

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


def start(tmp_path: Path, problem: Path, *extra: str) -> Path:
    result = evolve_cmd("run", f"problem={problem}", "run.dir=r", "budget.evaluations=4", *FAST, *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "r"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("edit, named", [
    (("scale: 1.0", "scale: 2.0"), "settings.scale: 1.0 -> 2.0"),
    (("case_timeout: 180", "case_timeout: 90"), "case_timeout: 180.0 -> 90.0"),
])
def test_an_edited_problem_yaml_is_refused_by_name_then_adopted_by_rescore(tmp_path: Path, edit, named) -> None:
    problem = make_problem(tmp_path / "gated")
    run_dir = start(tmp_path, problem)
    problem.write_text(problem.read_text().replace(*edit))
    refused = one_line_error(evolve_cmd("resume", "r", "budget.evaluations=8", cwd=tmp_path))
    assert named in refused and "evolve rescore" in refused
    assert query(run_dir, "SELECT evaluations FROM runs") == [(4,)]

    rescored = evolve_cmd("rescore", "r", cwd=tmp_path)
    assert rescored.returncode == 0, rescored.stderr
    assert query(run_dir, "SELECT epoch FROM runs") == [(1,)]
    resumed = evolve_cmd("resume", "r", "budget.evaluations=8", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert query(run_dir, "SELECT evaluations FROM runs") == [(8,)]


def test_a_problem_folder_moved_with_its_runs_resumes_as_is(tmp_path: Path) -> None:
    project = tmp_path / "project"
    problem = make_problem(project / "gated")
    start(project, problem)
    moved = tmp_path / "elsewhere"
    project.rename(moved)
    resumed = evolve_cmd("resume", "r", "budget.evaluations=6", cwd=moved)
    assert resumed.returncode == 0, resumed.stderr
    assert query(moved / "r", "SELECT evaluations, epoch FROM runs") == [(6, 0)]


def test_a_problem_folder_moved_alone_is_named_and_can_be_pointed_to(tmp_path: Path) -> None:
    problem = make_problem(tmp_path / "gated")
    run_dir = start(tmp_path, problem)
    new_home = tmp_path / "moved" / "gated"
    new_home.parent.mkdir()
    problem.parent.rename(new_home)

    refused = one_line_error(evolve_cmd("resume", "r", "budget.evaluations=6", cwd=tmp_path))
    assert str(problem) in refused and "problem=NEW_PATH/problem.yaml" in refused

    # A different verifier at the new place is not the same evaluator.
    (tmp_path / "other").mkdir()
    other = make_problem(tmp_path / "other" / "gated")
    (other.parent / "verifier.py").write_text(VERIFIER.replace("* settings", "* 2 * settings"))
    refused = one_line_error(evolve_cmd("resume", "r", f"problem={other}", cwd=tmp_path))
    assert "verifier.py" in refused

    resumed = evolve_cmd("resume", "r", f"problem={new_home / 'problem.yaml'}", "budget.evaluations=6", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert query(run_dir, "SELECT evaluations, epoch FROM runs") == [(6, 0)]
    again = evolve_cmd("resume", "r", "budget.evaluations=8", cwd=tmp_path)  # the new place was recorded
    assert again.returncode == 0, again.stderr


def test_an_engine_scoring_code_change_is_part_of_the_identity(tmp_path: Path) -> None:
    """A copy of the engine whose scoring code scores differently is refused; a comment edit is not."""
    problem = make_problem(tmp_path / "gated")
    start(tmp_path, problem)
    package = Path(__file__).resolve().parent.parent
    copy = tmp_path / "engine"
    copy.mkdir()
    shutil.copytree(package / "evolve", copy / "evolve", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("configs", "problems", "evaluators", "sandbox"):
        (copy / folder).symlink_to(package / folder)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    evaluation = copy / "evolve" / "evaluation.py"
    judging = copy / "evolve" / "verify_worker.py"  # runs verify() and aggregate() in its own process

    def resume(evaluations: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*EVOLVE, "resume", "r", f"budget.evaluations={evaluations}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)

    evaluation.write_text(evaluation.read_text() + "\n# a comment changes nothing that scores\n")
    assert resume(5).returncode == 0
    mean = "return sum(v.score for v in verdicts) / len(verdicts)"
    assert mean in judging.read_text()  # the edit below must change code, or this test proves nothing
    judging.write_text(judging.read_text().replace(mean, "return max(v.score for v in verdicts)"))
    refused = one_line_error(resume(6))
    assert "engine scoring" in refused and "evolve rescore" in refused


@pytest.mark.docker
@pytest.mark.bwrap
@pytest.mark.timeout(300)
def test_sandbox_auto_on_resume_takes_what_answers_now_and_says_so(tmp_path: Path) -> None:
    from tests.sandbox_support import ensure_image

    ensure_image()
    problem = make_problem(tmp_path / "gated")
    docker_down = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    started = subprocess.run([*EVOLVE, "run", f"problem={problem}", "run.dir=r", "budget.evaluations=3",
                              "sandbox=auto", "run.progress=false"], cwd=tmp_path, env=docker_down,
                             capture_output=True, text=True, timeout=240)
    assert started.returncode == 0, started.stderr
    run_dir = tmp_path / "r"
    assert json.loads(query(run_dir, "SELECT evaluator_parts FROM runs")[0][0])["sandbox"].startswith("bwrap")

    resumed = evolve_cmd("resume", "r", "budget.evaluations=5", cwd=tmp_path)  # Docker answers now
    assert resumed.returncode == 0, resumed.stderr
    ((data,),) = query(run_dir, "SELECT data FROM events WHERE kind='sandbox_changed'")
    change = json.loads(data)
    assert change["old"].startswith("bwrap") and change["new"].startswith("docker:")
    assert query(run_dir, "SELECT evaluations, epoch FROM runs") == [(5, 0)]

    chosen = evolve_cmd("resume", "r", "sandbox=process", "sandbox.allow_root=true", "budget.evaluations=6",
                        cwd=tmp_path)  # chosen by hand
    assert chosen.returncode == 0, chosen.stderr
    assert len(query(run_dir, "SELECT id FROM events WHERE kind='sandbox_changed'")) == 2
