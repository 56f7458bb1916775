"""An offline search of the bundled compiled example (problems/center_c), as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from evolve import bundle
from evolve.paths import PROBLEMS
from tests.conftest import query
from tests.test_cli import FAST, evolve_cmd

EXAMPLE = PROBLEMS / "center_c"


def test_an_offline_search_of_a_c_problem_stores_multi_file_programs_and_best_writes_them(tmp_path: Path) -> None:
    run = evolve_cmd("run", f"problem={EXAMPLE / 'problem.yaml'}", "llm=offline", "budget.evaluations=20",
                     "run.dir=r", *FAST, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    status = json.loads(evolve_cmd("status", "r", "--json", cwd=tmp_path).stdout)
    assert status["evaluations"] == 20
    assert status["best"]["score"] <= status["seed_score"]  # minimize: the champion is never worse

    # Every stored program is a bundle of the problem's three files; the fixed ones never changed.
    fixed = {name: (EXAMPLE / name).read_text() for name in ("main.c", "center.h")}
    codes = [code for (code,) in query(tmp_path / "r", "SELECT code FROM programs")]
    assert len(codes) > 1
    for code in codes:
        files = {source.path: source.text for source in bundle.parse(code)}
        assert list(files) == ["main.c", "center.h", "center.c"]
        assert {name: files[name] for name in fixed} == fixed

    # `evolve best -o DIR` writes the files; they build and run as they did in the sandbox.
    done = evolve_cmd("best", "r", "-o", "best", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (best,) = query(tmp_path / "r", f"SELECT code FROM programs WHERE id={status['best']['program_id']}")[0]
    written = {path.name: path.read_text() for path in (tmp_path / "best").iterdir()}
    assert written == {source.path: source.text for source in bundle.parse(best)}
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None, "the host has no C compiler (the bwrap tier needs one too)"
    subprocess.run([compiler, "-O2", "-o", "center", "main.c", "center.c"], cwd=tmp_path / "best", check=True)
    printed = subprocess.run(["./center"], input="1 2 3 4 100", cwd=tmp_path / "best", capture_output=True,
                             text=True, check=True).stdout
    assert isinstance(json.loads(printed), float)
