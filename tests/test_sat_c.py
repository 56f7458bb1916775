"""sat_c: the C solver builds and answers correctly, and its verifier rejects every wrong answer.

The solver is compiled with the problem's own build command (gcc) and run as a real process on
real benchmark formulas and on random small formulas decided by brute force; its output goes
through the problem's verifier. Nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evolve.config import compose_config
from evolve.problem import Case, Verdict, load_problem, load_verifier
from evolve.sandbox.base import CaseRun

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "problems" / "sat_c"
CONFIG = yaml.safe_load((FOLDER / "problem.yaml").read_text())
SETTINGS = load_problem(compose_config(["problem=sat_c"])).settings  # as the engine resolves problem.yaml
LIMIT = float(SETTINGS["time_limit"])
# quick for the seed on any machine: small random 3-SAT, pigeonhole 8/7, a Tseitin and a quasigroup formula
QUICK = ["uf175-s1750", "uf175-s1751", "php7-s70", "col350-s362", "tseitin24-s2400", "tseitin60sat-s6000",
         "qwh30-s3002"]


@pytest.fixture(scope="module")
def verifier():
    return load_verifier(FOLDER / "verifier.py")


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    data = json.loads((FOLDER / "cases.json").read_text())
    return {c["id"]: Case(c["id"], split, c["inputs"], c["private"]) for split in data for c in data[split]}


def build(source: str, scratch: Path) -> Path:
    """Compile `source` with the problem's build command, in `scratch`; the binary's path."""
    (scratch / "solver.c").write_text(source)
    done = subprocess.run(CONFIG["build"]["command"], shell=True, cwd=scratch, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return scratch / "solver"


@pytest.fixture(scope="module")
def seed_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build((FOLDER / "solver.c").read_text(), tmp_path_factory.mktemp("seed"))


def solve(binary: Path, dimacs: str) -> str:
    done = subprocess.run([str(binary)], input=dimacs, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # the runner counts any other exit status as a failed run
    return done.stdout


def judge(verifier, case: Case, output, status: str = "ok", cpu: float = 0.5) -> Verdict:
    return verifier.verify(case, CaseRun(case.id, status, output, 2 * cpu, "", cpu_seconds=cpu), SETTINGS)


def dimacs(num_vars: int, clauses: list[list[int]]) -> str:
    return f"p cnf {num_vars} {len(clauses)}\n" + "".join(" ".join(map(str, c)) + " 0\n" for c in clauses)


def brute_force(num_vars: int, clauses: list[list[int]]) -> bool:
    for bits in itertools.product((False, True), repeat=num_vars):
        if all(any(bits[abs(x) - 1] == (x > 0) for x in c) for c in clauses):
            return True
    return False


def model_of(stdout: str) -> set[int] | None:
    """None for UNSAT, else the set of true literals (checked to end with 0)."""
    if stdout.startswith("s UNSATISFIABLE"):
        return None
    assert stdout.startswith("s SATISFIABLE\n"), stdout[:80]
    values = [int(x) for line in stdout.splitlines() if line.startswith("v") for x in line[1:].split()]
    assert values[-1] == 0
    return set(values[:-1])


def random_formulas(seed: int, count: int) -> list[tuple[int, list[list[int]]]]:
    """Small formulas of mixed clause lengths around the 3-SAT threshold, with units, duplicates,
    tautologies and now and then an empty clause: half satisfiable, half not."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 12)
        clauses = []
        for _ in range(rng.randint(1, int(5.5 * n) + 2)):
            size = rng.choice([1, 2, 3, 3, 3, 4]) if rng.random() > 0.01 else 0
            clauses.append([rng.choice([-1, 1]) * rng.randint(1, n) for _ in range(size)])
        out.append((n, clauses))
    return out


def test_the_seed_builds_with_the_problem_build_command(seed_binary: Path) -> None:
    assert seed_binary.is_file()


@pytest.mark.parametrize("case_id", QUICK)
def test_the_seed_answers_benchmark_formulas_as_their_labels_say(seed_binary, verifier, cases, case_id) -> None:
    case = cases[case_id]
    verdict = judge(verifier, case, solve(seed_binary, case.inputs["dimacs"]), cpu=0.5)
    assert verdict.valid and verdict.metrics["solved"], verdict.feedback
    assert verdict.metrics["answer"] == case.private["label"] and verdict.score == 0.5


def test_the_seed_agrees_with_brute_force_on_random_formulas(seed_binary: Path) -> None:
    answers = {True: 0, False: 0}
    for num_vars, clauses in random_formulas(seed=18, count=300):
        model = model_of(solve(seed_binary, dimacs(num_vars, clauses)))
        expected = brute_force(num_vars, clauses)
        assert (model is not None) == expected, (num_vars, clauses)
        if model is not None:
            assert sorted(abs(x) for x in model) == list(range(1, num_vars + 1))
            assert all(any(x in model for x in c) for c in clauses), (num_vars, clauses)
        answers[expected] += 1
    assert min(answers.values()) > 50  # both kinds of formula were really tried


@pytest.mark.parametrize("policy", [
    {"RESTART_POLICY": "1", "MINIMIZE_MODE": "1", "RANDOM_DECISION_FREQ": "0.2", "DEFAULT_PHASE": "1"},
    {"MINIMIZE_MODE": "0", "REDUCE_FIRST": "3", "REDUCE_INCREMENT": "1", "REDUCE_FRACTION": "0.9",
     "LUBY_UNIT": "1", "VAR_DECAY_STEP": "0.01"},
])
def test_other_heuristic_settings_stay_correct(policy: dict[str, str], tmp_path: Path) -> None:
    """The EVOLVE-BLOCK's other branches (glucose restarts, local or no minimisation, random decisions,
    a reduction after every few conflicts) change speed only, never answers."""
    source = (FOLDER / "solver.c").read_text()
    for name, value in policy.items():
        source, count = re.subn(rf"^#define {name} \S+", f"#define {name} {value}", source, flags=re.M)
        assert count == 1, name
    binary = build(source, tmp_path)
    for num_vars, clauses in random_formulas(seed=19, count=150) + [
            (n, c) for n, c in random_formulas(seed=20, count=40) if n >= 10]:
        model = model_of(solve(binary, dimacs(num_vars, clauses)))
        assert (model is not None) == brute_force(num_vars, clauses), (policy, num_vars, clauses)
        if model is not None:
            assert all(any(x in model for x in c) for c in clauses)


def test_formula_input_edge_cases(seed_binary: Path) -> None:
    assert solve(seed_binary, "p cnf 0 0\n").startswith("s SATISFIABLE")
    assert solve(seed_binary, "p cnf 2 1\n0\n").startswith("s UNSATISFIABLE")  # the empty clause
    satlib_style = "c comment\np cnf 3 2\n1 -2\t3 0\n-1\n 2 0\n%\n0\n"  # clause across lines, SATLIB trailer
    assert model_of(solve(seed_binary, satlib_style)) is not None
    bad = subprocess.run([str(seed_binary)], input="p cnf 2 1\n1 5 0\n", capture_output=True, text=True)
    assert bad.returncode != 0 and "beyond the declared variables" in bad.stderr


def test_a_wrong_model_is_rejected(verifier, cases) -> None:
    case = cases["uf175-s1751"]
    witness = case.private["witness"]
    flipped = None
    for index in range(len(witness)):  # flip one variable until some clause is falsified
        model = list(witness)
        model[index] = -model[index]
        text = "s SATISFIABLE\nv " + " ".join(map(str, model)) + " 0\n"
        verdict = judge(verifier, case, text)
        if not verdict.valid:
            flipped = verdict
            break
    assert flipped is not None and flipped.feedback.startswith("WRONG model: clause")
    right = judge(verifier, case, "s SATISFIABLE\nv " + " ".join(map(str, witness)) + " 0\n")
    assert right.valid and right.metrics["answer"] == "SAT"


def test_wrong_claims_and_malformed_output_are_rejected(verifier, cases) -> None:
    sat_case, unsat_case = cases["uf175-s1751"], cases["php7-s70"]
    assert not judge(verifier, sat_case, "s UNSATISFIABLE\n").valid
    forged = "s SATISFIABLE\nv " + " ".join(str(v) for v in range(1, 57)) + " 0\n"
    assert judge(verifier, unsat_case, forged).feedback.startswith("WRONG model")
    partial = "s SATISFIABLE\nv " + " ".join(map(str, sat_case.private["witness"][:-1])) + " 0\n"
    assert "partial assignment" in judge(verifier, sat_case, partial).feedback
    for text, reason in [
        ("s SATISFIABLE\n", "end with a single 0"),
        ("s SATISFIABLE\nv 1 x 0\n", "not an integer"),
        ("s SATISFIABLE\ns UNSATISFIABLE\n", "2 status lines"),
        ("s MAYBE\n", "unknown status"),
        ("hello\n", "is not a comment"),
        ("s UNSATISFIABLE\nv 1 0\n", "value lines after"),
    ]:
        verdict = judge(verifier, sat_case, text)
        assert not verdict.valid and reason in verdict.feedback, (text, verdict.feedback)


def test_giving_up_and_timeouts_score_twice_the_limit(verifier, cases) -> None:
    case = cases["php7-s70"]
    for output, status in [("s UNKNOWN\n", "ok"), ("c nothing to say\n", "ok"), (None, "timeout"), (None, "crashed")]:
        verdict = judge(verifier, case, output, status=status)
        assert verdict.valid and not verdict.metrics["solved"] and verdict.score == 2 * LIMIT
    solved = judge(verifier, case, "s UNSATISFIABLE\n", cpu=1.25)
    assert solved.valid and solved.score == 1.25


def test_a_formula_that_no_longer_matches_its_label_is_refused(verifier, cases) -> None:
    case = cases["php7-s70"]
    lines = case.inputs["dimacs"].split("\n")
    first = next(i for i, line in enumerate(lines) if line[:1] not in ("c", "p"))
    literal = lines[first].split()[0]
    lines[first] = lines[first].replace(literal, str(-int(literal)), 1)  # one literal's sign flipped
    edited = Case(case.id, case.split, {"dimacs": "\n".join(lines)}, case.private)
    with pytest.raises(verifier.LabelError, match="does not match the hash"):
        judge(verifier, edited, "s UNSATISFIABLE\n")


def test_the_benchmark_is_split_by_family_with_checked_labels(cases) -> None:
    from evaluators.dimacs import instance_hash, parse_dimacs

    splits: dict[str, set[str]] = {}
    for case in cases.values():
        splits.setdefault(case.split, set()).add(re.match(r"[a-z]+", case.id).group())  # uf, col, php, ...
        cnf = parse_dimacs(case.inputs["dimacs"])
        clauses = [list(c) for c in cnf.clauses]
        assert instance_hash(cnf.num_vars, clauses) == case.private["sha256"]
        assert case.private["label"] in ("SAT", "UNSAT")
        if case.private["label"] == "SAT":
            truth = set(case.private["witness"])
            assert all(any(x in truth for x in c) for c in clauses), case.id
    assert not splits["search"] & splits["heldout"], splits
    assert len(splits["search"]) >= 3 and len(splits["heldout"]) >= 2


def test_the_generators_rebuild_the_stored_formulas(cases) -> None:
    sys.path.insert(0, str(FOLDER))
    try:
        import families
    finally:
        sys.path.remove(str(FOLDER))
    from evaluators.dimacs import instance_hash

    for case_id, formula in [("uf175-s1750", families.random_3sat(175, 1750)), ("php7-s70", families.pigeonhole(7, 70)),
                             ("tseitin24-s2400", families.tseitin(24, 4, 2400, satisfiable=False)),
                             ("col350-s362", families.colouring(350, 840, 3, 362)),
                             ("qwh30-s3002", families.quasigroup_with_holes(30, 0.42, 3002))]:
        assert instance_hash(*formula) == cases[case_id].private["sha256"], case_id
