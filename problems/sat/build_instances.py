"""Build the SAT benchmark: instance files, trusted labels and cases.json.

    pip install python-sat      # only needed here and for the README baseline
    python problems/sat/build_instances.py [--satlib /work/shared/data/satlib]

Writes, deterministically (same output on every run):
  instances/satlib/*.cnf      a fixed subset of SATLIB uf50-218 / uuf50-218, copied byte for byte
  instances/generated/*.cnf   families generated here with fixed seeds
  cases.json                  {"search": [...], "heldout": [...]}; each case's `private` holds its
                              label, the sha256 of its canonical formula, provenance, and for a
                              satisfiable instance a witness model found by the reference solver

Labels: SATLIB's uuf instances are unsatisfiable by construction and uf ones satisfiable; every
instance is also solved by two reference solvers (MiniSat 2.2 and CaDiCaL 1.5.3 through
python-sat), which must agree with each other and with SATLIB, or the build fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the project root, for evaluators.dimacs

from evaluators.dimacs import instance_hash, parse_dimacs, read_dimacs, to_dimacs  # noqa: E402

DEFAULT_SATLIB = Path("/work/shared/data/satlib")
SATLIB_SETS = {"uf50-218": "SAT", "uuf50-218": "UNSAT"}
# Fixed SATLIB members per split (file stems inside the archives). The search split is uniform random
# 3-SAT only; the held-out split is structured families only (pigeonhole, graph colouring, n-queens), so
# a solver tuned to one kind of formula shows it on the other.
SATLIB_SPLITS = {
    "search": ["uf50-01", "uf50-02", "uf50-03", "uf50-04", "uuf50-01", "uuf50-02", "uuf50-03", "uuf50-04"],
    "heldout": [],
}
THRESHOLD = 4.26  # clauses per variable at the random 3-SAT phase transition


@dataclass
class Instance:
    name: str
    split: str
    family: str
    num_vars: int
    clauses: list[list[int]]
    source: str
    params: dict = field(default_factory=dict)
    construction_label: str | None = None  # SATLIB's own label
    text: str | None = None  # the original file, kept byte for byte


def random_3sat(num_vars: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    clauses = []
    for _ in range(round(THRESHOLD * num_vars)):
        chosen = rng.sample(range(1, num_vars + 1), 3)
        clauses.append([v if rng.random() < 0.5 else -v for v in chosen])
    return clauses


def pigeonhole(holes: int, seed: int) -> tuple[int, list[list[int]]]:
    """holes + 1 pigeons into `holes` holes (unsatisfiable), variables and clauses shuffled."""
    pigeons = holes + 1
    rng = random.Random(seed)
    names = list(range(1, pigeons * holes + 1))
    rng.shuffle(names)

    def var(pigeon: int, hole: int) -> int:
        return names[pigeon * holes + hole]

    clauses = [[var(p, h) for h in range(holes)] for p in range(pigeons)]
    for h in range(holes):
        clauses += [[-var(p, h), -var(q, h)] for p, q in itertools.combinations(range(pigeons), 2)]
    rng.shuffle(clauses)
    return pigeons * holes, clauses


def colouring(nodes: int, edges: int, colours: int, seed: int) -> tuple[int, list[list[int]]]:
    """Can a uniform random graph G(nodes, edges) be coloured with `colours` colours?"""
    rng = random.Random(seed)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < edges:
        a, b = rng.sample(range(nodes), 2)
        chosen.add((min(a, b), max(a, b)))

    def var(node: int, colour: int) -> int:
        return node * colours + colour + 1

    clauses = [[var(v, c) for c in range(colours)] for v in range(nodes)]
    for v in range(nodes):
        clauses += [[-var(v, c), -var(v, d)] for c, d in itertools.combinations(range(colours), 2)]
    for a, b in sorted(chosen):
        clauses += [[-var(a, c), -var(b, c)] for c in range(colours)]
    return nodes * colours, clauses


def generated() -> list[Instance]:
    """The generated families, with fixed seeds: (split, count) per family."""
    out: list[Instance] = []
    for split, seeds in (("search", [101, 102, 103, 104, 105, 106, 107, 108]),):
        for seed in seeds:
            out.append(Instance(f"rand3-n125-s{seed}", split, "random 3-SAT, 125 vars, ratio 4.26", 125,
                                random_3sat(125, seed), "generated", {"vars": 125, "ratio": THRESHOLD, "seed": seed}))
    for split, items in (("heldout", [(6, 221), (6, 223), (7, 222)]),):
        for holes, seed in items:
            n, clauses = pigeonhole(holes, seed)
            out.append(Instance(f"php{holes}-s{seed}", split, "pigeonhole, shuffled", n, clauses, "generated",
                                {"holes": holes, "pigeons": holes + 1, "seed": seed}))
    for split, seeds in (("heldout", [231, 232, 233, 234]),):
        for seed in seeds:
            n, clauses = colouring(200, 450, 3, seed)
            out.append(Instance(f"col3-g200-s{seed}", split, "3-colouring of G(200 nodes, 450 edges)", n, clauses,
                                "generated", {"nodes": 200, "edges": 450, "colours": 3, "seed": seed}))
    for size in (8, 10, 12):
        n, clauses = queens(size)
        out.append(Instance(f"queens{size}", "heldout", "n-queens", n, clauses, "generated", {"n": size}))
    return out


def queens(n: int) -> tuple[int, list[list[int]]]:
    """n non-attacking queens on an n x n board (satisfiable for n >= 4): one per row, at most one per
    row, column and diagonal."""

    def var(row: int, column: int) -> int:
        return row * n + column + 1

    cells = [(r, c) for r in range(n) for c in range(n)]
    clauses = [[var(r, c) for c in range(n)] for r in range(n)]
    for (r1, c1), (r2, c2) in itertools.combinations(cells, 2):
        if r1 == r2 or c1 == c2 or abs(r1 - r2) == abs(c1 - c2):
            clauses.append([-var(r1, c1), -var(r2, c2)])
    return n * n, clauses


def satlib(directory: Path) -> list[Instance]:
    wanted = {stem: split for split, stems in SATLIB_SPLITS.items() for stem in stems}
    out: dict[str, Instance] = {}
    for archive, label in SATLIB_SETS.items():
        path = directory / f"{archive}.tar.gz"
        if not path.is_file():
            sys.exit(f"SATLIB archive not found: {path} (pass --satlib DIR)")
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                stem = Path(member.name).stem
                if member.isfile() and stem in wanted:
                    text = tar.extractfile(member).read().decode("ascii")  # type: ignore[union-attr]
                    cnf = parse_dimacs(text, member.name)
                    out[stem] = Instance(stem, wanted[stem], f"SATLIB {archive}", cnf.num_vars,
                                         [list(c) for c in cnf.clauses], f"SATLIB {archive}.tar.gz:{member.name}",
                                         construction_label=label, text=text)
    missing = sorted(set(wanted) - set(out))
    if missing:
        sys.exit(f"SATLIB members not found: {missing}")
    return [out[stem] for split in SATLIB_SPLITS.values() for stem in split]


def label(instance: Instance) -> tuple[str, list[int] | None, str]:
    """(label, witness model or None, who says so); the reference solvers must agree."""
    from pysat.solvers import Cadical153, Minisat22

    answers = []
    for solver_class in (Minisat22, Cadical153):
        with solver_class(bootstrap_with=instance.clauses) as solver:
            sat = solver.solve()
            answers.append(("SAT" if sat else "UNSAT", solver.get_model() if sat else None))
    verdicts = {a for a, _ in answers}
    if len(verdicts) != 1 or (instance.construction_label and instance.construction_label not in verdicts):
        sys.exit(f"{instance.name}: reference solvers disagree ({answers[0][0]} vs {answers[1][0]}, "
                 f"construction label {instance.construction_label})")
    verdict, model = answers[0]
    if model is not None:
        assigned = {abs(x): x for x in model}
        model = [assigned.get(v, v) for v in range(1, instance.num_vars + 1)]
        truth = set(model)
        assert all(any(x in truth for x in c) for c in instance.clauses), instance.name
    who = "minisat22+cadical153 (python-sat)"
    if instance.construction_label:
        who = f"SATLIB construction, confirmed by {who}"
    return verdict, model, who


def build(satlib_dir: Path) -> dict:
    try:
        import pysat
    except ImportError:
        sys.exit("the reference solvers come from python-sat: pip install python-sat")

    cases: dict[str, list] = {"search": [], "heldout": []}
    for folder in ("satlib", "generated"):
        (HERE / "instances" / folder).mkdir(parents=True, exist_ok=True)
    for instance in satlib(satlib_dir) + generated():
        verdict, model, who = label(instance)
        folder = "satlib" if instance.text is not None else "generated"
        path = HERE / "instances" / folder / f"{instance.name}.cnf"
        if instance.text is not None:
            path.write_text(instance.text)
        else:
            comments = [f"{instance.family}", f"generator: problems/sat/build_instances.py {instance.params}",
                        f"label: {verdict} ({who})"]
            path.write_text(to_dimacs(instance.num_vars, instance.clauses, comments))
        cnf = read_dimacs(path)  # what the candidate sees is exactly what the file says
        assert cnf.num_vars == instance.num_vars and [list(c) for c in cnf.clauses] == instance.clauses
        private = {
            "label": verdict,
            "sha256": instance_hash(instance.num_vars, instance.clauses),
            "family": instance.family,
            "file": str(path.relative_to(HERE.parents[1])),
            "source": instance.source,
            "params": instance.params,
            "labelled_by": f"{who}, python-sat {pysat.__version__}",
        }
        if model is not None:
            private["witness"] = model
        cases[instance.split].append({
            "id": instance.name,
            "inputs": {"num_vars": instance.num_vars, "clauses": instance.clauses},
            "private": private,
        })
        print(f"{instance.split:8s} {instance.name:20s} {instance.num_vars:4d} vars {len(instance.clauses):5d} "
              f"clauses  {verdict}")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--satlib", type=Path, default=DEFAULT_SATLIB, help="folder with the SATLIB .tar.gz files")
    args = parser.parse_args()
    cases = build(args.satlib)
    lines = ["{"]  # one case per line: plain JSON with readable diffs
    for index, split in enumerate(("search", "heldout")):
        rows = ",\n".join("  " + json.dumps(case, separators=(",", ":")) for case in cases[split])
        lines.append(f' "{split}": [\n{rows}\n ]' + ("," if index == 0 else ""))
    lines.append("}")
    (HERE / "cases.json").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'cases.json'}: {len(cases['search'])} search, {len(cases['heldout'])} held-out cases")


if __name__ == "__main__":
    main()
