"""The offline proposer: a non-LLM mutation operator, so a search runs with no endpoint.

Each proposal changes the EVOLVE-BLOCK text of the parent (any file of a multi-file program:
markers are found across the whole bundle, in Python or C-family comments) by one of:
- perturbing a numeric literal (relative Gaussian step, sometimes a larger jump),
- deleting, duplicating or swapping lines,
- line-level crossover: a run of the parent's lines replaced by lines of an inspiration.
It knows nothing about the problem; the verifier decides whether a change helped.
"""

from __future__ import annotations

import random
import re

from omegaconf import DictConfig

from evolve.config import ConfigError
from evolve.edits import EditRejected, Rewrite, join_blocks, split_blocks
from evolve.proposers.base import Proposal, ProposalRequest
from evolve.settings import LLMSettings

_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
NAME = "offline"
_COMMENTS = ("#", "//", "/*", "*")  # lines of comment text, in Python or the C family: no numbers to tune


def _comment_start(line: str) -> int:
    """Where a trailing C block comment starts (numbers in it tune nothing); the line's end if none."""
    found = line.find("/*")
    return len(line) if found < 0 else found


class OfflineProposer:
    def __init__(self, cfg: LLMSettings | DictConfig) -> None:  # the llm section
        rates = [float(cfg.numeric_rate), float(cfg.line_rate), float(cfg.crossover_rate)]
        if min(rates) < 0 or sum(rates) <= 0:
            raise ConfigError("llm.numeric_rate, line_rate and crossover_rate must be >= 0 and not all 0")
        self.rates = rates

    async def propose(self, request: ProposalRequest) -> Proposal:
        rng = random.Random(request.seed)
        try:
            fixed, blocks = split_blocks(request.parent.code)
        except EditRejected as error:
            return Proposal(None, NAME, failure=f"parent cannot be mutated: {error}")
        index = rng.randrange(len(blocks))
        donors = [split_blocks(p.code)[1] for p in request.inspirations if _has_blocks(p.code)]
        donor_lines = [b[index].splitlines() for b in donors if len(b) == len(blocks)]
        lines = blocks[index].splitlines()
        for _ in range(8):  # a few tries: some operators find nothing to change
            operator = rng.choices(["numeric", "lines", "crossover"], weights=self.rates)[0]
            changed = {
                "numeric": lambda: _perturb_number(lines, rng),
                "lines": lambda: _edit_lines(lines, rng),
                "crossover": lambda: _crossover(lines, donor_lines, rng),
            }[operator]()
            if changed is not None and changed != lines:
                blocks = blocks[:index] + ["\n".join(changed) + "\n"] + blocks[index + 1 :]
                return Proposal(Rewrite(join_blocks(fixed, blocks)), NAME)
        return Proposal(None, NAME, failure="no mutation operator could change the EVOLVE-BLOCK")

    async def close(self) -> None:
        return None

    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None:
        return None

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        return None


def _has_blocks(code: str) -> bool:
    try:
        split_blocks(code)
        return True
    except EditRejected:
        return False


def _perturb_number(lines: list[str], rng: random.Random) -> list[str] | None:
    spots = [(i, m) for i, line in enumerate(lines) if not line.lstrip().startswith(_COMMENTS)
             for m in _NUMBER.finditer(line[:_comment_start(line)])]
    if not spots:
        return None
    i, match = rng.choice(spots)
    text = match.group(0)
    value = float(text)
    if "." in text or "e" in text.lower():
        scale = abs(value) if value else 0.1
        new = value + rng.gauss(0, 0.1 if rng.random() < 0.8 else 0.5) * scale
        replacement = f"{new:.6g}"
        if "." not in replacement and "e" not in replacement:
            replacement += ".0"
    else:
        step = rng.choice([-2, -1, 1, 2]) if value < 20 else round(rng.gauss(0, max(1.0, value * 0.1)))
        replacement = str(max(0, int(value) + step))
    line = lines[i]
    return lines[:i] + [line[: match.start()] + replacement + line[match.end() :]] + lines[i + 1 :]


def _edit_lines(lines: list[str], rng: random.Random) -> list[str] | None:
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("def ", "class "))]
    if not body:
        return None
    i = rng.choice(body)
    action = rng.choice(["delete", "duplicate", "swap"])
    if action == "delete":
        return lines[:i] + lines[i + 1 :]
    if action == "duplicate":
        return lines[: i + 1] + [lines[i]] + lines[i + 1 :]
    same_indent = [j for j in body if j != i and _indent(lines[j]) == _indent(lines[i])]
    if not same_indent:
        return None
    j = rng.choice(same_indent)
    swapped = list(lines)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    return swapped


def _crossover(lines: list[str], donors: list[list[str]], rng: random.Random) -> list[str] | None:
    donors = [d for d in donors if d and d != lines]
    if not donors or not lines:
        return None
    donor = rng.choice(donors)
    start = rng.randrange(len(lines))
    length = rng.randint(1, max(1, min(4, len(lines) - start)))
    other = rng.randrange(len(donor))
    return lines[:start] + donor[other : other + length] + lines[start + length :]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
