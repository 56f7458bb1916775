"""The committed SAT benchmark: files, formulas, hashes and labels agree with each other."""

from __future__ import annotations

import json

import pytest

from evaluators.dimacs import instance_hash, read_dimacs
from evolve.paths import PROBLEMS, ROOT

CASES = json.loads((PROBLEMS / "sat" / "cases.json").read_text())
ALL = [(split, case) for split in ("search", "heldout") for case in CASES[split]]


def test_split_sizes_and_distinct_formulas() -> None:
    assert 10 <= len(CASES["search"]) <= 20 and 8 <= len(CASES["heldout"]) <= 15
    ids = [case["id"] for _, case in ALL]
    hashes = [case["private"]["sha256"] for _, case in ALL]
    assert len(set(ids)) == len(ids)
    assert len(set(hashes)) == len(hashes), "a held-out formula repeats a search formula"
    labels = {case["private"]["label"] for _, case in ALL}
    assert labels == {"SAT", "UNSAT"}


@pytest.mark.parametrize(("split", "case"), ALL, ids=[case["id"] for _, case in ALL])
def test_case_matches_its_file_hash_and_label(split: str, case: dict) -> None:
    private, inputs = case["private"], case["inputs"]
    cnf = read_dimacs(ROOT / private["file"])
    assert cnf.num_vars == inputs["num_vars"]
    assert [list(c) for c in cnf.clauses] == inputs["clauses"]
    assert private["sha256"] == instance_hash(inputs["num_vars"], inputs["clauses"])
    if private["label"] == "SAT":
        truth = set(private["witness"])
        assert sorted(abs(x) for x in truth) == list(range(1, inputs["num_vars"] + 1))
        assert all(any(lit in truth for lit in clause) for clause in inputs["clauses"])
    else:
        assert "witness" not in private
    # Families whose answer is known by construction.
    if case["id"].startswith("uuf") or case["id"].startswith("php"):
        assert private["label"] == "UNSAT"
    if case["id"].startswith("uf"):
        assert private["label"] == "SAT"
