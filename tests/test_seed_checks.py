"""A seed that cannot start a search is reported at once, once, in terms of the user's own files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=3", "run.dir=r"]


def evolve_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=240)


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    assert evolve_cmd("new-problem", "demo", "--dir", "problem", cwd=tmp_path).returncode == 0
    return tmp_path / "problem"


@pytest.mark.slow
def test_a_broken_seed_is_reported_once_with_its_own_path_and_whole_lines(problem: Path, tmp_path: Path) -> None:
    seed = problem / "seed.py"
    seed.write_text(seed.read_text().replace("return 1.0 * value - 0.5 * weight",
                                             "return an_undefined_helper_with_a_long_name(value) * weight"))
    done = evolve_cmd("run", "problem=problem/problem.yaml", *FAST, cwd=tmp_path)
    assert done.returncode == 2
    cases = len(json.loads((problem / "cases.json").read_text())["search"])
    assert cases > 1
    error = "NameError: name 'an_undefined_helper_with_a_long_name' is not defined"
    lines = done.stderr.splitlines()
    assert lines.count(error) == 1  # once, though every case failed, and never cut
    assert f"fails {cases} of {cases} case(s)" in lines[0]
    assert f'File "{seed}", line 13, in priority' in done.stderr
    assert "candidate.py" not in done.stderr and "runner.py" not in done.stderr
    # The run directory the failed start left behind says why it failed.
    status = json.loads(evolve_cmd("status", "r", "--json", cwd=tmp_path).stdout)
    assert status["status"] == "failed" and "seed program" in status["reason"]


@pytest.mark.slow
def test_a_seed_without_the_entry_function_is_refused_before_anything_is_written(problem: Path,
                                                                                 tmp_path: Path) -> None:
    config = problem / "problem.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(True) if not line.startswith("entry:")))
    done = evolve_cmd("run", "problem=problem/problem.yaml", *FAST, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "defines no top-level `main`" in done.stderr and "entry:" in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_seed_without_evolve_block_markers_is_refused_at_start(problem: Path, tmp_path: Path) -> None:
    seed = problem / "seed.py"
    seed.write_text("".join(line for line in seed.read_text().splitlines(True) if "EVOLVE-BLOCK" not in line))
    done = evolve_cmd("run", "problem=problem/problem.yaml", *FAST, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "EVOLVE-BLOCK-START" in done.stderr and str(seed) in done.stderr
    assert not (tmp_path / "r").exists()
