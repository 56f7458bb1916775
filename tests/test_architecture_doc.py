"""docs/architecture.md stays true: every file it names exists, and every function or class it
names next to a file is defined in that file (so a rename that forgets the doc fails here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
TOKEN = re.compile(r"`([^`]+)`")


def defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, and Class.method for methods."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}.{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def named_places() -> list[tuple[Path, str | None]]:
    """(file, name) for each `name` that follows a `path/file.py` in the same table cell or sentence."""
    places: list[tuple[Path, str | None]] = []
    for line in DOC.read_text().splitlines():
        for cell in line.split("|"):
            current: Path | None = None
            for token in TOKEN.findall(cell):
                if "/" in token and not token.startswith(("evolve ", "evolve.")):
                    current = ROOT / token
                    places.append((current, None))
                elif current is not None and current.suffix == ".py" and token.endswith(".py"):
                    current = current.parent / token  # a sibling: `evolve/sandbox/docker.py`, `bwrap.py`
                    places.append((current, None))
                elif current is not None and current.suffix == ".py" and re.fullmatch(r"[A-Za-z_][\w.]*", token):
                    places.append((current, token))
    return places


def test_the_doc_names_real_files_and_functions() -> None:
    places = named_places()
    assert len(places) > 40  # the parser found the doc's tables
    missing_files = sorted({str(path.relative_to(ROOT)) for path, _ in places if not path.exists()})
    assert missing_files == []
    missing_names = [f"{path.relative_to(ROOT)}: {name}" for path, name in places
                     if name is not None and path.suffix == ".py" and name not in defined_names(path)]
    assert missing_names == []
