"""A problem: seed program, statement, cases by split, and its host-side verifier.

The verifier is a Python file with one required function:

    def verify(case: Case, run: CaseRun, settings: dict) -> Verdict

and, optionally, `aggregate(verdicts: list[Verdict], settings: dict) -> float`
(default: the mean of the case scores).

A *certifying* verifier (objective: minimize) also has both of

    def gate(subject, bound: str, settings: dict, time_limit: float) -> dict
    def certify(subject, settings: dict, upper: str | None, lower: float | None, time_limit: float) -> dict

where the search score is only an optimistic estimate and a champion needs a
proven bound; see evolve/certification.py for the contract. The engine runs
them in a separate, killable process. `verify` sees the candidate's output
for one case, exactly as it came back from the sandbox (JSON data, untrusted),
and the case's private data (labels, references) that never enter a sandbox.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from evolve import bundle
from evolve.errors import EvolveError
from evolve.paths import ROOT, expose_evaluators, resolve
from evolve.sandbox.base import ProgramSpec
from evolve.verifier_source import VerifierSource, local_imports  # noqa: F401 - local_imports: part of this API

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from evolve.settings import ProblemSettings, Settings

SEARCH = "search"
REQUIRED_FIELDS = ("name", "seed_program", "cases", "verifier")  # everything else has a default (evolve/config.py)
HELDOUT = "heldout"


class ProblemError(EvolveError, ValueError):
    """A problem definition that cannot be loaded; the message says what to fix."""


@dataclass(frozen=True)
class Case:
    id: str
    split: str
    inputs: dict[str, Any]  # sent to the candidate
    private: dict[str, Any] = field(default_factory=dict)  # seen by the verifier only


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one case. Invalid answers disqualify the program."""

    valid: bool
    score: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    feedback: str = ""


@dataclass(frozen=True)
class Problem:
    name: str
    seed_code: str
    statement: str
    entry: str
    maximize: bool
    case_timeout: float
    score_tolerance: float
    cases: tuple[Case, ...]
    settings: dict[str, Any]
    verify: Callable[..., Verdict]
    aggregate: Callable[..., float] | None
    verifier_path: Path
    files: tuple[Path, ...]  # everything the evaluator identity covers
    verifier_source: VerifierSource  # the verifier's code as read at load: the only code workers ever run
    contents: dict[Path, bytes]  # each of `files` as read at load: the identity never re-reads the disk
    certifying: bool = False  # the verifier has gate() and certify(): only certified bounds make champions
    home: Path = ROOT  # the problem's folder: file names in the identity are relative to it (shared code: to ROOT)
    measured: bool = False  # score_kind: measured (timed): champions must win a re-measurement
    reference_code: str | None = None  # run with every evaluation; case scores become ratios to it
    seed_path: Path | None = None  # where the seed came from (for messages about it)
    program: ProgramSpec | None = None  # a compiled / multi-file candidate: seed_code is a bundle
    verify_on: str | None = None  # on a cluster: "node" opts in to judging on the nodes (evolve/cluster/verify.py)

    def split(self, name: str) -> tuple[Case, ...]:
        return tuple(case for case in self.cases if case.split == name)

    def fitness(self, score: float) -> float:
        """Larger is better, whatever the objective."""
        return score if self.maximize else -score

    def identity_parts(self, sandbox: str = "", on_disk: bool = False) -> dict[str, str]:
        """What the evaluator identity covers, part by part, so a change can be named.

        By default, of the files as read at load (the code that judges); `on_disk`: as they are
        now, to notice that someone changed them during the run.
        """
        parts = {_label(path, self.home): hashlib.sha256(path.read_bytes() if on_disk else self.contents[path])
                 .hexdigest()[:16] for path in self.files}
        fields = {"settings": self.settings, "entry": self.entry, "maximize": self.maximize,
                  "case_timeout": self.case_timeout}
        if self.program is not None:  # how candidates are built and run decides their scores too
            fields["program"] = dataclasses.asdict(self.program)
        if self.reference_code is not None:  # only then: older runs keep their identity
            fields["reference"] = hashlib.sha256(self.reference_code.encode()).hexdigest()
        settings = json.dumps(fields, sort_keys=True)
        parts["evaluator settings"] = hashlib.sha256(settings.encode()).hexdigest()[:16]
        parts[ENGINE_SCORING] = scoring_code_hash(self.certifying)
        parts[SANDBOX_PART] = sandbox
        return parts


def _label(path: Path, home: Path) -> str:
    """A file's name in the identity: relative to the problem's folder (or the project) when inside it,
    so a moved folder or checkout still matches."""
    for base in (home, ROOT):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


ENGINE_SCORING = "engine scoring"  # the host-side code between the verifier and a stored score
SANDBOX_PART = "sandbox"
NOT_FILES = ("evaluator settings", ENGINE_SCORING, SANDBOX_PART)
# The engine's own code a score passes through on the host: running verify() and aggregate() and
# judging their results (evaluation.py, the verification worker), the Case and Verdict types, and for certifying
# problems the running of gate() / certify(). None: the whole module.
SCORING_CODE: dict[str, tuple[str, ...] | None] = {
    "evaluation.py": None, "problem.py": ("Case", "Verdict"),
    "verify_worker.py": None,  # runs verify() and aggregate() and judges what they return
    "verifier_source.py": None,  # loads the frozen verifier in the worker
    "calibration.py": None,  # case scores relative to a reference program
}
CERTIFYING_CODE: dict[str, tuple[str, ...] | None] = {"certification.py": None, "certify_worker.py": None}


@functools.lru_cache(maxsize=None)
def scoring_code_hash(certifying: bool = False) -> str:
    """A hash of the engine's scoring code, by its syntax tree without docstrings: comments,
    docstrings and layout do not change it, code does. Read once per process: the code that
    scores is the code this process loaded."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name, classes in {**SCORING_CODE, **(CERTIFYING_CODE if certifying else {})}.items():
        code = _code_only((package / name).read_text(), classes)
        digest.update(name.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()[:16]


def _code_only(source: str, classes: tuple[str, ...] | None) -> str:
    tree = ast.parse(source)
    if classes is not None:
        tree.body = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name in classes]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@dataclass(frozen=True)
class IdentityDiff:
    """How a recomputed evaluator identity differs from a run's stored one."""

    changes: str  # what would change the scores ('' if nothing): verifier, data, settings, engine scoring code
    sandbox: tuple[str, str] | None  # (old, new) when only the sandbox differs in that part
    adopted: tuple[str, ...]  # parts this version covers that the run's identity predates
    relabelled: bool  # the same file contents under other names (a moved problem folder)


def compare_identity(old: dict[str, str], new: dict[str, str]) -> IdentityDiff:
    """Compare identities part by part; files are matched by content when their names moved."""
    plain = [key for key in NOT_FILES if key != SANDBOX_PART]
    adopted = tuple(key for key in plain if key not in old and key in new)  # a run older than the part
    changes = [f"{key}: {old[key]} -> {new.get(key, 'absent')}" for key in plain
               if key in old and old[key] != new.get(key)]
    old_files = {k: v for k, v in old.items() if k not in NOT_FILES}
    new_files = {k: v for k, v in new.items() if k not in NOT_FILES}
    relabelled = False
    if old_files != new_files:
        if sorted(old_files.values()) == sorted(new_files.values()) and len(old_files) == len(new_files):
            relabelled = True
        else:
            changes += [f"{key}: {old_files.get(key, 'absent')} -> {new_files.get(key, 'absent')}"
                        for key in sorted(set(old_files) | set(new_files)) if old_files.get(key) != new_files.get(key)]
    sandbox = None
    if old.get(SANDBOX_PART) != new.get(SANDBOX_PART):
        sandbox = (old.get(SANDBOX_PART, "absent"), new.get(SANDBOX_PART, "absent"))
    return IdentityDiff("; ".join(sorted(changes)), sandbox, adopted, relabelled)


def identity_hash(parts: dict[str, str]) -> str:
    """One hash over the parts: stored on the run and on every evaluation."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def describe_changes(old: dict[str, str], new: dict[str, str]) -> str:
    """'verifier.py: 1a2b -> 3c4d; ...' for the parts that differ."""
    changes = [f"{key}: {old.get(key, 'absent')} -> {new.get(key, 'absent')}"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return "; ".join(changes)


def load_problem(cfg: Settings | DictConfig) -> Problem:
    """Load the problem a config names; every missing or malformed part is a ProblemError."""
    from evolve.settings import MISSING, as_settings  # here: a verifier importing this module needs no hydra

    p = as_settings(cfg).problem
    compiled = bool(p.files)
    required = [key for key in REQUIRED_FIELDS if not (compiled and key == "seed_program")]
    missing = [key for key in required if getattr(p, key) in (MISSING, "", None)]
    if missing:
        name = "the problem" if "name" in missing else f"problem '{p.name}'"
        raise ProblemError(f"{name} does not set {', '.join(missing)} in its problem.yaml; add "
                           f"{' and '.join(f'`{key}: ...`' for key in missing)} (see docs/writing-a-problem.md)")
    cases_path, verifier_path = resolve(p.cases), resolve(p.verifier)
    program, seed_path, seed_code = None, None, ""
    if compiled:
        program, seed_path, seed_code = _compiled_program(p, verifier_path)
    else:
        seed_path = resolve(p.seed_program)
    files = [("seed_program", seed_path), ("cases", cases_path), ("verifier", verifier_path)]
    prompt_path = resolve(p.prompt) if p.prompt else None
    if prompt_path is not None:
        files.append(("prompt", prompt_path))
    for label, path in files:
        if not path.is_file():
            raise ProblemError(f"problem '{p.name}': {label} file not found: {path}; fix `{label}:` in its "
                               "problem.yaml (relative paths are taken from the problem.yaml's folder)")
    statement = prompt_path.read_text() if prompt_path is not None else p.description
    if program is None:
        seed_code = seed_path.read_text()
        check_seed(seed_code, seed_path, p.entry)
    # Read once: these bytes are hashed into the identity and are the code every worker runs.
    expose_evaluators()  # before the helper modules are looked for: verifiers import evaluators.<helper>
    verifier_source = _read_verifier_source(verifier_path)
    cases_bytes = cases_path.read_bytes()
    module = _exec_verifier(verifier_path, verifier_source.source)
    certifying = _certifying(module, verifier_path, p.name, p.objective)
    if program is not None and program.stdin != "json":
        _check_stdin_input(program.stdin, cases_path, _load_cases(cases_path, cases_bytes), p.name)
    if program is not None and p.reference:
        if p.reference != "seed":
            raise ProblemError(f"problem '{p.name}': a compiled problem's reference can only be `seed` "
                               f"(its files as listed), not {p.reference!r}")
        reference = seed_code
    else:
        reference = _reference(p.reference, seed_path, p.name)
    return Problem(
        name=p.name,
        seed_code=seed_code,
        statement=statement,
        entry=p.entry,
        maximize=p.objective == "maximize",
        case_timeout=float(p.case_timeout),
        score_tolerance=float(p.score_tolerance),
        cases=_load_cases(cases_path, cases_bytes),
        settings=copy.deepcopy(p.settings),
        verify=module.verify,
        aggregate=getattr(module, "aggregate", None),
        verifier_path=verifier_path,
        files=tuple(verifier_source.files()) + (cases_path,),
        verifier_source=verifier_source,
        contents={**verifier_source.files(), cases_path: cases_bytes},
        certifying=certifying,
        home=_home(p, verifier_path),
        measured=p.score_kind == "measured",
        reference_code=reference,
        seed_path=seed_path,
        program=program,
        verify_on=p.verify_on,
    )


STDOUT_MODES = ("json", "text")


def _compiled_program(p: ProblemSettings, verifier_path: Path) -> tuple[ProgramSpec, Path, str]:
    """(how to build and run it, the first file, the seed bundle) of a problem with `files:`."""
    base = _home(p, verifier_path)  # paths in files: are relative to the problem.yaml's folder
    where = f"problem '{p.name}'"
    if not str(p.build.command).strip() and not str(p.run.command).strip():
        raise ProblemError(f"{where} lists files but sets no `run: {{command: ...}}` (and usually a `build: "
                           "{command: ...}`) in its problem.yaml; see docs/writing-a-problem.md")
    if not str(p.run.command).strip():
        raise ProblemError(f"{where}: set `run: {{command: ./program}}`, how the built program is started for a case")
    if p.run.stdout not in STDOUT_MODES:
        raise ProblemError(f"{where}: run.stdout is {p.run.stdout!r}; use json (one JSON value) or text")
    if not str(p.run.stdin).strip():
        raise ProblemError(f"{where}: run.stdin is empty; use json (the inputs as JSON) or the name of a string input")
    sources = []
    for entry in p.files:
        if isinstance(entry, str):
            name, whole = entry, False
        elif isinstance(entry, Mapping) and isinstance(entry.get("path"), str) \
                and set(entry.keys()) <= {"path", "whole"}:
            name, whole = entry["path"], bool(entry.get("whole", False))
        else:
            raise ProblemError(f"{where}: each entry of files: is a path or {{path: ..., whole: true}}, not {entry!r}")
        try:
            bundle.check_path(name)
        except bundle.BundleError as error:
            raise ProblemError(f"{where}: files: {error}") from None
        path = base / name
        if not path.is_file():
            raise ProblemError(f"{where}: file not found: {path}; fix `files:` in its problem.yaml "
                               "(paths are taken from the problem.yaml's folder)")
        sources.append(bundle.SourceFile(name, path.read_text(), whole))
    try:
        code = bundle.join(sources)
    except bundle.BundleError as error:
        raise ProblemError(f"{where}: {error}") from None
    spec = ProgramSpec(build=str(p.build.command), run=str(p.run.command), stdin=str(p.run.stdin),
                       stdout=str(p.run.stdout), build_timeout=float(p.build.timeout),
                       build_memory_mb=int(p.build.memory_mb), build_max_file_mb=int(p.build.max_file_mb))
    return spec, base / sources[0].path, code


def _check_stdin_input(name: str, path: Path, cases: tuple[Case, ...], problem: str) -> None:
    """run.stdin names an input: every case must have it as a string (the program reads it raw)."""
    for case in cases:
        if not isinstance(case.inputs.get(name), str):
            raise ProblemError(f"problem '{problem}': run.stdin is {name!r}, but case {case.id!r} in {path} has no "
                               f"string input {name!r}; give every case one, or use `stdin: json`")


def _home(p: ProblemSettings, verifier_path: Path) -> Path:
    """The problem's folder: where its problem.yaml is; else the verifier's."""
    source = p.file
    return resolve(source).parent if source else verifier_path.parent


def _reference(name: str | None, seed_path: Path, problem: str) -> str | None:
    """The reference program's code: 'seed', a path, or None."""
    if not name:
        return None
    path = seed_path if name == "seed" else resolve(name)
    if not path.is_file():
        raise ProblemError(f"problem '{problem}': reference program not found: {path} "
                           "(use 'seed' or the path of a program)")
    return path.read_text()


def check_seed(code: str, path: Path, entry: str) -> None:
    """What would otherwise surface only as every case failing: syntax and the entry function."""
    try:
        tree = ast.parse(code, filename=str(path))
    except SyntaxError as error:
        raise ProblemError(f"seed program {path}, line {error.lineno}: SyntaxError: {error.msg}; "
                           "the seed must be a valid Python program") from None
    if entry not in _top_level_names(tree):
        raise ProblemError(f"seed program {path} defines no top-level `{entry}`, the function the runner calls "
                           f"with each case's inputs; set `entry: <function name>` in the problem.yaml "
                           f"(default: main) or define `{entry}` in the seed")


def check_evolvable(problem: Problem, seed_path: str | Path) -> None:
    """A search needs EVOLVE-BLOCK markers in the seed: say so at the start, not after 50 rejected edits."""
    from evolve.edits import EditRejected, split_blocks

    if problem.program is not None:
        files = bundle.parse(problem.seed_code)
        marked = [f.path for f in files if _has_markers(f.text)]
        if not marked and not any(f.whole for f in files):
            raise ProblemError(f"problem '{problem.name}': none of its files may change; mark code with "
                               "`// EVOLVE-BLOCK-START` / `// EVOLVE-BLOCK-END` lines (or `#` comments) "
                               "or list a file as {path: NAME, whole: true}")
        for source in files:
            if source.path in marked:
                try:
                    split_blocks(source.text)
                except EditRejected as error:
                    raise ProblemError(f"file {source.path}: {error}") from None
        return
    try:
        split_blocks(problem.seed_code)
    except EditRejected as error:
        raise ProblemError(f"seed program {seed_path}: {error}; mark the code the search may change with a "
                           "`# EVOLVE-BLOCK-START` line before it and `# EVOLVE-BLOCK-END` after it") from None


def _has_markers(text: str) -> bool:
    from evolve.edits import START

    return START in text


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _certifying(module: ModuleType, path: Path, name: str, objective: str) -> bool:
    """Whether the verifier certifies bounds: both gate() and certify(), or neither."""
    hooks = {hook: callable(getattr(module, hook, None)) for hook in ("gate", "certify")}
    if hooks["gate"] != hooks["certify"]:
        has, lacks = ("gate", "certify") if hooks["gate"] else ("certify", "gate")
        raise ProblemError(f"verifier {path} defines {has}() but not {lacks}(); a certifying verifier needs both")
    if hooks["gate"] and objective != "minimize":
        raise ProblemError(f"problem '{name}': verifier {path} certifies upper bounds (gate/certify), which needs "
                           f"objective: minimize (the config says {objective})")
    return hooks["gate"]


def _read_verifier_source(path: Path) -> VerifierSource:
    try:
        return VerifierSource.read(path)
    except OSError as error:
        raise ProblemError(f"verifier {path} (or a module it imports) cannot be read: {error}") from None


def load_verifier(path: Path) -> ModuleType:
    """Import a verifier file as it is on disk now; any failure is a ProblemError naming the file."""
    if path.suffix != ".py":
        raise ProblemError(f"verifier {path} is not a Python file")
    try:
        source = path.read_bytes()
    except OSError as error:
        raise ProblemError(f"verifier {path} cannot be read: {error}") from None
    return _exec_verifier(path, source)


def load_frozen_verifier(source: VerifierSource) -> ModuleType:
    """In a worker process: the verifier and its helper modules run from the bytes read at load, not from disk."""
    source.serve()
    return _exec_verifier(source.path, source.source)


def _exec_verifier(path: Path, source: bytes) -> ModuleType:
    """A fresh module from the verifier's source; tracebacks name its file. Failures are ProblemErrors."""
    expose_evaluators()
    spec = importlib.util.spec_from_loader(f"evolve_verifier_{path.stem}", loader=None, origin=str(path))
    assert spec is not None
    spec.has_location = True
    module = importlib.util.module_from_spec(spec)
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    except Exception as error:  # noqa: BLE001 - report any import failure the same way
        raise ProblemError(f"verifier {path} failed to import: {type(error).__name__}: {error}") from None
    if not callable(getattr(module, "verify", None)):
        raise ProblemError(f"verifier {path} has no verify(case, run, settings) function")
    return module


def _load_cases(path: Path, content: bytes) -> tuple[Case, ...]:
    try:
        data = json.loads(content)
    except ValueError as error:
        raise ProblemError(f"cases file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not data.get(SEARCH):
        raise ProblemError(f"cases file {path} must be an object with a non-empty 'search' list")
    unknown = set(data) - {SEARCH, HELDOUT}
    if unknown:
        raise ProblemError(f"cases file {path}: unknown split(s) {sorted(unknown)}; use 'search' and 'heldout'")
    cases, seen = [], set()
    for split in (SEARCH, HELDOUT):
        for item in data.get(split, []):
            if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("inputs"), dict):
                raise ProblemError(f"cases file {path}: each case needs an 'id' and an 'inputs' object")
            if item["id"] in seen:
                raise ProblemError(f"cases file {path}: duplicate case id {item['id']!r}")
            seen.add(item["id"])
            cases.append(Case(str(item["id"]), split, item["inputs"], item.get("private", {})))
    return tuple(cases)
