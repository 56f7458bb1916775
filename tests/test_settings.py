"""The core's settings: frozen and typed, made once from the hydra config, or built in Python by an
application that embeds evolve without composing any hydra config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import evolve
from evolve.config import Config, ConfigError, compose_config, load_saved
from evolve.db import models
from evolve.db.memory import MemoryStore
from evolve.settings import (BudgetSettings, ProblemSettings, RunSettings, SandboxSettings, SearchSettings, Settings,
                             VerificationSettings, check, settings_from, to_config)

CIRCLES = Path(__file__).resolve().parent.parent / "problems" / "circle_packing"


def test_settings_have_the_schemas_fields_and_defaults_exactly() -> None:
    schema = OmegaConf.to_container(OmegaConf.structured(Config))
    assert to_plain(dataclasses.asdict(Settings())) == schema
    assert settings_from(OmegaConf.structured(Config)) == Settings()


def test_a_composed_config_becomes_equal_settings_and_back(tmp_path: Path) -> None:
    cfg = compose_config(["problem=circle_packing", "search.islands=3", "budget.target_score=2.5",
                          "llm.models=[{name:a,weight:2},{name:b}]", f"run.dir={tmp_path}"])
    settings = settings_from(cfg)
    assert (settings.search.islands, settings.budget.target_score, settings.run.dir) == (3, 2.5, str(tmp_path))
    assert [(m.name, m.weight) for m in settings.llm.models] == [("a", 2.0), ("b", 1.0)]
    assert settings.problem.settings == {"tolerance": 1e-9}
    assert settings_from(to_config(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.search.islands = 5  # type: ignore[misc]


@pytest.mark.parametrize("bad, message", [
    (Settings(search=SearchSettings(islands=0)), "search.islands must be at least 1"),
    (Settings(search=SearchSettings(islands="4")), "search.islands: '4' is not a valid value (expected int)"),  # type: ignore[arg-type]
    (Settings(budget=BudgetSettings(wall_time=-1.0)), "budget.wall_time must not be negative"),
    (Settings(verification=VerificationSettings(recheck_champion="no")),  # type: ignore[arg-type]
     "verification.recheck_champion: 'no' is not a valid value (expected bool)"),
    (Settings(search={"islands": 2}), "search must be a SearchSettings, not dict"),  # type: ignore[arg-type]
])
def test_bad_settings_built_in_python_are_one_line_errors_naming_the_key(bad: Settings, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check(bad)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_key_in_a_mapping_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'search\.islandz'"):
        settings_from({"search": {"islandz": 2}})


def test_evolve_run_refuses_bad_settings_before_anything_is_written(tmp_path: Path) -> None:
    bad = embedded(tmp_path / "run", 4, search=SearchSettings(islands=2, evaluators=0))
    with pytest.raises(ConfigError, match="search.evaluators must be at least 1"):
        evolve.run(bad, store=MemoryStore())
    assert not (tmp_path / "run").exists()


def test_an_application_embeds_the_search_with_settings_built_in_python(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    settings = embedded(run_dir, 6)
    store = MemoryStore()
    result = evolve.run(settings, store=store)
    assert (result.status, result.evaluations) == ("finished", 6)
    programs = store.tables[models.Program]
    assert len(programs) == 7  # the seed and one program per evaluation, none lost
    for program in programs.values():  # each score is the one its verified evaluation gave
        evaluation = store.search_evaluation(program.id, 0)  # type: ignore[arg-type]
        assert (evaluation.valid, evaluation.score) == (program.status == "valid", program.score)  # type: ignore[union-attr]
    valid = [p.score for p in programs.values() if p.status == "valid"]
    assert result.best_score == max(valid) >= result.seed_score  # type: ignore[type-var, operator]
    # the run directory stores the hydra form, which reads back as the same settings (resume reads it)
    assert settings_from(load_saved(run_dir / "config.yaml")) == settings


def embedded(run_dir: Path, evaluations: int, **sections: object) -> Settings:
    """A short search on the bundled circle packing problem, every part named in Python."""
    problem = ProblemSettings(name="circles", seed_program=str(CIRCLES / "seed.py"), prompt=str(CIRCLES / "prompt.md"),
                              cases=str(CIRCLES / "cases.json"), verifier=str(CIRCLES / "verifier.py"),
                              entry="construct", settings={"tolerance": 1e-9})
    defaults: dict[str, object] = dict(problem=problem, budget=BudgetSettings(evaluations=evaluations),
                                       sandbox=SandboxSettings(backend="process", allow_root=True),
                                       search=SearchSettings(islands=2, evaluators=1, proposers=1),
                                       run=RunSettings(dir=str(run_dir), progress=False), seed=7)
    return Settings(**(defaults | sections))  # type: ignore[arg-type]


def to_plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: to_plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
