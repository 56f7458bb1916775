"""Calibration: case scores relative to a reference program measured on the same sandbox, interleaved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import evolve
from evolve.calibration import CalibrationError, relative_verdicts
from evolve.config import compose_config
from evolve.problem import Verdict, load_problem
from tests.conftest import query

TIMED = Path(__file__).parent / "fixtures" / "timed"


def test_each_case_becomes_the_ratio_to_the_reference_with_the_raw_scores_kept() -> None:
    out = relative_verdicts({"a": Verdict(True, 3.0, {"x": 1}), "b": Verdict(False, feedback="bad")},
                            {"a": Verdict(True, 2.0), "b": Verdict(True, 1.0)})
    assert out["a"].score == 1.5 and out["a"].metrics == {"x": 1, "raw_score": 3.0, "reference_score": 2.0}
    assert not out["b"].valid  # an invalid candidate stays invalid


@pytest.mark.parametrize("reference", [Verdict(False, feedback="crashed"), Verdict(True, 0.0)])
def test_a_reference_that_is_invalid_or_scores_zero_is_a_fault_of_the_problem(reference: Verdict) -> None:
    with pytest.raises(CalibrationError, match="case 'a'"):
        relative_verdicts({"a": Verdict(True, 1.0)}, {"a": reference})


def calibrated_problem(tmp_path: Path, reference: str = "seed") -> Path:
    folder = tmp_path / "timed"
    shutil.copytree(TIMED, folder)
    (folder / "problem.yaml").write_text((folder / "problem.yaml").read_text() + f"reference: {reference}\n")
    return folder / "problem.yaml"


def test_the_reference_program_is_part_of_the_evaluator_identity(tmp_path: Path) -> None:
    plain = load_problem(compose_config([f"problem={TIMED / 'problem.yaml'}"]))
    problem_file = calibrated_problem(tmp_path)
    calibrated = load_problem(compose_config([f"problem={problem_file}"]))
    assert calibrated.reference_code == plain.seed_code
    assert plain.identity_parts()["evaluator settings"] != calibrated.identity_parts()["evaluator settings"]
    with pytest.raises(evolve.ProblemError, match="reference program not found"):
        load_problem(compose_config([f"problem={calibrated_problem(tmp_path / 'other', 'nowhere.py')}"]))


@pytest.mark.slow
def test_a_calibrated_run_stores_every_case_as_a_ratio_with_both_measurements(tmp_path: Path) -> None:
    result = evolve.run([f"problem={calibrated_problem(tmp_path)}", f"run.dir={tmp_path / 'run'}",
                         "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=2",
                         "search.islands=1"])
    rows = query(result.run_dir, "SELECT score, metrics FROM evaluations WHERE valid AND split='search'")
    assert rows
    for score, metrics in rows:
        cases = json.loads(metrics).values()
        for case in cases:
            assert case["score"] == case["raw_score"] / case["reference_score"]
            assert case["reference_score"] > 0
        assert score == sum(c["score"] for c in cases) / len(cases)
