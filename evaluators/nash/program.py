"""Candidate algorithms as data: validation against the host-owned block library.

A candidate's `algorithm()` returns JSON data, never code that runs on the host:

    {"steps":  [{"block": "Random1", "out": ["x1"]},
                {"block": "BestResponse2", "args": ["x1"], "out": ["y1"]}, ...],
     "branch": {"if": {"lhs": ["f1", "w", "z"], "op": ">=", "rhs": ["f2", "w", "z"]},
                "then": [steps...], "else": [steps...]},          # optional, both arms required
     "hints":  {"bound": "1/3"}}                                  # optional

A term in a condition is [fn, p1 name, p2 name] with fn one of f1, f2, U1, U2, or
an exact rational constant written as a string ("1/3") or an int. ZeroSumNE and
MaxPayoff take "payoff": {"U1": a, "U2": b}, integers in [-2, 2].

`parse_algorithm` checks all of it and returns the normalized form the compiler,
the executor and the store use; anything else is an AlgorithmError whose message
is the reason shown to the candidate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

P1, P2 = "p1", "p2"
MAX_STEPS = 8  # over the whole program: shared steps plus both arms
MAX_STRATEGIES = 3  # constructed strategies per player in one arm
MAX_JSON_CHARS = 20_000
COEFFICIENT_RANGE = range(-2, 3)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,15}$")
# Rational constants: a short decimal or fraction, its exponent bounded before Fraction expands it.
MAX_RATIONAL_CHARS = 40
MAX_RATIONAL_DIGITS = 40
MAX_EXPONENT = 30
_RATIONAL = re.compile(r"[+-]?(\d+\s*/\s*\d+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")


@dataclass(frozen=True)
class BlockSpec:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    payoff: bool = False  # takes an integer combination of U1 and U2


# The block library. Its constraints live in system.py; a candidate can only name these.
BLOCKS: dict[str, BlockSpec] = {
    "BestResponse1": BlockSpec((P2,), (P1,)),
    "BestResponse2": BlockSpec((P1,), (P2,)),
    "Random1": BlockSpec((), (P1,)),
    "Random2": BlockSpec((), (P2,)),
    "EqMix1": BlockSpec((P1, P1), (P1,)),
    "EqMix2": BlockSpec((P2, P2), (P2,)),
    "ZeroSumNE": BlockSpec((), (P1, P2), payoff=True),
    "MaxPayoff": BlockSpec((), (P1, P2), payoff=True),
    "StationaryPoint": BlockSpec((), (P1, P2, P1, P2)),
}
FUNCTIONS = ("f1", "f2", "U1", "U2")


class AlgorithmError(ValueError):
    """The candidate's algorithm is malformed; the message says what to change."""


@dataclass(frozen=True)
class Step:
    block: str
    args: tuple[str, ...]
    out: tuple[str, ...]
    payoff: tuple[int, int] | None = None  # (coefficient of U1, coefficient of U2)


@dataclass(frozen=True)
class Term:
    fn: str | None  # f1, f2, U1, U2; None for a constant
    x: str = ""
    y: str = ""
    const: Fraction | None = None


@dataclass(frozen=True)
class Condition:
    lhs: Term
    op: str  # ">=" or "<="; the else arm assumes the strict negation
    rhs: Term


@dataclass(frozen=True)
class Branch:
    cond: Condition
    then: tuple[Step, ...]
    orelse: tuple[Step, ...]


@dataclass(frozen=True)
class Algorithm:
    steps: tuple[Step, ...]
    branch: Branch | None
    bound_hint: Fraction | None

    def arms(self) -> list[tuple[str, tuple[Step, ...], Condition | None, bool]]:
        """(name, steps, condition, holds) per arm; one arm without a branch."""
        if self.branch is None:
            return [("main", self.steps, None, True)]
        return [("then", self.steps + self.branch.then, self.branch.cond, True),
                ("else", self.steps + self.branch.orelse, self.branch.cond, False)]

    def to_data(self) -> dict[str, Any]:
        """The normalized JSON form (stored as the certification subject, read by the executor)."""
        data: dict[str, Any] = {"steps": [_step_data(s) for s in self.steps], "branch": None, "hints": {}}
        if self.branch is not None:
            cond = self.branch.cond
            data["branch"] = {"cond": {"lhs": _term_data(cond.lhs), "op": cond.op, "rhs": _term_data(cond.rhs)},
                              "then": [_step_data(s) for s in self.branch.then],
                              "else": [_step_data(s) for s in self.branch.orelse]}
        if self.bound_hint is not None:
            data["hints"]["bound"] = str(self.bound_hint)
        return data


_MIRROR_BLOCK = {"BestResponse1": "BestResponse2", "BestResponse2": "BestResponse1", "Random1": "Random2",
                 "Random2": "Random1", "EqMix1": "EqMix2", "EqMix2": "EqMix1"}
_MIRROR_FN = {"f1": "f2", "f2": "f1", "U1": "U2", "U2": "U1"}


def mirrored(algorithm: Algorithm) -> Algorithm:
    """The same algorithm with the players' roles swapped (run on the transposed game).

    Its worst case is the same, but it is a different formula for the solver, whose
    running time depends heavily on the form (an arm the solver gives up on after
    minutes can be proven in seconds in mirror image), so the certifier tries both.
    """
    def step(s: Step) -> Step:
        if s.block == "StationaryPoint":  # (xs, ys, w, z) -> player 1's is now ys, its dual z
            xs, ys, w, z = s.out
            return Step(s.block, (), (ys, xs, z, w))
        if s.block == "ZeroSumNE":  # player 1 maximized a*U1 + b*U2; now the maximizer is player 2's role
            a, b = s.payoff  # type: ignore[misc]
            return Step(s.block, (), (s.out[1], s.out[0]), (-b, -a))
        if s.block == "MaxPayoff":
            a, b = s.payoff  # type: ignore[misc]
            return Step(s.block, (), (s.out[1], s.out[0]), (b, a))
        return Step(_MIRROR_BLOCK[s.block], s.args, s.out, s.payoff)

    def term(t: Term) -> Term:
        return t if t.fn is None else Term(_MIRROR_FN[t.fn], t.y, t.x)

    branch = None
    if algorithm.branch is not None:
        c = algorithm.branch.cond
        branch = Branch(Condition(term(c.lhs), c.op, term(c.rhs)), tuple(map(step, algorithm.branch.then)),
                        tuple(map(step, algorithm.branch.orelse)))
    return Algorithm(tuple(map(step, algorithm.steps)), branch, algorithm.bound_hint)


def parse_algorithm(data: Any) -> Algorithm:
    """Validate a candidate's output (or the normalized form) into an Algorithm."""
    if not isinstance(data, dict):
        raise AlgorithmError(f"algorithm() must return a dict with 'steps'; got {type(data).__name__}")
    if len(json.dumps(data, default=str)) > MAX_JSON_CHARS:
        raise AlgorithmError(f"the algorithm is over {MAX_JSON_CHARS} characters of JSON")
    unknown = set(data) - {"steps", "branch", "hints"}
    if unknown:
        raise AlgorithmError(f"unknown top-level key(s) {sorted(unknown)}; use 'steps', 'branch', 'hints'")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list):
        raise AlgorithmError("'steps' must be a list of steps")
    defined: dict[str, str] = {}
    steps = _parse_steps(steps_data, defined, "steps")
    branch = _parse_branch(data.get("branch"), defined)
    total = len(steps) + (len(branch.then) + len(branch.orelse) if branch else 0)
    if total > MAX_STEPS:
        raise AlgorithmError(f"{total} steps; at most {MAX_STEPS} are allowed (shared steps plus both arms)")
    algorithm = Algorithm(steps, branch, _parse_hints(data.get("hints")))
    for arm, arm_steps, _, _ in algorithm.arms():
        players = [p for step in arm_steps for p in BLOCKS[step.block].outputs]
        for player in (P1, P2):
            count = players.count(player)
            if count > MAX_STRATEGIES:
                raise AlgorithmError(f"arm '{arm}' constructs {count} strategies for player {player[1]}; "
                                     f"at most {MAX_STRATEGIES} per player per arm")
            if count == 0:
                raise AlgorithmError(f"arm '{arm}' constructs no strategy for player {player[1]}, "
                                     "so it has no profile to output")
    return algorithm


def _parse_steps(items: list[Any], defined: dict[str, str], where: str) -> tuple[Step, ...]:
    steps = []
    for index, item in enumerate(items):
        label = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise AlgorithmError(f"{label} must be an object with 'block' and 'out'")
        unknown = set(item) - {"block", "args", "out", "payoff"}
        if unknown:
            raise AlgorithmError(f"{label}: unknown key(s) {sorted(unknown)}")
        block = item.get("block")
        if block not in BLOCKS:
            raise AlgorithmError(f"{label}: unknown block {str(block)[:40]!r}; the library has "
                                 f"{', '.join(BLOCKS)} (new blocks cannot be defined)")
        spec = BLOCKS[block]
        args = _names(item.get("args", []), f"{label}.args")
        out = _names(item.get("out"), f"{label}.out")
        if len(args) != len(spec.inputs):
            raise AlgorithmError(f"{label}: {block} takes {len(spec.inputs)} argument(s), got {len(args)}")
        for name, player in zip(args, spec.inputs):
            if name not in defined:
                raise AlgorithmError(f"{label}: {block} uses {name!r} before it is defined")
            if defined[name] != player:
                raise AlgorithmError(f"{label}: {block} needs a player {player[1]} strategy; "
                                     f"{name!r} belongs to player {defined[name][1]}")
        if len(out) != len(spec.outputs):
            raise AlgorithmError(f"{label}: {block} returns {len(spec.outputs)} strategies, got {len(out)} names")
        for name, player in zip(out, spec.outputs):
            if name in defined:
                raise AlgorithmError(f"{label}: {name!r} is already defined; every strategy gets a new name")
            defined[name] = player
        payoff = _payoff(item.get("payoff"), label, block) if spec.payoff else None
        if not spec.payoff and item.get("payoff") is not None:
            raise AlgorithmError(f"{label}: {block} takes no payoff")
        steps.append(Step(block, args, out, payoff))
    return tuple(steps)


def _names(value: Any, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise AlgorithmError(f"{label} must be a list of strategy names")
    for name in value:
        if not isinstance(name, str) or not _NAME.match(name):
            raise AlgorithmError(f"{label}: {str(name)[:40]!r} is not a name (letters, digits, _; at most 16)")
    if len(set(value)) != len(value):
        raise AlgorithmError(f"{label}: a name repeats")
    return tuple(value)


def _payoff(value: Any, label: str, block: str) -> tuple[int, int]:
    if not isinstance(value, dict) or not value or set(value) - {"U1", "U2"}:
        raise AlgorithmError(f"{label}: {block} needs 'payoff': {{'U1': a, 'U2': b}} with integers a, b")
    coefficients = []
    for key in ("U1", "U2"):
        c = value.get(key, 0)
        if type(c) is not int or c not in COEFFICIENT_RANGE:
            raise AlgorithmError(f"{label}: payoff coefficient of {key} must be an integer in [-2, 2]; got {c!r}")
        coefficients.append(c)
    if coefficients == [0, 0]:
        raise AlgorithmError(f"{label}: the payoff combination is zero")
    return coefficients[0], coefficients[1]


def _parse_branch(value: Any, defined: dict[str, str]) -> Branch | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AlgorithmError("'branch' must be an object with 'if', 'then' and 'else'")
    if "then" not in value or "else" not in value:
        missing = "else" if "then" in value else "then"
        raise AlgorithmError(f"the branch has no '{missing}' arm: a condition without its complementary "
                             "arm is not sound; give both 'then' and 'else' (an arm may be an empty list)")
    unknown = set(value) - {"if", "cond", "then", "else"}
    if unknown:
        raise AlgorithmError(f"branch: unknown key(s) {sorted(unknown)}")
    cond = _condition(value.get("if", value.get("cond")), defined)
    arms = []
    for arm in ("then", "else"):
        if not isinstance(value[arm], list):
            raise AlgorithmError(f"branch '{arm}' must be a list of steps")
        arms.append(_parse_steps(value[arm], dict(defined), f"branch.{arm}"))
    return Branch(cond, arms[0], arms[1])


def _condition(value: Any, defined: dict[str, str]) -> Condition:
    if isinstance(value, list) and len(value) == 3 and value[1] in (">=", "<="):
        value = {"lhs": value[0], "op": value[1], "rhs": value[2]}
    if not isinstance(value, dict) or set(value) != {"lhs", "op", "rhs"}:
        raise AlgorithmError("branch 'if' must be {'lhs': term, 'op': '>=' or '<=', 'rhs': term}")
    if value["op"] not in (">=", "<="):
        raise AlgorithmError(f"branch condition operator must be '>=' or '<='; got {str(value['op'])[:10]!r}")
    lhs, rhs = _term(value["lhs"], defined), _term(value["rhs"], defined)
    if lhs.fn is None and rhs.fn is None:
        raise AlgorithmError("branch condition compares two constants")
    return Condition(lhs, value["op"], rhs)


def _term(value: Any, defined: dict[str, str]) -> Term:
    if isinstance(value, dict) and "fn" in value:  # the normalized form
        value = [value["fn"], value["x"], value["y"]] if value["fn"] is not None else value.get("const")
    if isinstance(value, dict) and set(value) == {"const"}:
        value = value["const"]
    if isinstance(value, list):
        if len(value) != 3 or value[0] not in FUNCTIONS:
            raise AlgorithmError(f"a condition term is [fn, p1 name, p2 name] with fn in {FUNCTIONS}; "
                                 f"got {str(value)[:60]}")
        _, x, y = value
        if defined.get(x) != P1 or defined.get(y) != P2:
            raise AlgorithmError(f"condition term {value}: {x!r} must be a player 1 and {y!r} a player 2 "
                                 "strategy defined before the branch")
        return Term(value[0], x, y)
    return Term(None, const=rational(value, "a condition constant"))


def rational(value: Any, what: str) -> Fraction:
    """An exact rational from an int or a string such as '1/3' or '0.25'; floats are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise AlgorithmError(f"{what} is the float {value!r}; write it as an exact rational string such as "
                             "'1/3' (floats like 0.333333 are not exact)")
    if isinstance(value, int):
        if len(str(abs(value))) > MAX_RATIONAL_DIGITS:
            raise AlgorithmError(f"{what} has more than {MAX_RATIONAL_DIGITS} digits; write a small exact "
                                 "rational such as '1/3'")
        return Fraction(value)
    if isinstance(value, str) and len(value) <= MAX_RATIONAL_CHARS:
        text = value.strip()
        if not _RATIONAL.fullmatch(text):
            raise AlgorithmError(f"{what} must be an exact rational written like '1/3', '-2', '0.25' or '5e-3'; "
                                 f"got {text[:40]!r}")
        exponent = _EXPONENT.search(text)
        if exponent and abs(int(exponent.group(1))) > MAX_EXPONENT:  # Fraction('1e9999999') takes seconds
            raise AlgorithmError(f"{what} {text[:40]!r} has an exponent beyond +-{MAX_EXPONENT}; "
                                 "write a small exact rational such as '1/3'")
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            pass
    raise AlgorithmError(f"{what} must be an exact rational (an int or a string like '1/3'); got {str(value)[:40]!r}")


def _parse_hints(value: Any) -> Fraction | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or set(value) - {"bound"}:
        raise AlgorithmError("'hints' may only hold 'bound': an exact rational the certifier tries first")
    bound = rational(value["bound"], "hints.bound")
    if not 0 < bound <= 1:
        raise AlgorithmError(f"hints.bound must lie in (0, 1]; got {bound}")
    return bound


def _step_data(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"block": step.block, "args": list(step.args), "out": list(step.out), "payoff": None}
    if step.payoff is not None:
        data["payoff"] = {"U1": step.payoff[0], "U2": step.payoff[1]}
    return data


def _term_data(term: Term) -> dict[str, Any]:
    if term.fn is None:
        return {"const": str(term.const)}
    return {"fn": term.fn, "x": term.x, "y": term.y}
