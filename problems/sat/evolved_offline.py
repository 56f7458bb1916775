"""SAT solver: conflict-driven clause learning (CDCL) in plain Python.

`solve(num_vars, clauses)` returns a model (a list with v or -v for every
variable 1..num_vars), "UNSAT", or None to give up. The fixed core below the
EVOLVE-BLOCK is a complete, correct CDCL solver: two watched literals, first-UIP
clause learning, non-chronological backjumping, VSIDS-style activities and
restarts. The block holds its heuristics: the constants and the small functions
the core calls to pick branching scores, polarities and restart intervals. The
core accepts any value they return, so a heuristic can make the solver slower
but never wrong.
"""

from __future__ import annotations

import heapq
import random


# EVOLVE-BLOCK-START
# Activities fade by ACTIVITY_DECAY per conflict (closer to one: a longer memory).
ACTIVITY_DECAY = 0.75
# Starting activities: INITIAL_ACTIVITY_WEIGHT times a variable's occurrence count, where an
# occurrence in a clause of length k counts SHORT_CLAUSE_BONUS ** -k.
INITIAL_ACTIVITY_WEIGHT = 0.00815689
SHORT_CLAUSE_BONUS = 0.867561
# Restarts: the first after RESTART_FIRST conflicts, then each interval RESTART_GROWTH times longer.
RESTART_FIRST = 1000
RESTART_GROWTH = 1.91056
# Chance that a decision picks a random free variable, and the seed of that choice.
RANDOM_DECISION_RATE = -0.0869522
RANDOM_SEED = 1
# Non-zero PHASE_SAVING: a variable keeps the polarity it had before a backjump.
PHASE_SAVING = 2
# Polarity when nothing else decides (non-zero: true).
DEFAULT_POLARITY = 1


def initial_activity(var: int, lengths: list[int]) -> float:
    """Starting activity of `var`, given the lengths of the clauses it occurs in."""
    return INITIAL_ACTIVITY_WEIGHT * sum(SHORT_CLAUSE_BONUS ** -k for k in lengths)


def choose_polarity(var: int, saved: int | None, positive: float, negative: float) -> bool:
    """True to try var = true first. `saved` is its last polarity (None if never set);
    `positive` and `negative` are its occurrence counts as v and -v, each weighted by
    one half to the power of the clause length."""
    if PHASE_SAVING and saved is not None:
        return bool(saved)
    return bool(DEFAULT_POLARITY)


def restart_interval(restarts: int) -> float:
    """Conflicts allowed before the next restart, after `restarts` restarts so far."""
    return RESTART_FIRST * RESTART_GROWTH ** restarts
# EVOLVE-BLOCK-END


def solve(num_vars: int, clauses: list[list[int]]) -> list[int] | str | None:
    return Solver(num_vars, clauses).run()


class Solver:
    """Literals are coded as 2*v (v true) and 2*v + 1 (v false); code ^ 1 negates."""

    def __init__(self, num_vars: int, clauses: list[list[int]]) -> None:
        self.n = num_vars
        self.value = [0] * (2 * num_vars + 2)  # per literal code: 1 true, -1 false, 0 unassigned
        self.level = [0] * (num_vars + 1)
        self.reason: list[list[int] | None] = [None] * (num_vars + 1)
        self.saved: list[int | None] = [None] * (num_vars + 1)
        self.trail: list[int] = []
        self.trail_lim: list[int] = []
        self.qhead = 0
        self.watches: list[list[list[int]]] = [[] for _ in range(2 * num_vars + 2)]
        self.units: list[int] = []
        self.empty = False
        self.rng = random.Random(RANDOM_SEED)
        self.occurrence = [0.0] * (2 * num_vars + 2)
        self.lengths: list[list[int]] = [[] for _ in range(num_vars + 1)]
        for clause in clauses:
            self._add_input(clause)
        self.activity = [0.0] + [_number(initial_activity(v, self.lengths[v])) for v in range(1, num_vars + 1)]
        self.increment = 1.0
        self.heap = [(-self.activity[v], v) for v in range(1, num_vars + 1)]
        heapq.heapify(self.heap)

    def _add_input(self, clause: list[int]) -> None:
        codes = sorted({2 * lit if lit > 0 else -2 * lit + 1 for lit in clause})
        if any(code ^ 1 in codes for code in codes):
            return  # a tautology constrains nothing
        for code in codes:
            self.occurrence[code] += 2.0 ** -len(codes)
            self.lengths[code >> 1].append(len(codes))
        if not codes:
            self.empty = True
        elif len(codes) == 1:
            self.units.append(codes[0])
        else:
            self._watch(codes)

    def _watch(self, clause: list[int]) -> None:
        self.watches[clause[0]].append(clause)
        self.watches[clause[1]].append(clause)

    # ------------------------------------------------------------------ search

    def run(self) -> list[int] | str:
        if self.empty:
            return "UNSAT"
        for code in self.units:
            if self.value[code] == -1:
                return "UNSAT"
            if self.value[code] == 0:
                self._assign(code, None)
        restarts, conflicts_left = 0, _interval(0)
        while True:
            conflict = self._propagate()
            if conflict is not None:
                if not self.trail_lim:
                    return "UNSAT"
                learnt, back_level = self._analyze(conflict)
                self._backjump(back_level)
                if len(learnt) == 1:
                    self._assign(learnt[0], None)
                else:
                    self._watch(learnt)
                    self._assign(learnt[0], learnt)
                self._decay()
                conflicts_left -= 1
                continue
            if conflicts_left <= 0:
                restarts += 1
                conflicts_left = _interval(restarts)
                self._backjump(0)
                continue
            var = self._pick_variable()
            if var == 0:
                return [v if self.value[2 * v] == 1 else -v for v in range(1, self.n + 1)]
            positive = choose_polarity(var, self.saved[var], self.occurrence[2 * var], self.occurrence[2 * var + 1])
            self.trail_lim.append(len(self.trail))
            self._assign(2 * var if positive else 2 * var + 1, None)

    def _assign(self, code: int, reason: list[int] | None) -> None:
        var = code >> 1
        self.value[code] = 1
        self.value[code ^ 1] = -1
        self.level[var] = len(self.trail_lim)
        self.reason[var] = reason
        self.trail.append(code)

    def _propagate(self) -> list[int] | None:
        """Unit propagation over watched literals; the conflicting clause, if any."""
        value, watches, trail = self.value, self.watches, self.trail
        while self.qhead < len(trail):
            false_code = trail[self.qhead] ^ 1
            self.qhead += 1
            watching = watches[false_code]
            kept = 0
            i, end = 0, len(watching)
            while i < end:
                clause = watching[i]
                i += 1
                if clause[0] == false_code:
                    clause[0], clause[1] = clause[1], false_code
                first = clause[0]
                if value[first] == 1:
                    watching[kept] = clause
                    kept += 1
                    continue
                for k in range(2, len(clause)):
                    if value[clause[k]] != -1:
                        clause[1], clause[k] = clause[k], false_code
                        watches[clause[1]].append(clause)
                        break
                else:
                    watching[kept] = clause
                    kept += 1
                    if value[first] == -1:
                        while i < end:
                            watching[kept] = watching[i]
                            kept += 1
                            i += 1
                        del watching[kept:]
                        self.qhead = len(trail)
                        return clause
                    self._assign(first, clause)
            del watching[kept:]
        return None

    def _analyze(self, conflict: list[int]) -> tuple[list[int], int]:
        """First-UIP learnt clause (asserting literal first) and the level to jump back to."""
        seen = set()
        learnt = [0]
        current = len(self.trail_lim)
        pending = 0
        index = len(self.trail) - 1
        clause: list[int] | None = conflict
        implied = -1
        while True:
            assert clause is not None  # every literal of the current level but the decision has a reason
            for code in clause:
                if code == implied:
                    continue
                var = code >> 1
                if var not in seen and self.level[var] > 0:
                    seen.add(var)
                    self._bump(var)
                    if self.level[var] >= current:
                        pending += 1
                    else:
                        learnt.append(code)
            while (self.trail[index] >> 1) not in seen:
                index -= 1
            implied = self.trail[index]
            index -= 1
            clause = self.reason[implied >> 1]
            pending -= 1
            if pending == 0:
                break
        learnt[0] = implied ^ 1
        if len(learnt) == 1:
            return learnt, 0
        deepest = max(range(1, len(learnt)), key=lambda k: self.level[learnt[k] >> 1])
        learnt[1], learnt[deepest] = learnt[deepest], learnt[1]
        return learnt, self.level[learnt[1] >> 1]

    def _backjump(self, level: int) -> None:
        if len(self.trail_lim) <= level:
            return
        stop = self.trail_lim[level]
        for code in self.trail[stop:]:
            var = code >> 1
            self.value[code] = self.value[code ^ 1] = 0
            self.saved[var] = 1 - (code & 1)
            self.reason[var] = None
            heapq.heappush(self.heap, (-self.activity[var], var))
        del self.trail[stop:]
        del self.trail_lim[level:]
        self.qhead = len(self.trail)

    # ------------------------------------------------------------- activities

    def _bump(self, var: int) -> None:
        self.activity[var] += self.increment
        if self.activity[var] > 1e100:
            self.activity = [a * 1e-100 for a in self.activity]
            self.increment *= 1e-100
            self.heap = [(-self.activity[v], v) for v in range(1, self.n + 1) if self.value[2 * v] == 0]
            heapq.heapify(self.heap)
        elif self.value[2 * var] == 0:
            heapq.heappush(self.heap, (-self.activity[var], var))

    def _decay(self) -> None:
        decay = _number(ACTIVITY_DECAY)
        if 0.0 < decay < 1.0:
            self.increment /= decay

    def _pick_variable(self) -> int:
        """The free variable of highest activity (or a random one); 0 when all are assigned."""
        value = self.value
        if self.rng.random() < _number(RANDOM_DECISION_RATE):
            free = [v for v in range(1, self.n + 1) if value[2 * v] == 0]
            if free:
                return self.rng.choice(free)
        heap, activity = self.heap, self.activity
        while heap:
            negative, var = heapq.heappop(heap)
            if value[2 * var] == 0 and -negative == activity[var]:
                return var
        # Stale entries only: rebuild from the free variables.
        self.heap = [(-activity[v], v) for v in range(1, self.n + 1) if value[2 * v] == 0]
        heapq.heapify(self.heap)
        return heapq.heappop(self.heap)[1] if self.heap else 0


def _number(value: object) -> float:
    """A heuristic's value as a finite float (anything else counts as 0)."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return result if result == result and abs(result) != float("inf") else 0.0


def _interval(restarts: int) -> float:
    """The heuristic's restart interval, at least one conflict ("never" if it overflows)."""
    try:
        interval = float(restart_interval(restarts))
    except OverflowError:
        return float("inf")
    except (TypeError, ValueError):
        return 1.0
    return interval if interval >= 1.0 else 1.0
