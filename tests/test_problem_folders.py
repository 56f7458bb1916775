"""A problem is one folder: bundled ones, any folder by path, and ones installed packages register.

Real `evolve` processes; the registered problems come from a real distribution (a .dist-info with
entry_points.txt) on the subprocess's path, found by importlib.metadata as pip-installed ones are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import evolve
from evolve.config import ConfigError, compose_config
from evolve.paths import CONFIGS, EVALUATORS, PROBLEMS
from evolve.problem import load_problem
from evolve.scaffold import new_problem
from tests.conftest import query

BUNDLED = ("bin_packing", "cap_set", "circle_packing", "nash_guarantee", "sat")
FOLDER = {"problem.yaml", "seed.py", "verifier.py", "cases.json", "prompt.md"}
EVOLVE = [sys.executable, "-m", "evolve"]
FAST = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false", "search.islands=1"]
ENGINE = Path(evolve.__file__).resolve().parents[1]  # the evolve under test, for subprocesses


def evolve_cmd(*args: str, cwd: Path, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join([*map(str, path), str(ENGINE), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": pythonpath})


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundled_problem_is_one_folder_with_its_verifier(name: str) -> None:
    folder = PROBLEMS / name
    assert FOLDER <= {path.name for path in folder.iterdir()}
    problem = load_problem(compose_config([f"problem={name}"]))
    assert problem.home == folder and problem.verifier_path == folder / "verifier.py"
    files = [key for key in problem.identity_parts() if key not in ("evaluator settings", "engine scoring", "sandbox")]
    # Names relative to the folder; shared trusted code under evaluators/, nothing else.
    assert "verifier.py" in files and "cases.json" in files
    assert all(not key.startswith(("problems/", "/")) for key in files), files
    assert all("/" not in key or key.startswith("evaluators/") for key in files), files
    assert not (EVALUATORS / f"{name}.py").exists()


def test_configs_hold_no_problem() -> None:
    assert not (CONFIGS / "problem").exists()
    for path in CONFIGS.rglob("*.yaml"):
        text = path.read_text()
        assert "verifier:" not in text and "seed_program:" not in text, path


def test_shared_verification_code_is_part_of_the_identity_of_the_problems_using_it() -> None:
    sat = load_problem(compose_config(["problem=sat"])).identity_parts()
    circles = load_problem(compose_config(["problem=circle_packing"])).identity_parts()
    assert {"evaluators/dimacs.py", "evaluators/sat_answers.py"} <= set(sat)
    assert "evaluators/geometry.py" in circles and "evaluators/dimacs.py" not in circles


def test_a_folder_runs_by_its_path_or_its_problem_yaml(tmp_path: Path) -> None:
    new_problem("here", tmp_path / "here")
    by_folder = compose_config([f"problem={tmp_path / 'here'}"]).problem
    by_file = compose_config([f"problem={tmp_path / 'here' / 'problem.yaml'}"]).problem
    assert by_folder == by_file and by_folder.name == "here"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no problem.yaml"):
        compose_config([f"problem={tmp_path / 'empty'}"])
    with pytest.raises(ConfigError, match="unknown problem 'nope'; available: bin_packing, cap_set"):
        compose_config(["problem=nope"])


def test_problem_overrides_are_read_by_the_command_line_grammar_and_named_as_typed() -> None:
    cfg = compose_config(["problem=circle_packing", "problem.prompt=", "problem.settings.sizes=[26,32]",
                          "problem.case_timeout=3"])
    assert cfg.problem.prompt == "" and cfg.problem.settings == {"tolerance": 1e-9, "sizes": [26, 32]}
    assert cfg.problem.case_timeout == 3.0
    with pytest.raises(ConfigError, match="unknown config key 'problem.timeout'"):
        compose_config(["problem=sat", "problem.timeout=3"])


def install_problems_package(site: Path) -> None:
    """A distribution `tinyprobs` registering three problems: by module, by attribute, and a broken one."""
    package = site / "tinyprobs"
    new_problem("knap", package / "knap")
    (package / "knap" / "__init__.py").write_text("")
    new_problem("other", package / "data" / "other")
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\nOTHER = Path(__file__).parent / 'data' / 'other'\n")
    info = site / "tinyprobs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyprobs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[evolve.problems]\nknap_pkg = tinyprobs.knap\nother_attr = tinyprobs:OTHER\nbroken = tinyprobs.missing\n"
        "circle_packing = tinyprobs.knap\n")  # a bundled name: never shadowed


@pytest.mark.slow
def test_installed_packages_register_problems_through_an_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_problems_package(site)

    listed = evolve_cmd("problems", cwd=tmp_path, path=(site,))
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in reversed(listed.stdout.splitlines()) if line.strip()}  # first wins
    assert set(BUNDLED) <= set(lines)
    assert "circle_packing  maximize  knap: a 0/1 knapsack template" in listed.stdout
    assert "(from tinyprobs)  name taken twice" in listed.stdout
    assert "(from tinyprobs)" in lines["knap_pkg"] and "(from tinyprobs)" in lines["other_attr"]
    assert "(from tinyprobs)  unusable" in lines["broken"] and "tinyprobs.missing" in lines["broken"]
    assert "(from" not in lines["circle_packing"]

    ran = evolve_cmd("run", "problem=knap_pkg", "run.dir=r", "budget.evaluations=2", *FAST, cwd=tmp_path, path=(site,))
    assert ran.returncode == 0, ran.stderr
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["problem"]
    assert saved["name"] == "knap" and saved["file"] == str(site / "tinyprobs" / "knap" / "problem.yaml")
    parts = json.loads(query(tmp_path / "r", "SELECT evaluator_parts FROM runs")[0][0])
    assert "verifier.py" in parts  # relative to the registered folder

    bundled = evolve_cmd("run", "problem=circle_packing", "run.dir=r3", "budget.evaluations=1", *FAST, cwd=tmp_path,
                         path=(site,))
    assert bundled.returncode == 0, bundled.stderr
    assert "file: problems/circle_packing/problem.yaml" in (tmp_path / "r3" / "config.yaml").read_text()

    ran = evolve_cmd("run", "problem=other_attr", "run.dir=r2", "budget.evaluations=2", *FAST, cwd=tmp_path,
                     path=(site,))
    assert ran.returncode == 0, ran.stderr
    assert "problem 'broken' registered by tinyprobs cannot be used" in one_line_error(
        evolve_cmd("run", "problem=broken", *FAST, cwd=tmp_path, path=(site,)))
    # Without the package on the path, its names are unknown.
    assert "unknown problem 'knap_pkg'" in one_line_error(evolve_cmd("run", "problem=knap_pkg", *FAST, cwd=tmp_path))


def as_started_on_the_old_layout(run_dir: Path) -> None:
    """Make a circle_packing run look as the three-folder layout left it (what main wrote before the move):
    its problem section named configs/problem/ and evaluators/, its identity the old file names."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["problem"].update({
        "seed_program": "problems/circle_packing/seed.py", "prompt": "problems/circle_packing/prompt.md",
        "cases": "problems/circle_packing/cases.json", "verifier": "evaluators/circle_packing.py",
        "file": "configs/problem/circle_packing.yaml", "file_from_run": None})
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    ((parts_json,),) = query(run_dir, "SELECT evaluator_parts FROM runs")
    parts = json.loads(parts_json)
    old = {"evaluators/circle_packing.py": parts.pop("verifier.py"),  # geometry was inside the verifier then
           "problems/circle_packing/cases.json": parts.pop("cases.json")}
    del parts["evaluators/geometry.py"]
    with sqlite3.connect(run_dir / "evolve.db") as connection:
        connection.execute("UPDATE runs SET evaluator_parts=?", (json.dumps({**old, **parts}),))


@pytest.mark.slow
def test_a_run_from_the_old_layout_is_refused_with_the_reason_and_rescore_brings_it_over(tmp_path: Path) -> None:
    started = evolve_cmd("run", "problem=circle_packing", "run.dir=r", "budget.evaluations=3", *FAST, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_dir = tmp_path / "r"
    as_started_on_the_old_layout(run_dir)

    refused = one_line_error(evolve_cmd("resume", "r", "budget.evaluations=5", cwd=tmp_path))
    assert "one folder" in refused and "problems/circle_packing/" in refused and "evolve rescore r" in refused
    assert query(run_dir, "SELECT evaluations, epoch FROM runs") == [(3, 0)]  # nothing written

    # A problem someone had added to their own checkout the old way: nothing to bring it over to yet.
    own = tmp_path / "own"
    own.mkdir()
    config = (run_dir / "config.yaml").read_text().replace("configs/problem/circle_packing.yaml",
                                                           "configs/problem/mine.yaml")
    (own / "config.yaml").write_text(config)
    missing = one_line_error(evolve_cmd("rescore", "own", cwd=tmp_path))
    assert "move the problem's files into problems/mine/" in missing and "evolve rescore own" in missing

    rescored = evolve_cmd("rescore", "r", cwd=tmp_path)
    assert rescored.returncode == 0, rescored.stderr
    assert "moved into problems/circle_packing/" in rescored.stdout
    assert query(run_dir, "SELECT epoch FROM runs") == [(1,)]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["problem"]
    assert saved["file"] == "problems/circle_packing/problem.yaml"  # relative to the bundle
    parts = json.loads(query(run_dir, "SELECT evaluator_parts FROM runs")[0][0])
    assert {"verifier.py", "cases.json", "evaluators/geometry.py"} <= set(parts)

    resumed = evolve_cmd("resume", "r", "budget.evaluations=5", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert query(run_dir, "SELECT evaluations, epoch FROM runs") == [(5, 1)]


READ_CASES = '''
import json
import sys
from evolve.problem_registry import find_problem
from evolve.sandbox.base import SandboxJob, SandboxLimits
from evolve.sandbox.bwrap import BwrapSandbox
import asyncio

CANDIDATE = """
def main(path):
    try:
        return open(path).read()[:40]
    except OSError as error:
        return "unreadable: " + type(error).__name__
"""
cases = find_problem("knap_pkg").parent / "cases.json"
sandbox = BwrapSandbox(python=sys.argv[1], scratch_mb=16)
job = SandboxJob(CANDIDATE, "main", (("c", {"path": str(cases)}),), SandboxLimits(case_timeout=5.0))
result = asyncio.run(sandbox.run(job))
print(json.dumps({"visible": cases.is_file(), "mounted": [r for r in sandbox.python_roots if str(cases).startswith(r)],
                  "output": result.runs[0].output}))
'''


@pytest.mark.bwrap
def test_a_registered_problem_inside_the_python_install_is_hidden_from_bwrap_candidates(tmp_path: Path) -> None:
    """Its folder (cases with held-out data, verifier) sits in site-packages, which bwrap mounts for the candidate."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    install_problems_package(purelib)
    done = subprocess.run([sys.executable, "-c", READ_CASES, str(python)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(purelib), str(ENGINE)])})
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["visible"] and facts["mounted"]  # on the host, inside what the sandbox mounts
    assert facts["output"].startswith("unreadable"), facts["output"]
