"""Print the README's baseline table: PAR-2 of the seed solver, MiniSat 2.2 and CaDiCaL on both splits.

    python problems/sat_c/baseline.py [--timeout 10] [--solvers seed,minisat,cadical] [--program solver.c]

Every solver runs on every case as its own process with the case's DIMACS text, under the same CPU
limit (RLIMIT_CPU), and is charged the CPU time (user + system) of that process, read with wait4; an
answer must agree with the case's label (and a model satisfy every clause) or the run aborts. PAR-2:
the mean over a split of the CPU seconds of solved cases, 2 x the limit for an unsolved one. The
reference solvers are the Debian `minisat` and `cadical` binaries (apt-get install minisat cadical).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evaluators.dimacs import parse_dimacs  # noqa: E402


def compile_program(source: Path, scratch: Path) -> Path:
    binary = scratch / "solver"
    subprocess.run(["gcc", "-O2", "-std=c11", "-o", str(binary), str(source), "-lm"], check=True)
    return binary


def run(command: list[str], text: str, limit: float) -> tuple[str, float]:
    """(stdout, CPU seconds of the process); the process gets `limit` CPU seconds."""
    seconds = max(1, int(limit + 0.999))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as given:
        given.write(text.encode())
        given.seek(0)
        process = subprocess.Popen(command, stdin=given, stdout=out, stderr=subprocess.DEVNULL, preexec_fn=cap)
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0  # reaped here; keeps Popen from waiting again
        out.seek(0)
        return out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime


def answer_of(stdout: str) -> tuple[str | None, set[int]]:
    lines = stdout.splitlines()
    status = [line for line in lines if line.startswith("s ")]
    if status == ["s UNSATISFIABLE"]:
        return "UNSAT", set()
    if status == ["s SATISFIABLE"]:
        return "SAT", {int(x) for line in lines if line.startswith("v ") for x in line[2:].split()}
    return None, set()


def solver_command(name: str, binary: Path) -> list[str]:
    return {"seed": [str(binary)], "cadical": ["cadical", "-q"], "minisat": ["minisat", "-verb=0"]}[name]


def judge(name: str, case: dict, stdout: str) -> bool:
    """True when solved; raises on a wrong answer (a reference solver or the seed is broken)."""
    if name == "minisat":
        lines = stdout.splitlines()
        if "UNSATISFIABLE" in lines:
            stdout = "s UNSATISFIABLE\n"
        elif "SATISFIABLE" in lines:  # no model printed: check the label only
            if case["private"]["label"] != "SAT":
                raise SystemExit(f"minisat: wrong answer SAT on {case['id']}")
            return True
        else:
            return False
    answer, model = answer_of(stdout)
    if answer is None:
        return False
    if answer != case["private"]["label"]:
        raise SystemExit(f"{name}: wrong answer {answer} on {case['id']}")
    if answer == "SAT":
        cnf = parse_dimacs(case["inputs"]["dimacs"])
        bad = [c for c in cnf.clauses if not any(x in model for x in c)]
        if bad:
            raise SystemExit(f"{name}: model falsifies {bad[0]} on {case['id']}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="CPU seconds per case (default 10)")
    parser.add_argument("--solvers", default="seed,minisat,cadical")
    parser.add_argument("--program", type=Path, default=HERE / "solver.c", help="C source of the seed")
    parser.add_argument("--cases", type=Path, default=HERE / "cases.json")
    parser.add_argument("--per-case", action="store_true", help="print every case's CPU time")
    args = parser.parse_args()
    cases = json.loads(args.cases.read_text())
    names = args.solvers.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        binary = compile_program(args.program, Path(scratch))
        table: dict[str, dict[str, tuple[float, int, int]]] = {}
        for name in names:
            for split in ("search", "heldout"):
                total, solved = 0.0, 0
                for case in cases[split]:
                    stdout, cpu = run(solver_command(name, binary), case["inputs"]["dimacs"], args.timeout)
                    ok = judge(name, case, stdout) and cpu <= args.timeout
                    total += cpu if ok else 2 * args.timeout
                    solved += ok
                    if args.per_case:
                        print(f"{name:8s} {case['id']:20s} {'%.3f' % cpu if ok else 'unsolved':>9s}", flush=True)
                table.setdefault(name, {})[split] = (total / len(cases[split]), solved, len(cases[split]))
    print(f"\nPAR-2, CPU seconds per case, limit {args.timeout:g} s (unsolved = {2 * args.timeout:g} s)")
    print("| solver | search PAR-2 | solved | held-out PAR-2 | solved |")
    print("|---|---|---|---|---|")
    for name, row in table.items():
        s, h = row["search"], row["heldout"]
        print(f"| {name} | {s[0]:.3f} | {s[1]}/{s[2]} | {h[0]:.3f} | {h[1]}/{h[2]} |")


if __name__ == "__main__":
    main()
