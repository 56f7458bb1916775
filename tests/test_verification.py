"""Frozen verifiers, evaluator epochs, drift during a run, and the held-out alarm."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

import evolve
from evolve.engine import EvaluatorChanged
from evolve.problem import ProblemError
from evolve.paths import ROOT
from evolve.rescore import rescore_run
from evolve.session import RunError
from tests.conftest import query

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def problem_dir(tmp_path: Path) -> Path:
    """The circle packing problem copied out of the repository, so its files can be changed."""
    folder = tmp_path / "circles"
    folder.mkdir()
    shutil.copy(ROOT / "problems/circle_packing/seed.py", folder / "seed.py")
    shutil.copy(ROOT / "problems/circle_packing/cases.json", folder / "cases.json")
    shutil.copy(ROOT / "problems/circle_packing/verifier.py", folder / "verifier.py")
    (folder / "problem.yaml").write_text(
        "name: circles\nseed_program: seed.py\ncases: cases.json\nverifier: verifier.py\nentry: construct\n"
        "objective: maximize\ncase_timeout: 10\nsettings:\n  tolerance: 1.0e-9\n")
    return folder


def start(problem_dir: Path, run_dir: Path, *extra: str) -> evolve.RunResult:
    return evolve.run([f"problem={problem_dir / 'problem.yaml'}", f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true",
                       "budget.evaluations=10", "search.islands=2", *extra])


def flip_last_byte(path: Path) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original[:-1] + (b" " if original[-1:] != b" " else b"\n"))
    return original


@pytest.mark.slow
@pytest.mark.parametrize("changed", ["verifier.py", "cases.json"])
def test_resume_refuses_a_changed_verifier_or_data_file_and_names_it(problem_dir: Path, tmp_path: Path,
                                                                      changed: str) -> None:
    run_dir = tmp_path / "run"
    start(problem_dir, run_dir)
    original = flip_last_byte(problem_dir / changed)
    with pytest.raises(RunError, match=rf"{changed}: [0-9a-f]{{16}} -> [0-9a-f]{{16}}"):
        evolve.resume(run_dir, ["budget.evaluations=20"])
    assert query(run_dir, "SELECT evaluations FROM runs") == [(10,)]
    (problem_dir / changed).write_bytes(original)
    assert evolve.resume(run_dir, ["budget.evaluations=15"]).evaluations == 15


@pytest.mark.slow
def test_a_changed_setting_is_refused_then_rescore_starts_a_separate_epoch(problem_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = start(problem_dir, run_dir)
    edited = problem_dir / "problem.yaml"
    edited.write_text(edited.read_text().replace("tolerance: 1.0e-9", "tolerance: 0.001"))
    # Resume reads problem.yaml again, not only the run's saved copy: the edit is named, with the way on.
    with pytest.raises(ProblemError, match=r"settings\.tolerance: 1e-09 -> 0\.001.*evolve rescore"):
        evolve.resume(run_dir, ["budget.evaluations=20"])
    assert query(run_dir, "SELECT evaluations FROM runs") == [(10,)]

    result = asyncio.run(rescore_run(run_dir))  # adopts the edit on purpose
    assert result.epoch == 1 and "evaluator settings" in result.changes
    assert "tolerance: 0.001" in (run_dir / "config.yaml").read_text()
    (new_hash,) = query(run_dir, "SELECT evaluator_hash FROM runs")[0]
    # Each archived program was evaluated again, under the new hash, in the new epoch.
    rescored = query(run_dir, f"SELECT COUNT(*) FROM evaluations WHERE epoch=1 AND evaluator_hash='{new_hash}'")
    assert rescored[0][0] == result.programs > 0
    assert query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE epoch=1 AND evaluator_hash!=?".replace(
        "?", f"'{new_hash}'")) == [(0,)]
    # Selection now sees epoch-1 scores only: every active member's fitness is its epoch-1 score.
    mixed = query(run_dir, "SELECT COUNT(*) FROM island_members m JOIN evaluations e ON e.program_id=m.program_id "
                           "AND e.epoch=1 AND e.split='search' WHERE m.active AND m.fitness != e.score")
    assert mixed == [(0,)]
    assert query(run_dir, "SELECT COUNT(*) FROM island_members WHERE active") [0][0] > 0
    # The run continues in the new epoch; nothing of epoch 0 is touched.
    epoch0 = query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE epoch=0")
    more = evolve.resume(run_dir, ["budget.evaluations=16"])
    assert more.evaluations == 16 and more.best_score >= first.seed_score
    assert query(run_dir, "SELECT COUNT(*) FROM evaluations WHERE epoch=0") == epoch0
    with pytest.raises(RunError, match="nothing to rescore"):
        asyncio.run(rescore_run(run_dir))


@pytest.mark.slow
def test_a_verifier_changed_during_the_run_stops_it_with_everything_stored(problem_dir: Path, tmp_path: Path) -> None:
    def tamper(program_id: int, score: float, code: str) -> None:
        with (problem_dir / "verifier.py").open("a") as handle:
            handle.write("\n# changed while the run was going\n")

    with pytest.raises(EvaluatorChanged, match="verifier.py"):
        evolve.run([f"problem={problem_dir / 'problem.yaml'}", f"run.dir={tmp_path / 'run'}", "sandbox=process", "sandbox.allow_root=true",
                    "budget.evaluations=200", "verification.drift_check_interval=5"], on_best=tamper)
    evaluations, status = query(tmp_path / "run", "SELECT evaluations, status FROM runs")[0]
    assert status == "failed" and evaluations < 200
    assert query(tmp_path / "run", "SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL") == [(evaluations,)]
    (changes,) = query(tmp_path / "run", "SELECT data FROM events WHERE kind='drift'")[0]
    assert "verifier.py" in json.loads(changes)["changes"]


@pytest.mark.slow
def test_the_offline_search_finds_the_planted_shortcut_and_the_alarm_fires(tmp_path: Path) -> None:
    result = evolve.run([f"problem={FIXTURES / 'shortcut/problem.yaml'}", f"run.dir={tmp_path / 'run'}",
                         "sandbox=process", "sandbox.allow_root=true", "budget.evaluations=60", "search.islands=2"])
    assert result.best_score > result.seed_score  # the search score rose ...
    alarms = [json.loads(d) for (d,) in query(result.run_dir, "SELECT data FROM events WHERE kind='heldout_divergence'")]
    assert alarms, "the held-out divergence alarm did not fire"
    assert all(a["search_gain"] > 0 and a["heldout_gain"] <= 0 for a in alarms)  # ... the held-out score fell
    from evolve.status import run_status

    status = run_status(result.run_dir)
    assert any(a["kind"] == "heldout_divergence" for a in status["alarms"])
    assert status["best"]["heldout_score"] is not None


def test_the_identity_covers_the_helper_modules_a_verifier_imports(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from evolve.problem import local_imports

    package = tmp_path / "myhelpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scoring.py").write_text("from myhelpers import weights\n\ndef score(x):\n    return x\n")
    (package / "weights.py").write_text("W = 1\n")
    verifier = tmp_path / "verifier.py"
    verifier.write_text("import json\nfrom myhelpers.scoring import score\n\ndef verify(case, run, settings): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Transitively, in a stable order, and nothing from outside the verifier's folder (json).
    assert local_imports(verifier) == sorted(
        [package / "__init__.py", package / "scoring.py", package / "weights.py"])
    # A bundled verifier's shared trusted code in evaluators/ counts too, though outside its folder.
    nash = local_imports(ROOT / "problems" / "nash_guarantee" / "verifier.py")
    assert ROOT / "evaluators" / "nash" / "smt.py" in nash and ROOT / "evaluators" / "nash" / "system.py" in nash
    assert local_imports(ROOT / "problems" / "sat" / "verifier.py") == [
        ROOT / "evaluators" / "dimacs.py", ROOT / "evaluators" / "sat_answers.py"]
