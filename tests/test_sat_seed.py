"""The seed solver is complete and correct, whatever its EVOLVE-BLOCK heuristics return."""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
from types import ModuleType

import pytest

from evolve.edits import split_blocks
from evolve.paths import PROBLEMS

SEED = PROBLEMS / "sat" / "seed.py"
CASES = json.loads((PROBLEMS / "sat" / "cases.json").read_text())


def load_seed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sat_seed_under_test", SEED)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def brute_force_satisfiable(num_vars: int, clauses: list[list[int]]) -> bool:
    for bits in itertools.product((False, True), repeat=num_vars):
        if all(any(bits[abs(lit) - 1] == (lit > 0) for lit in clause) for clause in clauses):
            return True
    return False


def random_formulas(count: int, seed: int) -> list[tuple[int, list[list[int]]]]:
    rng = random.Random(seed)
    formulas = []
    for _ in range(count):
        n = rng.randint(1, 10)
        clauses = [[rng.choice((-1, 1)) * rng.randint(1, n) for _ in range(rng.randint(1, 4))]
                   for _ in range(rng.randint(1, 6 * n))]
        formulas.append((n, clauses))
    return formulas + [(3, []), (2, [[]]), (1, [[1], [-1]]), (2, [[1, -1], [2]])]


def check(module: ModuleType, num_vars: int, clauses: list[list[int]]) -> None:
    answer = module.solve(num_vars, [list(c) for c in clauses])
    if answer == "UNSAT":
        assert not brute_force_satisfiable(num_vars, clauses), (num_vars, clauses)
    else:
        assert sorted(abs(x) for x in answer) == list(range(1, num_vars + 1))
        truth = set(answer)
        assert all(any(lit in truth for lit in clause) for clause in clauses), (num_vars, clauses)


def test_seed_has_an_evolve_block_with_the_heuristics() -> None:
    _, blocks = split_blocks(SEED.read_text())
    assert len(blocks) == 1
    for name in ("ACTIVITY_DECAY", "def choose_polarity", "def restart_interval", "def initial_activity"):
        assert name in blocks[0]


def test_seed_agrees_with_brute_force_on_small_formulas() -> None:
    module = load_seed()
    for num_vars, clauses in random_formulas(300, seed=11):
        check(module, num_vars, clauses)


@pytest.mark.parametrize("case_id", ["uf50-01", "uf50-02", "uuf50-01", "uuf50-02", "php6-s221"])
def test_seed_answers_benchmark_instances_as_labelled(case_id: str) -> None:
    case = next(c for split in CASES.values() for c in split if c["id"] == case_id)
    answer = load_seed().solve(**case["inputs"])
    if case["private"]["label"] == "UNSAT":
        assert answer == "UNSAT"
    else:
        truth = set(answer)
        assert all(any(lit in truth for lit in clause) for clause in case["inputs"]["clauses"])


HOSTILE = {
    "nan decay and rate": {"ACTIVITY_DECAY": float("nan"), "RANDOM_DECISION_RATE": float("nan")},
    "restart every conflict": {"restart_interval": lambda restarts: -5},
    "restart interval not a number": {"restart_interval": lambda restarts: "soon"},
    "overflowing restart interval": {"restart_interval": lambda restarts: 10.0 ** 400 if restarts > 1 else 2},
    "garbage activities": {"initial_activity": lambda var, lengths: None if var % 2 else float("inf")},
    "negative activities": {"initial_activity": lambda var, lengths: -var * 1e300},
    "always random decisions": {"RANDOM_DECISION_RATE": 1.0},
    "polarity from a non-bool": {"choose_polarity": lambda var, saved, pos, neg: var % 3},
}


@pytest.mark.parametrize(("index", "patch"), list(enumerate(HOSTILE.values())), ids=list(HOSTILE))
def test_hostile_heuristics_slow_the_seed_down_but_never_make_it_wrong(index: int, patch: dict) -> None:
    module = load_seed()
    for name, value in patch.items():
        setattr(module, name, value)
    for num_vars, clauses in random_formulas(60, seed=100 + index):
        check(module, num_vars, clauses)
