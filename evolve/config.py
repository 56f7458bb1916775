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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from yaml import MarkedYAMLError, YAMLError
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evolve.errors import EvolveError
from evolve.paths import CONFIGS, resolve
from evolve.problem_registry import DEFAULT_PROBLEM, ProblemNotFound, find_problem, portable


class ConfigError(EvolveError, ValueError):
    """A configuration that cannot be used; the message says what to fix."""


@dataclass
class ProgramBuildConfig:
    """How a compiled candidate is built inside the sandbox (problem.files set; docs/writing-a-problem.md)."""

    command: str = ""  # run by /bin/sh -c in the job's scratch folder, where the files are written
    timeout: float = 60.0  # CPU seconds of the build's whole process tree
    memory_mb: int = 2048  # address space of each build process
    max_file_mb: int = 64  # largest file the build may write


@dataclass
class ProgramRunConfig:
    """How a built candidate answers one case."""

    command: str = ""  # run by /bin/sh -c once per case, in the scratch folder
    stdin: str = "json"  # json: the case's inputs as one JSON line; or NAME: the string inputs[NAME], raw
    stdout: str = "json"  # json: stdout parsed as one JSON value; text: the output is stdout as a string


@dataclass
class ProblemConfig:
    name: str = "???"
    description: str = ""
    seed_program: str = "???"  # path to the seed program (relative to the problem.yaml's folder, or absolute)
    prompt: str = ""  # path to the problem statement shown to the proposer
    cases: str = "???"  # path to the cases file: {"search": [...], "heldout": [...]}
    verifier: str = "???"  # path to the host-side verifier module
    entry: str = "main"  # function the runner calls with each case's inputs
    objective: str = "maximize"  # or "minimize"
    case_timeout: float = 10.0  # seconds per case, measured outside the candidate
    score_tolerance: float = 0.0  # re-verified scores this far apart (relative) still agree (timed scores)
    settings: dict[str, Any] = field(default_factory=dict)  # passed to the verifier
    # Where this definition was read from (filled in by evolve): resume re-reads it to catch edits
    # and to find a moved folder. `file_overrides`: the problem.* overrides given with it at start;
    # `file_from_run`: the file's path relative to the run directory.
    file: Optional[str] = None
    file_overrides: list[str] = field(default_factory=list)
    file_from_run: Optional[str] = None
    # exact: today's rules (one evaluation decides, a re-check flags nondeterminism); measured (timed
    # scores): a champion must win a paired, interleaved re-measurement (evolve/champions.py)
    score_kind: str = "exact"
    # A reference program ("seed" or a path) run with every evaluation on the same sandbox, interleaved;
    # each case's score becomes candidate / reference, so a slow and a fast machine agree (evolve/calibration.py)
    reference: Optional[str] = None
    # A compiled or multi-file candidate: its files (a path, or {path: ..., whole: true} for a file
    # editable as a whole), built by `build` and run per case by `run`; replaces seed_program and entry.
    files: list[Any] = field(default_factory=list)
    build: ProgramBuildConfig = field(default_factory=ProgramBuildConfig)
    run: ProgramRunConfig = field(default_factory=ProgramRunConfig)
    # On a Ray cluster, where outputs are judged: driver, or node (each node loads this problem from its own
    # disk and must match the driver's evaluator identity). Unset: cluster.verify_on decides (docs/verification.md).
    verify_on: Optional[str] = None


RECORDED_PROBLEM_FIELDS = ("file", "file_overrides", "file_from_run")  # written by evolve, not by the user


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
    endpoint_down_after: float = 120.0  # seconds an endpoint may fail every request before the run stops
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
    # verify() runs in a process of its own, stopped after this many seconds on one evaluation (all its
    # cases); the candidate whose output it was judging is then invalid (see evolve/evaluation.py).
    verifier_timeout: float = 60.0
    # Held-out alarm (evolve/alarms.py): each champion against the seed and the previous champion, gains relative.
    alarm_margin: float = 0.02  # a held-out loss beyond this fires; a held-out gain below it counts as none
    alarm_ratio: float = 4.0  # fires when the search gain exceeds this many times the held-out gain
    alarm_window: int = 4  # unused (the alarm no longer uses a window); kept so older runs' configs load
    # Certifying verifiers (gate/certify, see evolve/certification.py): each call runs in its own process,
    # killed at its time limit plus the grace.
    gate_seconds: float = 300.0  # "is this challenger better than the champion's certified bound?"
    certify_seconds: float = 900.0  # the challenger's own certified bound
    certify_grace: float = 10.0  # seconds past a time limit before the call's process is killed
    # Measured scores (problem.score_kind=measured, see evolve/champions.py): a contender and the champion
    # are evaluated again `measured_repeats` times each, interleaved; the contender is crowned only if the
    # lower confidence bound of its relative gain exceeds `measured_min_gain`.
    measured_repeats: int = 5
    measured_confidence: float = 0.95
    measured_min_gain: float = 0.02


@dataclass
class ClusterConfig:
    """Evaluation spread over a Ray cluster (evolve/cluster/, docs/scaling.md); null address: this machine only."""

    address: Optional[str] = None  # "auto" (a cluster started on this machine), "HOST:PORT" or "ray://HOST:10001"
    slots_per_node: int = 0  # jobs a node runs at once (0: the CPUs Ray reports for it)
    cases_per_task: int = 0  # a candidate's cases per cluster task (0: spread over the free slots)
    retries: int = 2  # times a task lost with its node is sent to another node before the run stops
    verify_on: str = "driver"  # driver | node: where the verifier judges outputs (node: identities must match)
    connect_timeout: float = 30.0  # seconds to reach the cluster before the run is refused


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
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    seed: int = 0


ConfigStore.instance().store(name="evolve_schema", node=Config)

# Overrides `evolve resume` accepts: budgets and how the run is shown, nothing
# that would change what the search means.
# Certification time limits too: a proven bound is proven however long the solver was given.
# The sandbox tier too (sandbox=NAME; auto picks what answers now), recorded as an event when it
# changes, but not the limits a candidate runs under. And `problem=PATH` (a folder or its
# problem.yaml) for a problem folder that moved.
RESUMABLE_PREFIXES = ("budget.", "run.progress", "search.proposers", "search.evaluators",
                      "verification.gate_seconds", "verification.certify_seconds", "verification.certify_grace",
                      "sandbox.backend", "sandbox.image", "sandbox.pool_size", "sandbox.recycle_after",
                      "sandbox.fresh_container", "sandbox.auto_build", "sandbox.build_method", "sandbox.allow_root",
                      "cluster.address", "cluster.slots_per_node", "cluster.cases_per_task", "cluster.retries",
                      "cluster.connect_timeout")


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose `configs/config.yaml` with command-line style overrides.

    The problem is not a hydra group: `problem=NAME` (bundled or registered by a package) or
    `problem=PATH` (a problem folder or its problem.yaml) names one folder, and its problem.yaml
    becomes the `problem` section (evolve/problem_registry.py); relative paths inside it are
    taken from its folder, and `problem.KEY=VALUE` overrides apply on top.
    """
    problem_file, problem_overrides, rest = _split_problem(list(overrides))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="config", overrides=rest)
        # `+key=value` can add keys hydra's struct mode lets through; the schema cannot.
        cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.to_container(cfg))
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


def _split_problem(overrides: list[str]) -> tuple[Path, list[str], list[str]]:
    """The problem file `problem=NAME|PATH` means (the last one; default: DEFAULT_PROBLEM), the
    `problem.*` overrides that apply on top of it, and the rest (for hydra)."""
    chosen = [item.partition("=")[2] for item in overrides if item.partition("=")[0] == "problem"]
    problem_file = _find_problem(chosen[-1] if chosen else DEFAULT_PROBLEM)
    on_problem = [o.lstrip("+") for o in overrides if o.lstrip("+").startswith("problem.")]
    rest = [o for o in overrides if not o.lstrip("+").startswith(("problem=", "problem."))]
    return problem_file, on_problem, rest


def _find_problem(spec: str) -> Path:
    try:
        return find_problem(spec)
    except ProblemNotFound as error:  # a bad override like any other
        raise ConfigError(str(error)) from None


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
    for key in ("seed_program", "prompt", "cases", "verifier", "reference"):
        value = loaded.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"problem file {path}: {key} must be a file path (a string)")
        if value and value != "seed" and not Path(value).is_absolute():
            loaded[key] = str((path.parent / value).resolve())
    files = loaded.get("files")
    if files and not loaded.get("seed_program"):  # a multi-file program: its first file stands for the seed
        first = files[0] if isinstance(files[0], str) else getattr(files[0], "path", None)
        if isinstance(first, str):
            loaded["seed_program"] = str((path.parent / first).resolve())
    # Merged under a `problem` root, so that an error names the key as the command line does (problem.KEY).
    schema = {"problem": OmegaConf.structured(ProblemConfig)}
    try:
        merged = OmegaConf.merge(schema, {"problem": loaded}, {"problem": _parsed_overrides(overrides, "problem.")})
    except OmegaConfBaseException as error:
        raise ConfigError(f"problem file {path}: {_field_error(schema, loaded) or _describe(error)}") from None
    problem = merged.problem
    problem.file, problem.file_overrides = portable(path), list(overrides)
    return problem


def _parsed_overrides(overrides: list[str], prefix: str) -> DictConfig:
    """`prefix.key=value` overrides as a config, values read by hydra's override grammar, exactly as
    on any other key (`problem.prompt=` is '', `problem.settings={}` a mapping)."""
    patch = OmegaConf.create()
    for override in OverridesParser.create().parse_overrides([o.removeprefix(prefix) for o in overrides]):
        OmegaConf.update(patch, override.key_or_group, override.value(), force_add=True)
    return patch


def _field_error(schema: dict, loaded: DictConfig) -> str | None:
    """The first field of a problem file the schema refuses, named: a failed merge does not always say which."""
    for key in loaded:
        try:
            OmegaConf.merge(schema, {"problem": {key: loaded[key]}})
        except OmegaConfBaseException as error:
            described = _describe(error)
            return described if described.startswith(f"problem.{key}") else f"problem.{key}: {described}"
    return None


def reread_problem(problem: DictConfig, path: Path | None = None) -> DictConfig:
    """The problem definition as its file says now (at `path` if it moved), with the overrides it
    was started with; ConfigError if the file cannot be read."""
    source = path or resolve(problem.file)
    overrides = list(problem.file_overrides)
    try:
        loaded = _problem_from_file(source, overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None
    loaded.file_from_run = problem.file_from_run
    return loaded


def load_saved(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved config a run saved, with resumable overrides applied."""
    _moved_to, rest = moved_problem(overrides)
    dotlist = []
    for item in rest:
        key, _, value = item.lstrip("+~").partition("=")
        if key == "sandbox":
            dotlist.append(f"sandbox.backend={value}")  # the group's other fields are in the saved config
        elif key.startswith(RESUMABLE_PREFIXES):
            dotlist.append(item)
        else:
            raise ConfigError(
                f"'{key}' cannot be changed on resume; only budgets (budget.*), run.progress, "
                "search.proposers, search.evaluators, the sandbox tier (sandbox=NAME), the certification "
                "time limits (verification.gate_seconds, certify_seconds, certify_grace) and the place of a moved "
                "problem (problem=PATH) can"
            )
    try:
        saved = OmegaConf.merge(OmegaConf.structured(Config), load_yaml(path, "the run's config"))
        cfg = OmegaConf.merge(saved, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    OmegaConf.set_struct(cfg, True)
    validate(cfg)
    return cfg


def stored_config(text: str, where: str) -> DictConfig:
    """The config a run stored in its database row (read from another machine, without its run directory)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(text))
    except (OmegaConfBaseException, YAMLError) as error:
        detail = _describe(error) if isinstance(error, OmegaConfBaseException) else str(error).splitlines()[0]
        raise ConfigError(f"the config stored with {where} cannot be read: {detail}") from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def moved_problem(overrides: list[str] | tuple[str, ...]) -> tuple[Path | None, list[str]]:
    """`problem=PATH` given on resume (a problem folder that moved), and the other overrides."""
    moved_to, rest = None, []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "problem":
            moved_to = _find_problem(value)
        else:
            rest.append(item)
    return moved_to, rest


def to_yaml(cfg: DictConfig) -> str:
    """The config as a run saves it: a database password is never written (evolve/db/urls.py)."""
    url = OmegaConf.select(cfg, "database.url")
    if url:
        from evolve.db.urls import without_password  # here: importing the config stays free of SQLAlchemy

        cfg = cfg.copy()
        cfg.database.url = without_password(url)
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
        (cfg.budget.wall_time is None or cfg.budget.wall_time >= 0,
         "budget.wall_time must not be negative (seconds; leave it out for no limit)"),
        (cfg.budget.llm_cost is None or cfg.budget.llm_cost >= 0,
         "budget.llm_cost must not be negative (leave it out for no limit)"),
        (cfg.problem.case_timeout > 0, "problem.case_timeout must be positive"),
        (cfg.verification.verifier_timeout > 0, "verification.verifier_timeout must be positive"),
        (cfg.problem.score_kind in ("exact", "measured"), "problem.score_kind must be 'exact' or 'measured'"),
        (cfg.verification.measured_repeats >= 2, "verification.measured_repeats must be at least 2"),
        (0.5 <= cfg.verification.measured_confidence < 1, "verification.measured_confidence must be in [0.5, 1)"),
        (cfg.verification.measured_min_gain >= 0, "verification.measured_min_gain must not be negative"),
        (cfg.verification.alarm_margin >= 0, "verification.alarm_margin must not be negative"),
        (cfg.verification.alarm_ratio >= 1, "verification.alarm_ratio must be at least 1"),
        (cfg.run.progress_interval >= 0, "run.progress_interval must not be negative (0: no progress lines)"),
        (cfg.verification.gate_seconds > 0, "verification.gate_seconds must be positive"),
        (cfg.verification.certify_seconds > 0, "verification.certify_seconds must be positive"),
        (cfg.verification.certify_grace >= 0, "verification.certify_grace must not be negative"),
        (min(cfg.llm.numeric_rate, cfg.llm.line_rate, cfg.llm.crossover_rate) >= 0,
         "llm.numeric_rate, llm.line_rate and llm.crossover_rate must not be negative"),
        (cfg.llm.numeric_rate + cfg.llm.line_rate + cfg.llm.crossover_rate > 0,
         "at least one of llm.numeric_rate, llm.line_rate, llm.crossover_rate must be positive"),
        (cfg.cluster.verify_on in ("driver", "node"), "cluster.verify_on must be 'driver' or 'node'"),
        (cfg.problem.verify_on in (None, "driver", "node"),
         "problem.verify_on must be 'driver' or 'node' (or left out: cluster.verify_on decides)"),
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