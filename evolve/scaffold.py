"""`evolve new-problem NAME`: a problem folder that runs as-is, to be edited into your own.

One layout, from the templates in `evolve/scaffold_templates/`: a self-contained folder
(`problem.yaml`, `seed.py`, `verifier.py`, `cases.json`, `prompt.md`; paths in problem.yaml are
relative to its folder). By default it is ./NAME, run as `problem=./NAME`; `--bundled` puts it in
this source checkout's `problems/NAME/`, run as `problem=NAME`, exactly as the bundled problems are.

Existing files are never overwritten: every target is checked before the first write.
"""

from __future__ import annotations

import keyword
from pathlib import Path

from evolve.errors import EvolveError
from evolve.paths import CONFIGS, PROBLEMS, ROOT

TEMPLATES = Path(__file__).resolve().parent / "scaffold_templates"
FILES = ("problem.yaml", "seed.py", "verifier.py", "cases.json", "prompt.md")


class ScaffoldError(EvolveError, ValueError):
    """The problem cannot be created; the message says what to change."""


def new_problem(name: str, directory: Path | None = None, *, root: Path | None = None) -> list[Path]:
    """Create the files of problem `name`; returns the paths created.

    `directory`: the folder to create. None: `problems/NAME` of the checkout `root` (default:
    this one, which must be a source checkout).
    """
    check_name(name)
    folder = Path(directory).expanduser().resolve() if directory is not None else _bundled_folder(name, root)
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} exists and is not a directory")
    if _inside(folder, CONFIGS):
        raise ScaffoldError(f"{folder} is inside configs/, which holds no problems; a problem is one folder: "
                            f"use `evolve new-problem {name} --bundled` (problems/{name}/) or --dir PATH")
    targets = {folder / file: _render(file, name) for file in FILES}
    existing = [path for path in targets if path.exists()]
    if existing:
        raise ScaffoldError(f"{existing[0]} already exists; choose another name or directory "
                            "(new-problem never overwrites files)")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(targets)


def check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise ScaffoldError(f"problem name {name!r} must be a Python identifier (letters, digits and "
                            "underscores, not starting with a digit, not a keyword), e.g. my_problem")


def _bundled_folder(name: str, root: Path | None) -> Path:
    if root is not None:
        return root / "problems" / name
    if not (ROOT / "pyproject.toml").is_file():
        raise ScaffoldError("not running from a source checkout of evolve; create a problem folder anywhere "
                            f"instead: `evolve new-problem {name}` (or with --dir PATH)")
    return PROBLEMS / name


def _render(template: str, name: str) -> str:
    return (TEMPLATES / template).read_text().replace("{{name}}", name)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder.resolve() or folder.resolve() in path.parents
