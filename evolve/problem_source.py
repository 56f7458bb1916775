"""Where a run's problem definition is now, and whether it was edited since the run started.

A run saves its problem section in its config.yaml, together with the file it came from
(`problem.file`: a problem.yaml, or a bundled configs/problem/NAME.yaml), the problem.*
overrides given with it, and that file's path relative to the run directory. On resume the
file is found again (where it was; else by the relative path, when the problem folder and the
run moved together; else where `problem=NEW_PATH` says) and read again: an edit to a setting
the scores depend on is refused by name, since the run's saved copy would silently hide it;
`evolve rescore` adopts it on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evolve.config import reread_problem
from evolve.paths import CONFIGS, resolve
from evolve.problem import ProblemError

SCORED_FIELDS = ("entry", "objective", "case_timeout", "settings", "score_kind")  # what scores depend on (a reference program: in the identity)


class ProblemMoved(ProblemError):
    """The problem file is nowhere it was; the message says how to point to it."""


def find_problem_file(problem: DictConfig, run_dir: Path) -> Path | None:
    """The run's problem file: where it was, else relative to the run directory (both moved together)."""
    places = [resolve(problem.file)] if problem.get("file") else []
    if problem.get("file_from_run"):
        places.append((run_dir / problem.file_from_run).resolve())
    return next((place for place in places if place.is_file()), None)


def current_problem(saved: DictConfig, run_dir: Path, moved_to: Path | None = None) -> DictConfig:
    """The problem section a resumed session uses: re-read from its file, which must not have changed
    anything the scores depend on. A run older than this record (no `problem.file`) keeps its saved copy."""
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
    """Record where the problem file is, absolutely and from the run directory."""
    if not source.is_relative_to(CONFIGS):
        problem.file = str(source)
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
