"""`evolve new-problem NAME`: a problem folder that runs as-is, to be edited into your own.

Two layouts from the same templates (`evolve/scaffold_templates/`):

- in a source checkout (`--bundled`, no directory): `problems/NAME/` (seed, cases, prompt),
  `evaluators/NAME.py` and `configs/problem/NAME.yaml`, run as `problem=NAME`;
- with a directory (the command's default: ./NAME): one self-contained folder (`problem.yaml`, `seed.py`,
  `verifier.py`, `cases.json`, `prompt.md`), run as `problem=DIR/problem.yaml`
  from anywhere (paths in problem.yaml are relative to its folder).

Existing files are never overwritten: every target is checked before the first write.
"""

from __future__ import annotations

import keyword
from pathlib import Path

from evolve.paths import CONFIGS, EVALUATORS, PROBLEMS, ROOT

TEMPLATES = Path(__file__).resolve().parent / "scaffold_templates"


class ScaffoldError(ValueError):
    """The problem cannot be created; the message says what to change."""


def new_problem(name: str, directory: Path | None = None, *, root: Path | None = None) -> list[Path]:
    """Create the files of problem `name`; returns the paths created.

    `directory`: create a self-contained folder there instead of adding to the
    checkout. `root`: the checkout to add to (default: this one; for tests).
    """
    check_name(name)
    if directory is not None:
        targets = _folder_layout(name, Path(directory).expanduser().resolve())
    else:
        targets = _checkout_layout(name, root)
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


def _folder_layout(name: str, folder: Path) -> dict[Path, str]:
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} exists and is not a directory")
    if _inside(folder, ROOT / "problems") or _inside(folder, ROOT / "configs"):
        raise ScaffoldError(f"{folder} is inside the project; to add a bundled problem run "
                            f"`evolve new-problem {name} --bundled`")
    paths = {"seed_program": "seed.py", "prompt": "prompt.md", "cases": "cases.json", "verifier": "verifier.py"}
    return {
        folder / "problem.yaml": _render("problem.yaml", name, paths),
        folder / "seed.py": _render("seed.py", name),
        folder / "verifier.py": _render("verifier.py", name),
        folder / "cases.json": _render("cases.json", name),
        folder / "prompt.md": _render("prompt.md", name),
    }


def _checkout_layout(name: str, root: Path | None) -> dict[Path, str]:
    if root is None:
        if not (ROOT / "pyproject.toml").is_file():
            raise ScaffoldError("not running from a source checkout of evolve; create a self-contained "
                                f"problem folder instead: `evolve new-problem {name}` (or with --dir PATH)")
        problems, evaluators, configs = PROBLEMS, EVALUATORS, CONFIGS
    else:
        problems, evaluators, configs = root / "problems", root / "evaluators", root / "configs"
    folder = problems / name
    paths = {
        "seed_program": f"problems/{name}/seed.py",
        "prompt": f"problems/{name}/prompt.md",
        "cases": f"problems/{name}/cases.json",
        "verifier": f"evaluators/{name}.py",
    }
    return {
        configs / "problem" / f"{name}.yaml": _render("problem.yaml", name, paths),
        folder / "seed.py": _render("seed.py", name),
        folder / "cases.json": _render("cases.json", name),
        folder / "prompt.md": _render("prompt.md", name),
        evaluators / f"{name}.py": _render("verifier.py", name),
    }


def _render(template: str, name: str, paths: dict[str, str] | None = None) -> str:
    text = (TEMPLATES / template).read_text()
    for key, value in {"name": name, **(paths or {})}.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _inside(path: Path, folder: Path) -> bool:
    return path == folder.resolve() or folder.resolve() in path.parents
