"""Where a problem is found: `problem=NAME` or `problem=PATH`.

A problem is one folder holding its `problem.yaml` (paths in it are relative to the folder).
A NAME is looked up among

- the bundled problems, `problems/NAME/problem.yaml` beside the package (or in a wheel's copy);
- problems installed packages register under the entry point group `evolve.problems`, e.g. in
  a package's pyproject.toml

      [project.entry-points."evolve.problems"]
      knapsack = "my_package.knapsack"          # a module or package whose folder holds problem.yaml
      tiling = "my_package.problems:TILING_DIR"  # or an attribute naming the folder (or its problem.yaml)

A PATH (anything with a path separator, ending in .yaml, or an existing folder that is no
problem's name) is a problem folder or its problem.yaml.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from evolve.paths import PROBLEMS, ROOT
from evolve.problem import ProblemError

ENTRY_POINT_GROUP = "evolve.problems"
PROBLEM_FILE = "problem.yaml"
DEFAULT_PROBLEM = "circle_packing"  # what `evolve run` solves when no problem= is given
BUNDLED = "bundled"


class ProblemNotFound(ProblemError):
    """No problem by that name or at that path; the message lists what exists."""


@dataclass(frozen=True)
class ProblemEntry:
    name: str
    origin: str  # "bundled", or the installed distribution that registers it
    file: Path | None  # its problem.yaml; None when the registration is broken (see `error`)
    error: str = ""


def bundled_problems() -> list[ProblemEntry]:
    return [ProblemEntry(path.parent.name, BUNDLED, path) for path in sorted(PROBLEMS.glob(f"*/{PROBLEM_FILE}"))]


def registered_problems() -> list[ProblemEntry]:
    """Problems installed distributions register, in name order; a broken one carries its error."""
    found = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        origin = point.dist.name if point.dist is not None else "an installed package"
        try:
            found.append(ProblemEntry(point.name, origin, _entry_point_file(point)))
        except ProblemError as error:
            found.append(ProblemEntry(point.name, origin, None, str(error)))
    return found


def available_problems() -> list[ProblemEntry]:
    """Every problem a name can select: bundled ones first (a bundled name is never shadowed)."""
    return bundled_problems() + registered_problems()


def find_problem(spec: str) -> Path:
    """The problem.yaml that `problem=<spec>` means; ProblemNotFound says what exists instead."""
    if not _looks_like_path(spec):
        if (PROBLEMS / spec / PROBLEM_FILE).is_file():  # a bundled name is never shadowed
            return PROBLEMS / spec / PROBLEM_FILE
        matches = [entry for entry in registered_problems() if entry.name == spec]
        if len(matches) > 1:
            raise ProblemNotFound(f"problem '{spec}' is registered by {' and by '.join(e.origin for e in matches)}; "
                                  "run the one you mean by its folder: problem=PATH")
        if matches:
            entry = matches[0]
            if entry.file is None:
                raise ProblemNotFound(f"problem '{spec}' registered by {entry.origin} cannot be used: {entry.error}")
            return entry.file
        if not Path(spec).expanduser().is_dir():
            names = ", ".join(entry.name for entry in available_problems())
            raise ProblemNotFound(f"unknown problem '{spec}'; available: {names} (or problem=PATH to a problem "
                                  "folder; `evolve problems` lists them)")
    return problem_file_at(Path(spec))


def problem_file_at(path: Path) -> Path:
    """A folder's problem.yaml, or the file itself; ProblemNotFound if neither is there."""
    path = path.expanduser().resolve()
    if path.is_dir():
        if not (path / PROBLEM_FILE).is_file():
            raise ProblemNotFound(f"{path} has no {PROBLEM_FILE}; a problem folder holds one (create a folder "
                                  "with `evolve new-problem NAME`)")
        return path / PROBLEM_FILE
    if not path.is_file():
        raise ProblemNotFound(f"problem file not found: {path}")
    return path


def portable(path: Path) -> str:
    """How a run records its problem file: a bundled one relative to the bundle, so a moved checkout
    or a reinstalled wheel still finds it; any other absolutely."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(PROBLEMS.resolve()) else str(path)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith((".yaml", ".yml")) or spec.startswith(("~", "."))


def _entry_point_file(point: EntryPoint) -> Path:
    """The problem.yaml an entry point names: `module` (its folder) or `module:attribute` (a path)."""
    module_name, _, attribute = point.value.partition(":")
    module_name = module_name.strip()
    try:
        if attribute:
            target = getattr(importlib.import_module(module_name), attribute.strip())
            return problem_file_at(Path(target))
        spec = importlib.util.find_spec(module_name)
    except ProblemNotFound as error:
        raise ProblemError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - a broken third-party package is reported, never fatal
        raise ProblemError(f"entry point {point.value!r} failed: {type(error).__name__}: {error}") from None
    if spec is None:
        raise ProblemError(f"entry point {point.value!r}: no module {module_name!r} is installed")
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        folder = Path(spec.origin).parent
    else:
        raise ProblemError(f"entry point {point.value!r}: module {module_name!r} has no folder")
    try:
        return problem_file_at(folder)
    except ProblemNotFound as error:
        raise ProblemError(str(error)) from None
