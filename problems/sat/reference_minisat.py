"""Reference solver for the baseline table: MiniSat 2.2 through python-sat.

Not a candidate of the search (the sandbox offers the standard library and
numpy only); `baseline.py` runs it through the same sandbox, runner and
verifier as the seed so that both are timed the same way.
"""

from pysat.solvers import Minisat22


def solve(num_vars: int, clauses: list[list[int]]) -> list[int] | str:
    with Minisat22(bootstrap_with=clauses) as solver:
        if not solver.solve():
            return "UNSAT"
        model = {abs(literal): literal for literal in solver.get_model()}
    return [model.get(var, var) for var in range(1, num_vars + 1)]
