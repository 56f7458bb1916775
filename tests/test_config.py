from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evolve.config import ConfigError, compose_config, load_saved, to_yaml


def test_defaults_compose_with_public_override_names() -> None:
    cfg = compose_config(["problem=circle_packing", "llm=offline", "budget.evaluations=7",
                          "budget.wall_time=60", "search.islands=3", "run.dir=/tmp/x", "seed=5"])
    assert (cfg.problem.name, cfg.llm.kind, cfg.budget.evaluations) == ("circle_packing", "offline", 7)
    assert (cfg.budget.wall_time, cfg.search.islands, cfg.run.dir, cfg.seed) == (60, 3, "/tmp/x", 5)


@pytest.mark.parametrize("override, expected", [
    ("budget.evalutions=3", "unknown config key 'budget.evalutions'"),
    ("+budget.extra=1", "unknown config key 'budget.extra'"),
    ("serch.islands=2", "serch"),
    ("problem=nope", "unknown problem 'nope'; available: "),
    ("search.islands=many", "search.islands"),
    ("search.islands=0", "search.islands must be at least 1"),
    ("problem.objective=biggest", "problem.objective"),
])
def test_bad_overrides_name_what_is_wrong(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        compose_config([override])
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_key_in_a_problem_file_is_an_error(tmp_path: Path) -> None:
    source = Path("problems/circle_packing/problem.yaml").read_text()
    problem = tmp_path / "problem.yaml"
    problem.write_text(source + "\ntimeout_per_case: 3\n")
    with pytest.raises(ConfigError, match="timeout_per_case"):
        compose_config([f"problem={problem}"])


def test_problem_by_path_resolves_files_beside_it(tmp_path: Path) -> None:
    problem = tmp_path / "problem.yaml"
    problem.write_text("name: mine\nseed_program: seed.py\ncases: cases.json\nverifier: check.py\n")
    cfg = compose_config([f"problem={problem}", "problem.case_timeout=3"])
    assert cfg.problem.name == "mine"
    assert cfg.problem.seed_program == str(tmp_path / "seed.py")
    assert cfg.problem.case_timeout == 3
    assert cfg.problem.settings == {}  # nothing inherited from the default problem


def test_saved_config_round_trips_and_resume_only_changes_budgets(tmp_path: Path) -> None:
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(compose_config(["search.islands=3", "seed=9"])))
    cfg = load_saved(saved, ["budget.evaluations=999"])
    assert (cfg.search.islands, cfg.seed, cfg.budget.evaluations) == (3, 9, 999)
    with pytest.raises(ConfigError, match="cannot be changed on resume"):
        load_saved(saved, ["search.islands=5"])
    with pytest.raises(ConfigError, match="budget.evalutions"):
        load_saved(saved, ["budget.evalutions=5"])
    # The sandbox tier may be chosen again on resume; the limits a candidate runs under may not.
    assert load_saved(saved, ["sandbox=bwrap"]).sandbox.backend == "bwrap"
    with pytest.raises(ConfigError, match="'sandbox.memory_mb' cannot be changed on resume"):
        load_saved(saved, ["sandbox.memory_mb=64"])


def test_saved_config_with_unknown_key_is_refused(tmp_path: Path) -> None:
    data = OmegaConf.to_container(compose_config([]))
    data["search"]["islandz"] = 2  # type: ignore[index]
    saved = tmp_path / "config.yaml"
    saved.write_text(OmegaConf.to_yaml(data))
    with pytest.raises(ConfigError, match="islandz"):
        load_saved(saved)
