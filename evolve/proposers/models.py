"""Which model writes the next proposal: fixed weights, or a UCB bandit.

The bandit counts a pull when a model is chosen and a reward when the engine
reports the outcome: 1 if the child's verified score beat its parent's, else 0
(failed calls, garbled replies and rejected edits never earn one). Binary
rewards keep UCB's confidence bound meaningful whatever the score's scale.
Both choosers keep their counts in `state()` so a resumed run continues them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Arm:
    pulls: int = 0
    reward: float = 0.0

    @property
    def mean(self) -> float:
        return self.reward / self.pulls if self.pulls else 0.0


class ModelChooser(Protocol):
    def choose(self, rng: random.Random) -> str: ...

    def reward(self, model: str, improvement: float | None) -> None: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...


class _Counting:
    """Pull and reward counts per model, shared by both choosers."""

    def __init__(self, names: list[str]) -> None:
        if not names:
            raise ValueError("llm.models must name at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"llm.models names a model twice: {names}")
        self.arms = {name: Arm() for name in names}

    def reward(self, model: str, improvement: float | None) -> None:
        arm = self.arms.get(model)
        if arm is not None and improvement is not None and improvement > 0:
            arm.reward += 1.0

    def state(self) -> dict:
        return {name: {"pulls": arm.pulls, "reward": arm.reward} for name, arm in self.arms.items()}

    def restore(self, state: dict) -> None:
        for name, saved in state.items():
            if name in self.arms:  # a model dropped from the config is forgotten
                self.arms[name] = Arm(int(saved["pulls"]), float(saved["reward"]))


class WeightedChooser(_Counting):
    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__(list(weights))
        if min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ValueError("llm.models weights must be >= 0 and not all 0")
        self.weights = weights

    def choose(self, rng: random.Random) -> str:
        name = rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        self.arms[name].pulls += 1
        return name


class UCBChooser(_Counting):
    """UCB1: mean reward plus exploration * sqrt(2 ln N / n); untried models first."""

    def __init__(self, names: list[str], exploration: float = 1.0) -> None:
        super().__init__(names)
        if exploration < 0:
            raise ValueError("llm.ucb_exploration must not be negative")
        self.exploration = exploration

    def choose(self, rng: random.Random) -> str:
        total = sum(arm.pulls for arm in self.arms.values())

        def bound(arm: Arm) -> float:
            if arm.pulls == 0:
                return math.inf
            return arm.mean + self.exploration * math.sqrt(2 * math.log(total) / arm.pulls)

        scores = {name: bound(arm) for name, arm in self.arms.items()}
        top = max(scores.values())
        name = rng.choice([n for n, s in scores.items() if s == top])  # ties: at random
        self.arms[name].pulls += 1
        return name


def make_chooser(selection: str, weights: dict[str, float], exploration: float = 1.0) -> ModelChooser:
    if selection == "weights":
        return WeightedChooser(weights)
    if selection == "ucb":
        return UCBChooser(list(weights), exploration)
    raise ValueError(f"llm.selection '{selection}' is not known; use 'weights' or 'ucb'")
