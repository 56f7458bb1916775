"""The run's settings as the core takes them: frozen, typed, and free of hydra.

Hydra composes the config (evolve/config.py) at the edge: the CLI, `evolve.run(overrides)`,
`evolve resume`. `settings_from` turns that DictConfig into a `Settings` once, checking its
values; the engine, recorder, evaluator, certifier, proposers and sandboxes read only these.
An application that embeds evolve can build a `Settings` in Python and skip hydra altogether::

    here = Path("my_problem").resolve()
    settings = Settings(problem=ProblemSettings(name="mine", seed_program=str(here / "seed.py"),
                                                cases=str(here / "cases.json"), verifier=str(here / "verifier.py")),
                        budget=BudgetSettings(evaluations=50))
    evolve.run(settings)

Give the problem's files as absolute paths: a relative one is taken from the evolve project root,
as everywhere in a config (a problem.yaml's own relative paths are made absolute when it is read).

The classes mirror evolve/config.py's schema field by field, with the same defaults
(tests/test_settings.py keeps the two lists the same); lists become tuples. The run directory
still stores the hydra form (config.yaml), so resume and `evolve status` read runs as before.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from omegaconf import DictConfig, OmegaConf

# evolve.config (hydra) is imported where it is used: a verifier importing evolve.problem, which reads
# Settings, should not pay for hydra.

MISSING = "???"  # a required value not given (hydra's marker, kept so both forms read alike)


@dataclass(frozen=True, slots=True)
class ProgramBuildSettings:
    command: str = ""
    timeout: float = 60.0
    memory_mb: int = 2048
    max_file_mb: int = 64


@dataclass(frozen=True, slots=True)
class ProgramRunSettings:
    command: str = ""
    stdin: str = "json"
    stdout: str = "json"


@dataclass(frozen=True, slots=True)
class ProblemSettings:
    name: str = MISSING
    description: str = ""
    seed_program: str = MISSING
    prompt: str = ""
    cases: str = MISSING
    verifier: str = MISSING
    entry: str = "main"
    objective: str = "maximize"
    case_timeout: float = 10.0
    score_tolerance: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)  # the verifier's own settings, passed to it as given
    file: str | None = None
    file_overrides: tuple[str, ...] = ()
    file_from_run: str | None = None
    score_kind: str = "exact"
    reference: str | None = None
    files: tuple[Any, ...] = ()  # a path, or {"path": ..., "whole": bool}
    build: ProgramBuildSettings = field(default_factory=ProgramBuildSettings)
    run: ProgramRunSettings = field(default_factory=ProgramRunSettings)
    verify_on: str | None = None


@dataclass(frozen=True, slots=True)
class LLMModelSettings:
    name: str = MISSING
    weight: float = 1.0
    price_in: float = 0.0
    price_out: float = 0.0
    base_url: str | None = None
    api_key_env: str | None = None


@dataclass(frozen=True, slots=True)
class LLMSettings:
    kind: str = "offline"
    numeric_rate: float = 0.6
    line_rate: float = 0.25
    crossover_rate: float = 0.15
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    models: tuple[LLMModelSettings, ...] = (LLMModelSettings(name="gpt-4o-mini"),)
    selection: str = "weights"
    ucb_exploration: float = 1.0
    timeout: float = 120.0
    endpoint_down_after: float = 120.0
    max_concurrency: int = 8
    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    diff_probability: float = 0.7
    max_tokens: int = 4096
    temperature: float = 0.8
    feedback_chars: int = 1500
    templates: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    backend: str = "process"
    memory_mb: int = 1024
    max_procs: int = 64
    cpus: float = 1.0
    max_output_bytes: int = 4 << 20
    max_log_bytes: int = 64 << 10
    python: str | None = None
    scratch_mb: int = 64
    wall_factor: float = 3.0
    allow_root: bool = False
    image: str | None = None
    pool_size: int | None = None
    recycle_after: int = 50
    fresh_container: bool = False
    auto_build: bool = True
    build_method: str = "auto"


@dataclass(frozen=True, slots=True)
class SearchSettings:
    islands: int = 4
    proposers: int = 2
    evaluators: int = 2
    queue_size: int = 4
    archive_size: int = 64
    selection_pressure: float = 1.5
    explore_rate: float = 0.1
    inspirations: int = 2
    migration_interval: int = 50
    reset_interval: int = 200
    reset_fraction: float = 0.25


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    evaluations: int = 200
    wall_time: float | None = None
    llm_cost: float | None = None
    target_score: float | None = None


@dataclass(frozen=True, slots=True)
class RunSettings:
    dir: str | None = None
    progress: bool = True
    progress_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class VerificationSettings:
    drift_check_interval: int = 25
    recheck_champion: bool = True
    verifier_timeout: float = 60.0
    alarm_margin: float = 0.02
    alarm_ratio: float = 4.0
    alarm_window: int = 4  # unused; kept so older runs' configs load
    gate_seconds: float = 300.0
    certify_seconds: float = 900.0
    certify_grace: float = 10.0
    measured_repeats: int = 5
    measured_confidence: float = 0.95
    measured_min_gain: float = 0.02


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    address: str | None = None
    slots_per_node: int = 0
    cases_per_task: int = 0
    retries: int = 2
    verify_on: str = "driver"
    connect_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run is told; what each field means is documented in evolve/config.py."""

    problem: ProblemSettings = field(default_factory=ProblemSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    run: RunSettings = field(default_factory=RunSettings)
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    seed: int = 0


def settings_from(cfg: DictConfig | Mapping[str, Any]) -> Settings:
    """The frozen settings of a composed config (or a plain mapping of the same shape), checked;
    ConfigError (one line, naming the key) for an unknown key or a value of the wrong type."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    settings = _build(Settings, data, "")
    check(settings)
    return settings


def as_settings(cfg: Settings | DictConfig) -> Settings:
    """`cfg` as Settings: for the factories callers still hand a composed DictConfig."""
    return cfg if isinstance(cfg, Settings) else settings_from(cfg)


def check(settings: Settings) -> Settings:
    """Types (a Settings built in Python is not checked by hydra) and the values' ranges."""
    from evolve.config import validate

    _check_types(settings, "")
    validate(settings)  # type: ignore[arg-type]  # attribute paths are the DictConfig's
    return settings


def _build(cls: type, data: Any, where: str) -> Any:
    from evolve.config import ConfigError

    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping of fields, not {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (check the spelling; see `evolve run --help`)")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, f"{where}{name}.")
        elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            item = typing.get_args(hint)[0]
            value = tuple(_build(item, v, f"{where}{name}.") if dataclasses.is_dataclass(item) else v
                          for v in value)
        values[name] = value
    return cls(**values)


def _check_types(obj: Any, where: str) -> None:
    from evolve.config import ConfigError

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint, key = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise ConfigError(f"{key} must be a {hint.__name__}, not {type(value).__name__}")
            _check_types(value, f"{key}.")
        elif not _fits(value, hint):
            raise ConfigError(f"{key}: {value!r} is not a valid value (expected {_name(hint)})")
        elif typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            for i, item in enumerate(value):
                _check_types(item, f"{key}[{i}].")


def to_config(settings: Settings) -> DictConfig:
    """The hydra form of `settings`, as a run directory stores it (config.yaml) and resume reads it."""
    from evolve.config import Config

    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(_plain(dataclasses.asdict(settings))))
    OmegaConf.set_struct(cfg, True)
    return cfg  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """Tuples as lists: OmegaConf's form of a sequence."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:  # an int is a float, a bool is neither (True is not a timeout)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
