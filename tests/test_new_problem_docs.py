"""`evolve new-problem` writes where the user is, and docs/writing-a-problem.md works as written."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.config import RECORDED_PROBLEM_FIELDS, ProblemConfig
from evolve.paths import PROBLEMS

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-problem.md"
EVOLVE = [sys.executable, "-m", "evolve"]


@pytest.mark.slow
def test_new_problem_without_dir_writes_into_the_current_directory_only(tmp_path: Path) -> None:
    name = f"scaffold_here_{os.getpid()}"
    done = subprocess.run([*EVOLVE, "new-problem", name], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "cases.json", "problem.yaml", "prompt.md", "seed.py", "verifier.py"]
        assert f"problem={tmp_path / name} " in done.stdout  # the folder is the problem
    finally:  # before the fix it wrote into the installed checkout: leave no stray files there
        stray = [PROBLEMS / name]
        for path in stray:
            if path.is_dir():
                for child in path.iterdir():
                    child.unlink()
                path.rmdir()
            elif path.exists():
                path.unlink()
    assert not any(path.exists() for path in stray)


def doc_block(after_heading: str, language: str) -> str:
    text = DOC.read_text()
    start = text.index(after_heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no {language} block after {after_heading!r}"
    return match.group(1)


@pytest.mark.slow
def test_the_verifier_test_snippet_runs_as_written(tmp_path: Path) -> None:
    assert subprocess.run([*EVOLVE, "new-problem", "knap", "--dir", "knap"], cwd=tmp_path,
                          capture_output=True, timeout=60).returncode == 0
    snippet = tmp_path / "knap" / "test_verifier.py"
    snippet.write_text(doc_block("### Test it with valid, invalid and hostile answers", "python"))
    done = subprocess.run([sys.executable, snippet.name], cwd=snippet.parent, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "verifier ok"


def test_the_doc_lists_every_problem_field_with_required_ones_marked() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    fields = {f.name: f for f in dataclasses.fields(ProblemConfig) if f.name not in RECORDED_PROBLEM_FIELDS}
    assert set(rows) == set(fields)
    required = {name for name, f in fields.items() if f.default == "???"}
    assert {name for name, mark in rows.items() if mark == "yes"} == required
