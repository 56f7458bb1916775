"""Where a run's problem definition is now, and whether it was edited since the run started.

A run saves its problem section in its config.yaml, together with the file it came from
(`problem.file`: its problem.yaml; a bundled one relative to the bundle), the problem.*
overrides given with it, and that file's path relative to the run directory. On resume the
file is found again (where it was; else by the relative path, when the problem folder and the
run moved together; else where `problem=NEW_PATH` says) and read again: an edit to a setting
the scores depend on is refused by name, since the run's saved copy would silently hide it;
`evolve rescore` adopts it on purpose.

Runs started before each bundled problem became one folder (`configs/problem/NAME.yaml`,
`evaluators/NAME.py` and `problems/NAME/`) are refused by `resume` with that reason; `evolve
rescore` brings them over to `problems/NAME/problem.yaml` (a new evaluator epoch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evolve.config import reread_problem
from evolve.paths import PROBLEMS, resolve
from evolve.problem import ProblemError
from evolve.problem_registry import PROBLEM_FILE, portable

OLD_BUNDLED_CONFIG = "configs/problem/"  # where a bundled problem's definition was before the move
OLD_BUNDLED_VERIFIER = "evaluators/"  # and its verifier

SCORED_FIELDS = ("entry", "objective", "case_timeout", "settings", "score_kind")  # what scores depend on (a reference program: in the identity)


class ProblemMoved(ProblemError):
    """The problem file is nowhere it was; the message says how to point to it."""


def find_problem_file(problem: DictConfig, run_dir: Path) -> Path | None:
    """The run's problem file: where it was, else relative to the run directory (both moved together)."""
    places = [resolve(problem.file)] if problem.get("file") else []
    if problem.get("file_from_run"):
        places.append((run_dir / problem.file_from_run).resolve())
    return next((place for place in places if place.is_file()), None)


class ProblemLayoutMoved(ProblemError):
    """A run of a bundled problem started before the problem's files moved into one folder."""


def old_layout_name(saved: DictConfig) -> str | None:
    """The bundled problem's name when the run was started on the three-folder layout, else None."""
    file, verifier = str(saved.get("file") or ""), str(saved.get("verifier") or "")
    if file.startswith(OLD_BUNDLED_CONFIG):
        return Path(file).stem
    if not file and verifier.startswith(OLD_BUNDLED_VERIFIER):  # older still: no file recorded
        return Path(verifier).stem
    return None


def bundled_now(name: str, run_dir: Path) -> Path:
    """Where an old-layout run's problem is now; ProblemLayoutMoved if this installation lacks it."""
    place = PROBLEMS / name / PROBLEM_FILE
    if not place.is_file():
        raise ProblemLayoutMoved(
            f"{run_dir} was started on the old layout (configs/problem/{name}.yaml, evaluators/{name}.py) and "
            f"there is no {place} to bring it over to; move the problem's files into problems/{name}/ with a "
            f"problem.yaml (see docs/writing-a-problem.md), then run `evolve rescore {run_dir}`")
    return place


def current_problem(saved: DictConfig, run_dir: Path, moved_to: Path | None = None) -> DictConfig:
    """The problem section a resumed session uses: re-read from its file, which must not have changed
    anything the scores depend on. A run older than this record (no `problem.file`) keeps its saved copy."""
    name = old_layout_name(saved)
    if name is not None:
        raise ProblemLayoutMoved(
            f"this run was started before bundled problems became one folder each: the files of '{name}' "
            f"moved from configs/problem/{name}.yaml and evaluators/{name}.py into problems/{name}/, so the "
            f"evaluator this run was scored with no longer exists under its names. Bring the run over with "
            f"`evolve rescore {run_dir}` (re-scores its archive under problems/{name}/, a new epoch), then resume")
    source = moved_to or find_problem_file(saved, run_dir)
    if source is None:
        if not saved.get("file"):
            return saved
        raise ProblemMoved(
            f"the problem file {saved.file} is gone (was its folder moved?); resume with "
            f"`evolve resume {run_dir} problem=NEW_PATH/problem.yaml`: the problem is accepted if its verifier, "
            "cases and settings are the ones this run used")
    if not saved.get("file"):  # an older run pointed to a moved folder: no start-time overrides are known
        saved = OmegaConf.merge(saved, {"file": str(source), "file_overrides": []})
    current = reread_problem(saved, source)
    edits = scored_edits(saved, current)
    if edits:
        raise ProblemEdited(
            f"{source} changed since this run started ({edits}); the run's scores would not be comparable. "
            f"Restore it, or adopt the change with `evolve rescore {run_dir}` (a new evaluator epoch)")
    return locate(current, source, run_dir)


def locate(problem: DictConfig, source: Path, run_dir: Path) -> DictConfig:
    """Record where the problem file is: a bundled one relative to the bundle (found again after a
    checkout moves or a wheel is reinstalled), any other absolutely and from the run directory."""
    problem.file = portable(source)
    if not source.resolve().is_relative_to(PROBLEMS.resolve()):
        problem.file_from_run = os.path.relpath(source, run_dir.resolve())
    return problem


class ProblemEdited(ProblemError):
    """A setting the scores depend on differs from the run's; the message names it."""


def scored_edits(saved: DictConfig, current: DictConfig) -> str:
    """'settings.scale: 1.0 -> 2.0; case_timeout: 10.0 -> 20.0' for the scored fields that differ."""
    old = _flat({key: _plain(saved.get(key)) for key in SCORED_FIELDS})
    new = _flat({key: _plain(current.get(key)) for key in SCORED_FIELDS})
    return "; ".join(f"{key}: {old.get(key, 'absent')} -> {new.get(key, 'absent')}"
                     for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key))


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = float(value) if type(value) is int else value  # 10 and 10.0 are one timeout
    return flat
