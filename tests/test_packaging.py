"""A plain (non-editable) install: the wheel alone must give a working `evolve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".venv*")


def run(*argv: str | Path, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of a checkout may leak in
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, a fresh venv with only that wheel installed; dependencies come from this interpreter's)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(PROJECT, source, ignore=SKIP)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base / "dist", source)
    (wheel,) = (base / "dist").glob("*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
    # The dependencies are already here: reuse them by path. A path line in a .pth file does not run
    # that folder's own .pth files, so an editable install of this checkout stays out of the venv.
    host = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    (purelib / "host-dependencies.pth").write_text("\n".join(host) + "\n")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    return wheel, venv


@pytest.mark.slow
def test_wheel_carries_the_bundled_folders_and_no_top_level_evaluators(installed) -> None:
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"evolve"}
    for path in ("configs/config.yaml", "problems/circle_packing/problem.yaml", "problems/circle_packing/seed.py",
                 "problems/circle_packing/verifier.py", "problems/sat/instances/satlib/uf50-01.cnf",
                 "evaluators/geometry.py", "evaluators/nash/smt.py", "sandbox/runner.py", "sandbox/Dockerfile"):
        assert f"evolve/_bundled/{path}" in names
    assert not any(name.startswith("evolve/_bundled/configs/problem/") for name in names)  # problems are folders


@pytest.mark.slow
def test_installed_command_lists_problems_and_searches_from_an_unrelated_folder(installed, tmp_path) -> None:
    _, venv = installed
    evolve = venv / "bin" / "evolve"
    listed = run(evolve, "problems", cwd=tmp_path).stdout
    assert {"circle_packing", "sat", "nash_guarantee", "bin_packing", "cap_set"} <= {
        line.split()[0] for line in listed.splitlines() if line.strip()}
    done = run(evolve, "run", "problem=circle_packing", "llm=offline", "budget.evaluations=5", "sandbox=process",
               "sandbox.allow_root=true", "run.progress=false", "run.dir=here", cwd=tmp_path)
    assert "finished" in done.stdout and (tmp_path / "here" / "evolve.db").is_file()
    # Recorded relative to the bundle, so a reinstalled wheel (another venv path) still finds it.
    assert "file: problems/circle_packing/problem.yaml" in (tmp_path / "here" / "config.yaml").read_text()
    # The engine ran from the venv, and verifiers found their `evaluators.*` helpers there.
    probe = ("import evolve, importlib.util; from evolve.config import compose_config; "
             "from evolve.problem import load_problem; "
             "[load_problem(compose_config([f'problem={name}'])) for name in ('sat', 'nash_guarantee')]; "
             "import evaluators; print(evolve.__file__); print(evaluators.__file__)")
    where = run(venv / "bin" / "python", "-c", probe, cwd=tmp_path).stdout.split()
    assert all(path.startswith(str(venv)) and "/evolve/" in path for path in where), where


def test_distribution_name_is_not_the_one_taken_on_pypi() -> None:
    """`evolve` on PyPI is an unrelated project: `pip install evolve` must not be our install line."""
    name = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["name"]
    assert name != "evolve"
    assert f"pip install {name}" in (PROJECT / "README.md").read_text()
