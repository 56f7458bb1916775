"""`evolve new-problem`: the scaffold runs as-is, outside the repository too, and fails clearly."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evolve
from evolve.cli import app
from evolve.config import compose_config
from evolve.engine import SearchStalled
from evolve.paths import CONFIGS
from evolve.problem import SEARCH, Case, load_problem
from evolve.sandbox.base import CaseRun
from evolve.scaffold import ScaffoldError, new_problem

FOLDER_FILES = {"problem.yaml", "seed.py", "verifier.py", "cases.json", "prompt.md"}


def run_overrides(problem_yaml: Path, run_dir: Path, evaluations: int) -> list[str]:
    return [f"problem={problem_yaml}", f"budget.evaluations={evaluations}", "sandbox=process", "sandbox.allow_root=true",
            f"run.dir={run_dir}", "run.progress=false"]


@pytest.mark.slow
def test_a_scaffolded_folder_outside_the_repository_runs_a_short_search(tmp_path):
    folder = tmp_path / "elsewhere" / "my_problem"
    scaffolded = CliRunner().invoke(app, ["new-problem", "my_problem", "--dir", str(folder)])
    assert scaffolded.exit_code == 0, scaffolded.output
    assert {p.name for p in folder.iterdir()} == FOLDER_FILES

    result = evolve.run(run_overrides(folder / "problem.yaml", tmp_path / "run", 5))
    assert result.status == "finished", result.reason
    assert result.evaluations == 5
    assert result.seed_score is not None and 0 < result.seed_score <= 1
    assert result.best_score >= result.seed_score


def test_problem_yaml_paths_are_relative_to_its_folder(tmp_path):
    new_problem("portable", tmp_path / "a")
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)  # the folder keeps working wherever it goes
    cfg = compose_config([f"problem={moved / 'problem.yaml'}"])
    problem = load_problem(cfg)
    assert problem.name == "portable" and problem.entry == "solve" and problem.maximize
    assert problem.verifier_path == moved / "verifier.py"
    assert len(problem.split(SEARCH)) == 4 and len(problem.split("heldout")) == 3


def test_the_checkout_layout_is_the_same_one_folder_under_problems(tmp_path):
    created = new_problem("knap", root=tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in created) == sorted(
        f"problems/knap/{name}" for name in FOLDER_FILES)
    assert not (tmp_path / "configs").exists() and not (tmp_path / "evaluators").exists()
    problem = load_problem(compose_config([f"problem={tmp_path / 'problems' / 'knap'}"]))  # the folder itself
    assert problem.name == "knap" and problem.home == tmp_path / "problems" / "knap"
    assert set(problem.identity_parts()) >= {"verifier.py", "cases.json"}  # names relative to its folder


def test_existing_files_are_never_overwritten(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "verifier.py").write_text("# mine\n")
    with pytest.raises(ScaffoldError, match="verifier.py already exists"):
        new_problem("p", folder)
    assert (folder / "verifier.py").read_text() == "# mine\n"
    assert sorted(f.name for f in folder.iterdir()) == ["verifier.py"]  # nothing half-written


@pytest.mark.parametrize("name", ["1st", "my-problem", "has space", "class", "", "dir/name", "naïve"])
def test_names_that_are_not_python_identifiers_are_refused(tmp_path, name):
    with pytest.raises(ScaffoldError, match="must be a Python identifier"):
        new_problem(name, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_folder_inside_configs_is_refused():
    target = CONFIGS / "stray_scaffold"
    with pytest.raises(ScaffoldError, match="one folder"):
        new_problem("stray_scaffold", target)
    assert not target.exists()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(ScaffoldError, match="not a directory"):
        new_problem("taken", tmp_path / "taken")


def test_the_cli_creates_and_then_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    first = runner.invoke(app, ["new-problem", "cli_problem", "--dir", str(tmp_path / "cli")])
    assert first.exit_code == 0, first.output
    assert "problem.yaml" in first.output
    again = runner.invoke(app, ["new-problem", "cli_problem", "--dir", str(tmp_path / "cli")])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["new-problem", "bad-name", "--dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "Python identifier" in bad.output


@pytest.mark.parametrize(
    "body, expected",
    [
        ("def verify(case, run, settings):\n    raise KeyError('score')\n", "verifier.py raised KeyError"),
        ("def verify(case, run, settings):\n    return 0.9\n", "verifier.py returned 0.9"),
        ("from evolve.problem import Verdict\n\ndef verify(case, run, settings):\n"
         "    return Verdict(True, float('nan'))\n", "verifier.py returned"),
    ],
)
@pytest.mark.slow
def test_a_broken_verifier_stops_the_run_with_an_error_naming_it(tmp_path, body, expected):
    folder = tmp_path / "broken"
    new_problem("broken", folder)
    (folder / "verifier.py").write_text(body)
    with pytest.raises(SearchStalled, match=re.escape(expected)):
        evolve.run(run_overrides(folder / "problem.yaml", tmp_path / "run", 5))
    # From the command line: one error line naming the verifier, no traceback.
    cli = CliRunner().invoke(app, ["run", *run_overrides(folder / "problem.yaml", tmp_path / "cli-run", 5)])
    assert cli.exit_code == 2 and isinstance(cli.exception, SystemExit)
    assert expected in cli.output and "Traceback" not in cli.output


def test_a_verifier_that_fails_to_import_is_a_clear_problem_error(tmp_path):
    folder = tmp_path / "typo"
    new_problem("typo", folder)
    (folder / "verifier.py").write_text("def verify(case, run, settings)\n    pass\n")
    with pytest.raises(evolve.ProblemError, match="verifier.py failed to import: SyntaxError"):
        evolve.run(run_overrides(folder / "problem.yaml", tmp_path / "run", 5))


# The template's own verifier is a real verifier: valid, invalid and hostile answers.

@pytest.fixture(scope="module")
def template_verifier():
    path = Path(evolve.__file__).parent / "scaffold_templates" / "verifier.py"
    spec = importlib.util.spec_from_file_location("template_verifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def knapsack_verdict(verifier, output, status="ok"):
    case = Case("k", SEARCH, {"values": [10, 7, 5], "weights": [4, 3, 2], "capacity": 5}, {"optimum": 12})
    return verifier.verify(case, CaseRun("k", status, output, 0.0), {})


def test_the_template_verifier_scores_valid_answers_against_the_optimum(template_verifier):
    assert knapsack_verdict(template_verifier, [1, 2]).score == 1.0
    assert knapsack_verdict(template_verifier, [0]).score == pytest.approx(10 / 12)
    assert knapsack_verdict(template_verifier, []).valid


@pytest.mark.parametrize(
    "output, reason",
    [
        ([0, 1], "exceeds the capacity"),
        ([1, 1], "more than once"),
        ([3], "not an item index"),
        ([-1], "not an item index"),
        ([True], "not an item index"),
        ([1.0], "not an item index"),
        (["1"], "not an item index"),
        ({"value": 12}, "expected a list"),
        ("12", "expected a list"),
    ],
)
def test_the_template_verifier_rejects_invalid_and_hostile_answers(template_verifier, output, reason):
    verdict = knapsack_verdict(template_verifier, output)
    assert not verdict.valid and reason in verdict.feedback


def test_the_template_verifier_rejects_failed_runs(template_verifier):
    assert not knapsack_verdict(template_verifier, None, status="timeout").valid
