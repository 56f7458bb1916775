"""Model choice: fixed weights, or a UCB bandit rewarded by verified improvement, surviving resume."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from evolve.proposers.models import UCBChooser, WeightedChooser, make_chooser


def test_weights_set_the_share_of_each_model() -> None:
    chooser = WeightedChooser({"big": 1.0, "small": 3.0, "off": 0.0})
    rng = random.Random(0)
    counts = Counter(chooser.choose(rng) for _ in range(4000))
    assert counts["off"] == 0
    assert 0.7 < counts["small"] / 4000 < 0.8


def test_ucb_moves_to_the_model_whose_children_improve() -> None:
    chooser = UCBChooser(["good", "bad"], exploration=0.5)
    rng = random.Random(1)
    for _ in range(300):
        model = chooser.choose(rng)
        improvement = 0.1 if (model == "good" and rng.random() < 0.6) or rng.random() < 0.1 else None
        chooser.reward(model, improvement)
    state = chooser.state()
    assert state["good"]["pulls"] > 3 * state["bad"]["pulls"]
    assert state["bad"]["pulls"] >= 5  # it was still explored


def test_every_model_is_tried_before_any_is_repeated() -> None:
    chooser = UCBChooser(["a", "b", "c"])
    rng = random.Random(0)
    assert sorted(chooser.choose(rng) for _ in range(3)) == ["a", "b", "c"]


def test_state_survives_a_json_round_trip_and_resume() -> None:
    first = make_chooser("ucb", {"a": 1.0, "b": 1.0})
    rng = random.Random(2)
    for _ in range(20):
        model = first.choose(rng)
        first.reward(model, 1.0 if model == "a" else -0.5)
    saved = json.loads(json.dumps(first.state()))
    resumed = make_chooser("ucb", {"a": 1.0, "b": 1.0, "new": 1.0})
    resumed.restore(saved)
    assert resumed.state()["a"] == first.state()["a"] and resumed.state()["new"]["pulls"] == 0
    assert resumed.choose(random.Random(0)) == "new"  # untried models come first, then the record counts


def test_no_improvement_earns_no_reward() -> None:
    chooser = make_chooser("weights", {"a": 1.0})
    for improvement in (None, 0.0, -1.0):
        chooser.reward("a", improvement)
    chooser.reward("a", 0.01)
    assert chooser.state()["a"]["reward"] == 1.0


@pytest.mark.parametrize(("selection", "weights", "message"), [
    ("greedy", {"a": 1.0}, "llm.selection 'greedy'"),
    ("weights", {"a": 0.0}, "weights must be"),
    ("weights", {}, "at least one model"),
])
def test_bad_choices_are_refused_clearly(selection: str, weights: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_chooser(selection, weights)
