"""Build the sat_c benchmark: generated formulas, trusted labels, cases.json.

    apt-get install minisat cadical     # the two reference solvers that label every formula
    pip install python-sat              # its MiniSat 2.2 screens seeds by a conflict budget
    python problems/sat_c/build_benchmark.py

Deterministic: the same cases.json on every run and every machine. Each family draws seeds in order
from its base seed and keeps a formula only when python-sat's MiniSat 2.2 (no preprocessing, fixed
conflict budget, so no dependence on machine speed) decides it within the family's conflict window
and with the wanted answer (SAT / UNSAT / either): this drops the trivial formulas and the rare
pathological ones, as SATLIB's uf/uuf sets were split by a complete solver. The kept formula is then
labelled by the Debian `minisat` (2.2) and `cadical` binaries, which must agree; a SAT label's model
from each is checked against every clause and cadical's is stored as the witness.

The split is by family: the search split holds uniform random 3-SAT, graph 3-colouring and pigeonhole
formulas; the held-out split Tseitin parity formulas and quasigroup completion, which the search never
sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))  # the project root, for evaluators.dimacs

import families  # noqa: E402
from evaluators.dimacs import instance_hash, parse_dimacs, to_dimacs  # noqa: E402

Formula = tuple[int, list[list[int]]]


@dataclass(frozen=True)
class Family:
    prefix: str           # case ids are f"{prefix}-s{seed}"
    split: str            # "search" or "heldout"
    description: str
    make: Callable[[int], Formula]
    params: dict
    base_seed: int
    wanted: tuple[str, ...]  # the answers to collect, in order (e.g. ("SAT", "UNSAT"))
    min_conflicts: int    # screening window of python-sat MiniSat 2.2 conflicts
    max_conflicts: int


def _random(n: int) -> Callable[[int], Formula]:
    return lambda seed: families.random_3sat(n, seed)


FAMILIES = [
    Family("uf175", "search", "uniform random 3-SAT, 175 vars, 746 clauses (ratio 4.26)", _random(175),
           {"vars": 175, "ratio": families.THRESHOLD_3SAT}, 1750, ("SAT", "UNSAT", "SAT", "UNSAT"), 1000, 400_000),
    Family("uf200", "search", "uniform random 3-SAT, 200 vars, 852 clauses (ratio 4.26)", _random(200),
           {"vars": 200, "ratio": families.THRESHOLD_3SAT}, 2000, ("SAT", "UNSAT", "SAT", "UNSAT"), 1000, 400_000),
    Family("uf225", "search", "uniform random 3-SAT, 225 vars, 958 clauses (ratio 4.26)", _random(225),
           {"vars": 225, "ratio": families.THRESHOLD_3SAT}, 2250, ("SAT", "UNSAT"), 1000, 400_000),
    Family("col400", "search", "3-colouring of uniform random graphs G(400 nodes, 920 edges)",
           lambda seed: families.colouring(400, 920, 3, seed), {"nodes": 400, "edges": 920, "colours": 3},
           400, ("SAT", "SAT", "UNSAT"), 500, 200_000),
    Family("col350", "search", "3-colouring of uniform random graphs G(350 nodes, 840 edges)",
           lambda seed: families.colouring(350, 840, 3, seed), {"nodes": 350, "edges": 840, "colours": 3},
           350, ("UNSAT", "UNSAT", "SAT"), 500, 200_000),
    Family("php8", "search", "pigeonhole, 9 pigeons in 8 holes, variables and clauses shuffled",
           lambda seed: families.pigeonhole(8, seed), {"holes": 8, "pigeons": 9}, 80, ("UNSAT", "UNSAT"), 0, 10**7),
    Family("php7", "search", "pigeonhole, 8 pigeons in 7 holes, variables and clauses shuffled",
           lambda seed: families.pigeonhole(7, seed), {"holes": 7, "pigeons": 8}, 70, ("UNSAT",), 0, 10**7),
    Family("tseitin24", "heldout", "Tseitin parity on random 4-regular graphs, 24 nodes (48 edge variables)",
           lambda seed: families.tseitin(24, 4, seed, satisfiable=False), {"nodes": 24, "degree": 4},
           2400, ("UNSAT", "UNSAT"), 0, 2_000_000),
    Family("tseitin28", "heldout", "Tseitin parity on random 4-regular graphs, 28 nodes (56 edge variables)",
           lambda seed: families.tseitin(28, 4, seed, satisfiable=False), {"nodes": 28, "degree": 4},
           2806, ("UNSAT", "UNSAT"), 0, 2_000_000),
    Family("tseitin60sat", "heldout", "Tseitin parity on random 4-regular graphs, 60 nodes, even charge",
           lambda seed: families.tseitin(60, 4, seed, satisfiable=True), {"nodes": 60, "degree": 4},
           6000, ("SAT",), 0, 2_000_000),
    Family("qwh33", "heldout", "quasigroup with holes, order 33, 42% holes (reduced encoding)",
           lambda seed: families.quasigroup_with_holes(33, 0.42, seed), {"order": 33, "holes": 0.42},
           3300, ("SAT",) * 3, 200, 40_000),
    Family("qwh30", "heldout", "quasigroup with holes, order 30, 42% holes (reduced encoding)",
           lambda seed: families.quasigroup_with_holes(30, 0.42, seed), {"order": 30, "holes": 0.42},
           3000, ("SAT",) * 3, 200, 40_000),
]
MAX_TRIES = 60  # seeds tried per family before the build gives up


def screen(formula: Formula, budget: int) -> tuple[str | None, int]:
    """python-sat MiniSat 2.2's answer within `budget` conflicts (None past it) and its conflicts."""
    from pysat.solvers import Minisat22

    with Minisat22(bootstrap_with=formula[1]) as solver:
        solver.conf_budget(budget)
        answer = solver.solve_limited()
        conflicts = solver.accum_stats()["conflicts"]
    return (None if answer is None else "SAT" if answer else "UNSAT"), conflicts


def reference_answer(command: list[str], text: str) -> tuple[str, list[int] | None]:
    """Run a SAT Competition style solver on DIMACS text: (answer, model or None)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "f.cnf"
        path.write_text(text)
        if command[0] == "minisat":  # minisat writes its answer and model to a result file
            result = Path(scratch) / "result"
            subprocess.run([*command, str(path), str(result)], capture_output=True, check=False)
            lines = result.read_text().split("\n")
            if lines[0] == "UNSAT":
                return "UNSAT", None
            assert lines[0] == "SAT", f"minisat: unexpected result {lines[:1]}"
            return "SAT", [int(x) for x in lines[1].split()][:-1]
        done = subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)
        status = [line for line in done.stdout.splitlines() if line.startswith("s ")]
        if status == ["s UNSATISFIABLE"]:
            return "UNSAT", None
        assert status == ["s SATISFIABLE"], f"{command[0]}: unexpected output {status}"
        values = [int(x) for line in done.stdout.splitlines() if line.startswith("v ") for x in line[2:].split()]
        return "SAT", values[:-1]


def full_model(model: list[int], num_vars: int, clauses: list[list[int]], who: str) -> list[int]:
    """The model as one literal per variable 1..num_vars, checked against every clause."""
    assigned = {abs(x): x for x in model}
    full = [assigned.get(v, v) for v in range(1, num_vars + 1)]
    truth = set(full)
    for index, clause in enumerate(clauses):
        if not any(x in truth for x in clause):
            sys.exit(f"{who}'s model falsifies clause {index + 1}: the reference solver is broken")
    return full


def label(name: str, num_vars: int, clauses: list[list[int]], text: str) -> tuple[str, list[int] | None]:
    answers = {}
    for command in (["minisat", "-verb=0"], ["cadical", "-q"]):
        answer, model = reference_answer(command, text)
        if model is not None:
            model = full_model(model, num_vars, clauses, command[0])
        answers[command[0]] = (answer, model)
    if answers["minisat"][0] != answers["cadical"][0]:
        sys.exit(f"{name}: the reference solvers disagree (minisat {answers['minisat'][0]}, "
                 f"cadical {answers['cadical'][0]}); the benchmark is not built")
    return answers["cadical"]


def versions() -> str:
    found = []
    for solver in ("minisat", "cadical"):
        if shutil.which(solver) is None:
            sys.exit(f"reference solver '{solver}' not found: apt-get install -y minisat cadical")
    cadical = subprocess.run(["cadical", "--version"], capture_output=True, text=True).stdout.strip()
    found.append("minisat 2.2.1 (Debian)")
    found.append(f"cadical {cadical} (Debian)")
    return " + ".join(found)


def build() -> dict[str, list[dict]]:
    labelled_by = versions()
    cases: dict[str, list[dict]] = {"search": [], "heldout": []}
    for family in FAMILIES:
        wanted = list(family.wanted)
        seed = family.base_seed
        while wanted:
            if seed - family.base_seed >= MAX_TRIES:
                sys.exit(f"{family.prefix}: {MAX_TRIES} seeds tried, still missing {wanted}")
            num_vars, clauses = family.make(seed)
            answer, conflicts = screen((num_vars, clauses), family.max_conflicts)
            if answer in wanted and conflicts >= family.min_conflicts:
                wanted.remove(answer)
                cases[family.split].append(make_case(family, seed, num_vars, clauses, answer, conflicts,
                                                     labelled_by))
            seed += 1
    return cases


def make_case(family: Family, seed: int, num_vars: int, clauses: list[list[int]], screened: str,
              conflicts: int, labelled_by: str) -> dict:
    name = f"{family.prefix}-s{seed}"
    params = {**family.params, "seed": seed}
    text = to_dimacs(num_vars, clauses, [family.description, f"generator: problems/sat_c/families.py {params}"])
    assert [list(c) for c in parse_dimacs(text).clauses] == clauses  # the candidate reads exactly this
    verdict, witness = label(name, num_vars, clauses, text)
    if verdict != screened:
        sys.exit(f"{name}: python-sat MiniSat said {screened}, the reference binaries {verdict}")
    private = {
        "label": verdict,
        "sha256": instance_hash(num_vars, clauses),
        "family": family.description,
        "source": f"generated by problems/sat_c/families.py, seed {seed}",
        "params": params,
        "labelled_by": labelled_by,
        "screen_conflicts": conflicts,
    }
    if witness is not None:
        private["witness"] = witness
    print(f"{family.split:8s} {name:20s} {num_vars:6d} vars {len(clauses):7d} clauses  {verdict:5s} "
          f"({conflicts} MiniSat conflicts)", flush=True)
    return {"id": name, "inputs": {"dimacs": text}, "private": private}


def main() -> None:
    cases = build()
    lines = ["{"]  # one case per line: plain JSON with readable diffs
    for index, split in enumerate(("search", "heldout")):
        rows = ",\n".join("  " + json.dumps(case, separators=(",", ":")) for case in cases[split])
        lines.append(f' "{split}": [\n{rows}\n ]' + ("," if index == 0 else ""))
    lines.append("}")
    (HERE / "cases.json").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'cases.json'}: {len(cases['search'])} search, {len(cases['heldout'])} held-out cases")


if __name__ == "__main__":
    main()
