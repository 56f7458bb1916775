"""Generators of the benchmark's formula families, each deterministic in its seed.

Every function returns (num_vars, clauses) with clauses as lists of non-zero ints (DIMACS literals).
Used by build_benchmark.py; kept apart so a test or a user can regenerate one formula.
"""

from __future__ import annotations

import itertools
import random

THRESHOLD_3SAT = 4.26  # clauses per variable at the uniform random 3-SAT phase transition


def random_3sat(num_vars: int, seed: int, ratio: float = THRESHOLD_3SAT) -> tuple[int, list[list[int]]]:
    """SATLIB's uniform random 3-SAT model (uf/uuf): each clause draws 3 distinct variables uniformly
    and negates each with probability 1/2, independently of the other clauses."""
    rng = random.Random(seed)
    clauses = []
    for _ in range(round(ratio * num_vars)):
        chosen = rng.sample(range(1, num_vars + 1), 3)
        clauses.append([v if rng.random() < 0.5 else -v for v in chosen])
    return num_vars, clauses


def pigeonhole(holes: int, seed: int) -> tuple[int, list[list[int]]]:
    """holes + 1 pigeons into `holes` holes (unsatisfiable), variable names and clause order shuffled."""
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


def random_graph(nodes: int, edges: int, rng: random.Random) -> list[tuple[int, int]]:
    """A uniform random simple graph G(nodes, edges), edges sorted."""
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < edges:
        a, b = rng.sample(range(nodes), 2)
        chosen.add((min(a, b), max(a, b)))
    return sorted(chosen)


def colouring(nodes: int, edges: int, colours: int, seed: int) -> tuple[int, list[list[int]]]:
    """Can the uniform random graph G(nodes, edges) be coloured with `colours` colours? (SATLIB's
    "flat graph colouring" encoding: at least one colour per node, at most one, endpoints differ.)"""
    graph = random_graph(nodes, edges, random.Random(seed))

    def var(node: int, colour: int) -> int:
        return node * colours + colour + 1

    clauses = [[var(v, c) for c in range(colours)] for v in range(nodes)]
    for v in range(nodes):
        clauses += [[-var(v, c), -var(v, d)] for c, d in itertools.combinations(range(colours), 2)]
    for a, b in graph:
        clauses += [[-var(a, c), -var(b, c)] for c in range(colours)]
    return nodes * colours, clauses


def random_regular_graph(nodes: int, degree: int, rng: random.Random) -> list[tuple[int, int]]:
    """A random simple `degree`-regular graph by the pairing model, retried until simple."""
    if nodes * degree % 2:
        raise ValueError("nodes * degree must be even")
    while True:
        stubs = [v for v in range(nodes) for _ in range(degree)]
        rng.shuffle(stubs)
        edges = {(min(a, b), max(a, b)) for a, b in zip(stubs[::2], stubs[1::2])}
        if len(edges) == nodes * degree // 2 and all(a != b for a, b in edges):
            return sorted(edges)


def tseitin(nodes: int, degree: int, seed: int, satisfiable: bool) -> tuple[int, list[list[int]]]:
    """Tseitin parity formula on a random `degree`-regular graph: one variable per edge, and for every
    node the XOR of its edges equals the node's charge. Charges sum to an odd number exactly when the
    formula is unsatisfiable (each edge counts at both its ends)."""
    rng = random.Random(seed)
    edges = random_regular_graph(nodes, degree, rng)
    charges = [rng.randint(0, 1) for _ in range(nodes)]
    if (sum(charges) % 2 == 1) == satisfiable:
        charges[rng.randrange(nodes)] ^= 1
    incident: list[list[int]] = [[] for _ in range(nodes)]
    for index, (a, b) in enumerate(edges):
        incident[a].append(index + 1)
        incident[b].append(index + 1)
    clauses = []
    for node, variables in enumerate(incident):
        # forbid every assignment of the node's edges whose parity differs from its charge
        for signs in itertools.product((0, 1), repeat=len(variables)):
            if sum(signs) % 2 != charges[node]:
                clauses.append([-v if s else v for v, s in zip(variables, signs)])
    rng.shuffle(clauses)
    return len(edges), clauses


def latin_square(order: int, rng: random.Random, moves: int | None = None) -> list[list[int]]:
    """A random Latin square: Jacobson & Matthews' Markov chain started from the cyclic square."""
    n = order
    cube = [[[0] * n for _ in range(n)] for _ in range(n)]  # cube[r][c][s] in {-1, 0, 1}
    for r in range(n):
        for c in range(n):
            cube[r][c][(r + c) % n] = 1
    improper: tuple[int, int, int] | None = None
    steps = moves if moves is not None else n ** 3
    done = 0
    while done < steps or improper is not None:
        if improper is None:
            while True:
                r, c, s = rng.randrange(n), rng.randrange(n), rng.randrange(n)
                if cube[r][c][s] == 0:
                    break
            r2 = next(x for x in range(n) if cube[x][c][s] == 1)
            c2 = next(y for y in range(n) if cube[r][y][s] == 1)
            s2 = next(z for z in range(n) if cube[r][c][z] == 1)
        else:
            r, c, s = improper
            r2 = rng.choice([x for x in range(n) if cube[x][c][s] == 1])
            c2 = rng.choice([y for y in range(n) if cube[r][y][s] == 1])
            s2 = rng.choice([z for z in range(n) if cube[r][c][z] == 1])
        cube[r][c][s] += 1
        cube[r][c2][s2] += 1
        cube[r2][c][s2] += 1
        cube[r2][c2][s] += 1
        cube[r][c][s2] -= 1
        cube[r][c2][s] -= 1
        cube[r2][c][s] -= 1
        cube[r2][c2][s2] -= 1
        improper = (r2, c2, s2) if cube[r2][c2][s2] < 0 else None
        done += 1
    square = [[next(s for s in range(n) if cube[r][c][s] == 1) for c in range(n)] for r in range(n)]
    for line in square + [list(col) for col in zip(*square)]:
        assert sorted(line) == list(range(n)), "not a Latin square"
    return square


def quasigroup_with_holes(order: int, holes: float, seed: int) -> tuple[int, list[list[int]]]:
    """Quasigroup completion with holes (QWH, Achlioptas et al. 2000): a random Latin square with a
    fraction `holes` of its cells erased; satisfiable by construction. Reduced encoding: a variable
    for each (empty cell, symbol) that its row and column do not already use; every cell, and every
    row and column for every symbol it lacks, takes exactly one."""
    rng = random.Random(seed)
    square = latin_square(order, rng)
    n = order
    cells = [(r, c) for r in range(n) for c in range(n)]
    erased = set(rng.sample(cells, round(holes * n * n)))
    row_used = [{square[r][c] for c in range(n) if (r, c) not in erased} for r in range(n)]
    col_used = [{square[r][c] for r in range(n) if (r, c) not in erased} for c in range(n)]
    var: dict[tuple[int, int, int], int] = {}
    for r, c in sorted(erased):
        for s in range(n):
            if s not in row_used[r] and s not in col_used[c]:
                var[(r, c, s)] = len(var) + 1
    groups: list[list[int]] = []
    for r, c in sorted(erased):
        groups.append([var[(r, c, s)] for s in range(n) if (r, c, s) in var])
    for r in range(n):
        for s in range(n):
            if s not in row_used[r]:
                groups.append([var[(r, c, s)] for c in range(n) if (r, c, s) in var])
    for c in range(n):
        for s in range(n):
            if s not in col_used[c]:
                groups.append([var[(r, c, s)] for r in range(n) if (r, c, s) in var])
    clauses = []
    for group in groups:
        clauses.append(list(group))
        clauses += [[-a, -b] for a, b in itertools.combinations(group, 2)]
    return len(var), clauses
