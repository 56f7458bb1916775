"""Configuration: typed schemas registered with hydra, composed from `configs/`.

The dataclasses below are the single list of fields. Hydra merges the YAML
files of `configs/` and the command-line `key=value` overrides onto them, so a
misspelt or unknown key is an error that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from yaml import MarkedYAMLError, YAMLError
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evolve.paths import CONFIGS


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says what to fix."""


@dataclass
class ProblemConfig:
    name: str = "???"
    description: str = ""
    seed_program: str = "???"  # path to the seed program (relative to the project root or absolute)
    prompt: str = ""  # path to the problem statement shown to the proposer
    cases: str = "???"  # path to the cases file: {"search": [...], "heldout": [...]}
    verifier: str = "???"  # path to the host-side verifier module
    entry: str = "main"  # function the runner calls with each case's inputs
    objective: str = "maximize"  # or "minimize"
    case_timeout: float = 10.0  # seconds per case, measured outside the candidate
    score_tolerance: float = 0.0  # re-verified scores this far apart (relative) still agree (timed scores)
    settings: dict[str, Any] = field(default_factory=dict)  # passed to the verifier


@dataclass
class LLMModelConfig:
    """One model the `openai` proposer may ask; prices are per million tokens."""

    name: str = "???"
    weight: float = 1.0  # share of proposals under selection=weights
    price_in: float = 0.0  # prompt tokens
    price_out: float = 0.0  # completion tokens
    base_url: Optional[str] = None  # default: llm.base_url
    api_key_env: Optional[str] = None  # default: llm.api_key_env


@dataclass
class LLMConfig:
    kind: str = "offline"  # offline | openai
    # Offline mutation operator: how often each kind of change is tried.
    numeric_rate: float = 0.6
    line_rate: float = 0.25
    crossover_rate: float = 0.15
    # OpenAI-compatible endpoint. The key is read from the environment variable
    # named here and is never stored; "" means the server needs no key.
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    models: list[LLMModelConfig] = field(default_factory=lambda: [LLMModelConfig(name="gpt-4o-mini")])
    selection: str = "weights"  # weights | ucb (bandit rewarded by verified improvement)
    ucb_exploration: float = 1.0
    timeout: float = 120.0  # seconds per HTTP request
    max_concurrency: int = 8  # requests in flight per endpoint
    max_retries: int = 4  # extra attempts on 429 / 5xx / timeouts / dropped connections
    backoff_base: float = 1.0  # seconds; doubles per attempt (with jitter) unless retry-after says otherwise
    backoff_max: float = 60.0  # cap on any wait, retry-after included
    diff_probability: float = 0.7  # SEARCH/REPLACE diff; otherwise a full rewrite
    max_tokens: int = 4096
    temperature: float = 0.8
    feedback_chars: int = 1500  # parent feedback shown in the prompt
    templates: Optional[str] = None  # folder of prompt templates (default: <problem>/templates, then built-in)


@dataclass
class SandboxConfig:
    backend: str = "process"  # process | bwrap | docker | auto
    memory_mb: int = 1024
    max_procs: int = 64
    cpus: float = 1.0
    max_output_bytes: int = 4 << 20
    max_log_bytes: int = 64 << 10
    python: Optional[str] = None  # interpreter for the process and bwrap backends (default: the engine's)
    scratch_mb: int = 64  # the job's writable tmpfs (bwrap, docker)
    wall_factor: float = 3.0  # a case's wall-clock backstop: this many times its CPU time limit, plus 1 s
    # process: candidates would run unisolated as root; refused unless the candidates are trusted code
    allow_root: bool = False
    # docker
    image: Optional[str] = None  # default: evolve-sandbox:<hash of the recipe in sandbox/>
    pool_size: Optional[int] = None  # warm containers (default: search.evaluators)
    recycle_after: int = 50  # jobs per warm container before it is replaced
    fresh_container: bool = False  # a new container for every evaluation instead of the warm pool
    auto_build: bool = True  # build a missing image (docker and auto), else refuse
    build_method: str = "auto"  # auto | mmdebstrap (no registry needed) | dockerfile


@dataclass
class SearchConfig:
    islands: int = 4
    proposers: int = 2  # P: proposal tasks in flight
    evaluators: int = 2  # E: sandboxes running at once
    queue_size: int = 4  # bound between proposers and evaluators (back pressure)
    archive_size: int = 64  # clusters kept per island for selection
    selection_pressure: float = 1.5  # rank weight exponent: weight = (rank + 1) ** -pressure
    explore_rate: float = 0.1  # chance of a uniform pick among clusters
    inspirations: int = 2
    migration_interval: int = 50  # evaluations between ring migrations (0: never)
    reset_interval: int = 200  # evaluations between resets of the weakest islands (0: never)
    reset_fraction: float = 0.25


@dataclass
class DatabaseConfig:
    url: Optional[str] = None  # default: sqlite:///<run dir>/evolve.db


@dataclass
class BudgetConfig:
    evaluations: int = 200
    wall_time: Optional[float] = None  # seconds, summed over resumes
    llm_cost: Optional[float] = None  # in the price table's currency
    target_score: Optional[float] = None  # stop once the best reaches it


@dataclass
class RunConfig:
    dir: Optional[str] = None  # default: runs/<problem>-<timestamp>
    progress: bool = True  # live display when stdout is a terminal; else a plain line every progress_interval
    progress_interval: float = 30.0  # seconds between plain progress lines when output is redirected (0: none)


@dataclass
class VerificationConfig:
    """Keeping the verifier's signal external and stable (see docs/verification.md)."""

    drift_check_interval: int = 25  # evaluations between checks that the evaluator files are unchanged (0: never)
    recheck_champion: bool = True  # evaluate every new global best a second time
    alarm_window: int = 4  # champions over which search and held-out scores are compared
    alarm_margin: float = 0.0  # held-out must gain more than this while search gains, or the alarm fires
    # Certifying verifiers (gate/certify, see evolve/certification.py): each call runs in its own process,
    # killed at its time limit plus the grace.
    gate_seconds: float = 300.0  # "is this challenger better than the champion's certified bound?"
    certify_seconds: float = 900.0  # the challenger's own certified bound
    certify_grace: float = 10.0  # seconds past a time limit before the call's process is killed


@dataclass
class Config:
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    run: RunConfig = field(default_factory=RunConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    seed: int = 0


ConfigStore.instance().store(name="evolve_schema", node=Config)

# Overrides `evolve resume` accepts: budgets and how the run is shown, nothing
# that would change what the search means.
# Certification time limits too: a proven bound is proven however long the solver was given.
RESUMABLE_PREFIXES = ("budget.", "run.progress", "search.proposers", "search.evaluators",
                      "verification.gate_seconds", "verification.certify_seconds", "verification.certify_grace")


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose `configs/config.yaml` with command-line style overrides.

    `problem=PATH/problem.yaml` runs a problem defined outside this repository;
    relative paths inside that file are taken from its folder.
    """
    problem_file, problem_overrides, rest = _split_problem_path(list(overrides))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="config", overrides=rest)
        # `+key=value` can add keys hydra's struct mode lets through; the schema cannot.
        cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.to_container(cfg))
        if problem_file is not None:
            cfg.problem = _problem_from_file(problem_file, problem_overrides)
    except MissingConfigException as error:
        raise ConfigError(_missing_option(error)) from None
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_describe(error)) from None
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, True)
    validate(cfg)
    return cfg


def _split_problem_path(overrides: list[str]) -> tuple[Path | None, list[str], list[str]]:
    """Pull out `problem=<file>.yaml` (and the problem.* overrides that apply on top of it)."""
    problem_file = None
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "problem" and value.endswith((".yaml", ".yml")):
            problem_file = Path(value).expanduser().resolve()
    if problem_file is None:
        return None, [], overrides
    if not problem_file.is_file():
        raise ConfigError(f"problem file not found: {problem_file}")
    on_problem = [o for o in overrides if o.startswith("problem.")]
    rest = [o for o in overrides if not o.startswith(("problem=", "problem."))]
    return problem_file, on_problem, rest


def load_yaml(path: Path, what: str) -> Any:
    """A YAML file, or ConfigError naming the file, the line and the problem (a syntax error, a duplicate key)."""
    try:
        return OmegaConf.load(path)
    except YAMLError as error:
        where = ""
        if isinstance(error, MarkedYAMLError) and error.problem_mark is not None:
            where = f" at line {error.problem_mark.line + 1}"
        problem = error.problem if isinstance(error, MarkedYAMLError) and error.problem else str(error)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}; fix that line") from None
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read: {error.strerror or error}") from None


def _problem_from_file(path: Path, overrides: list[str]) -> DictConfig:
    loaded = load_yaml(path, "problem file")
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"problem file {path} must be a mapping of fields (name:, seed_program:, ...)")
    for key in ("seed_program", "prompt", "cases", "verifier"):
        value = loaded.get(key)
        if value and not Path(value).is_absolute():
            loaded[key] = str((path.parent / value).resolve())
    dotlist = [o.removeprefix("problem.") for o in overrides]
    return OmegaConf.merge(OmegaConf.structured(ProblemConfig), loaded, OmegaConf.from_dotlist(dotlist))


def load_saved(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved config a run saved, with resumable overrides applied."""
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if not key.startswith(RESUMABLE_PREFIXES):
            raise ConfigError(
                f"'{key}' cannot be changed on resume; only budgets (budget.*), run.progress, "
                "search.proposers, search.evaluators and the certification time limits "
                "(verification.gate_seconds, certify_seconds, certify_grace) can"
            )
    try:
        saved = OmegaConf.merge(OmegaConf.structured(Config), load_yaml(path, "the run's config"))
        cfg = OmegaConf.merge(saved, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    OmegaConf.set_struct(cfg, True)
    validate(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def validate(cfg: DictConfig) -> None:
    """Value checks the schema's types cannot express."""
    checks = [
        (cfg.problem.objective in ("maximize", "minimize"), "problem.objective must be 'maximize' or 'minimize'"),
        (cfg.search.islands >= 1, "search.islands must be at least 1"),
        (cfg.search.proposers >= 1, "search.proposers must be at least 1"),
        (cfg.search.evaluators >= 1, "search.evaluators must be at least 1"),
        (cfg.search.queue_size >= 1, "search.queue_size must be at least 1"),
        (cfg.search.archive_size >= 1, "search.archive_size must be at least 1"),
        (cfg.budget.evaluations >= 0, "budget.evaluations must not be negative"),
        (cfg.problem.case_timeout > 0, "problem.case_timeout must be positive"),
        (cfg.run.progress_interval >= 0, "run.progress_interval must not be negative (0: no progress lines)"),
        (cfg.verification.gate_seconds > 0, "verification.gate_seconds must be positive"),
        (cfg.verification.certify_seconds > 0, "verification.certify_seconds must be positive"),
        (cfg.verification.certify_grace >= 0, "verification.certify_grace must not be negative"),
        (min(cfg.llm.numeric_rate, cfg.llm.line_rate, cfg.llm.crossover_rate) >= 0,
         "llm.numeric_rate, llm.line_rate and llm.crossover_rate must not be negative"),
        (cfg.llm.numeric_rate + cfg.llm.line_rate + cfg.llm.crossover_rate > 0,
         "at least one of llm.numeric_rate, llm.line_rate, llm.crossover_rate must be positive"),
        (cfg.sandbox.backend in ("process", "bwrap", "docker", "auto"),
         "sandbox.backend must be one of process, bwrap, docker, auto"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _describe(error: Exception) -> str:
    """One line naming the offending key, from hydra's or omegaconf's error."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        first = str(cause).strip().splitlines()[0]
        if "not in" in first and key:
            return f"unknown config key '{key}' (check the spelling; see `evolve run --help`)"
        return f"{key}: {first}" if key else first
    return str(error).strip().splitlines()[0]


def _missing_option(error: MissingConfigException) -> str:
    """'problem=nope' -> which names exist in that group."""
    group, _, name = (error.missing_cfg_file or "").partition("/")
    if name and error.options:
        return f"unknown {group} '{name}'; available: {', '.join(sorted(error.options))}"
    return str(error).strip().splitlines()[0]