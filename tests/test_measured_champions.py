"""Noise-aware champions: a measured score must win a paired, interleaved re-measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evolve
from evolve.champions import decide, remeasure
from evolve.config import compose_config
from evolve.evaluation import Evaluator
from evolve.problem import load_problem
from evolve.sandbox.base import SandboxLimits
from evolve.sandbox.process import ProcessSandbox
from evolve.status import run_status
from tests.conftest import query
from tests.fake_llm import FakeLLM, Reply

TIMED = Path(__file__).parent / "fixtures" / "timed"
SEED = (TIMED / "seed.py").read_text()


def test_identical_measurements_never_crown() -> None:
    assert not decide([-1.0] * 5, [-1.0] * 5, 0.95, 0.0).crowned


def test_a_consistent_gain_crowns_and_a_noisy_one_of_the_same_mean_does_not() -> None:
    champion = [-1.0, -1.02, -0.98, -1.0, -1.01]
    steady = decide([-0.9, -0.92, -0.88, -0.9, -0.91], champion, 0.95, 0.02)
    assert steady.crowned and steady.lower_bound > 0.02
    noisy = decide([-0.6, -1.3, -0.7, -1.1, -0.8], champion, 0.95, 0.02)  # about the same mean gain
    assert not noisy.crowned and noisy.lower_bound < 0.02


def test_a_gain_below_the_required_minimum_does_not_crown_however_steady() -> None:
    decision = decide([-0.99] * 5, [-1.0] * 5, 0.95, 0.02)
    assert not decision.crowned and abs(decision.mean_gain - 0.01) < 1e-9


def test_a_contender_invalid_on_any_repeat_is_not_crowned() -> None:
    decision = decide([-0.5, None, -0.5], [-1.0, -1.0, -1.0], 0.95, 0.0)
    assert not decision.crowned and "invalid" in decision.reason


def twin(index: int) -> str:
    """The seed with a variable renamed: the same program, measured."""
    return SEED.replace("total", f"acc_{index}")


@pytest.mark.slow
def test_a_twin_of_the_champion_never_wins_on_noise_in_20_tries_and_a_real_gain_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVE_FAKE_KEY", "sk-test")
    better = SEED.replace("REPEAT = 2", "REPEAT = 1")  # half the work
    programs = [twin(i) for i in range(20)] + [better]
    with FakeLLM([Reply(f"```python\n{code}```\n") for code in programs]) as fake:
        result = evolve.run([f"problem={TIMED / 'problem.yaml'}", f"run.dir={tmp_path / 'run'}", "sandbox=process",
                             "sandbox.allow_root=true", "run.progress=false", "llm=openai", f"llm.base_url={fake.url}",
                             "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.diff_probability=0.0", "search.islands=1",
                             "search.proposers=1", "search.evaluators=1", f"budget.evaluations={len(programs)}",
                             "verification.measured_repeats=5"])
    codes = dict(query(result.run_dir, "SELECT id, code FROM programs"))
    twins = {pid for pid, code in codes.items() if "acc_" in code}
    assert len(twins) == 20
    duels = [json.loads(d) for (d,) in query(result.run_dir, "SELECT data FROM events WHERE kind='duel'")]
    assert not any(d["crowned"] for d in duels if d["contender_id"] in twins)
    champions = [json.loads(d)["program_id"] for (d,) in query(result.run_dir,
                                                               "SELECT data FROM events WHERE kind='champion'")]
    assert champions == [1, result.best_program_id] and "REPEAT = 1" in codes[result.best_program_id]
    # every repeat is stored, both sides, and `evolve status` shows the duels
    rows = query(result.run_dir, "SELECT COUNT(*), COUNT(DISTINCT contender_id) FROM remeasurements")[0]
    assert rows == (len(duels) * 5 * 2, len(duels))
    assert run_status(result.run_dir)["remeasurements"]["duels"] == len(duels)


@pytest.mark.slow
async def test_real_re_measurements_of_a_twin_never_crown_it_in_20_tries() -> None:
    """The duel itself, on real CPU-time measurements of the seed and its twin, at the default settings."""
    cfg = compose_config([f"problem={TIMED / 'problem.yaml'}"])
    problem = load_problem(cfg)
    evaluator = Evaluator(problem, ProcessSandbox(), SandboxLimits(case_timeout=problem.case_timeout), "test")
    verification = cfg.verification

    async def evaluate(code: str):
        return await evaluator.evaluate(code, "search")

    decisions = []
    for attempt in range(20):
        pairs = await remeasure(evaluate, twin(attempt), SEED, verification.measured_repeats)
        assert all(c.valid and i.valid and c.score > 0 for c, i in pairs)  # real, positive CPU times
        decisions.append(decide([-c.score for c, _ in pairs], [-i.score for _, i in pairs],
                                verification.measured_confidence, verification.measured_min_gain))
    assert not any(d.crowned for d in decisions), [d.reason for d in decisions if d.crowned]


@pytest.mark.slow
def test_a_database_of_the_previous_version_opens_and_gains_the_remeasurements_table(tmp_path: Path) -> None:
    import sqlite3

    result = evolve.run([f"problem={TIMED / 'problem.yaml'}", f"run.dir={tmp_path / 'run'}", "sandbox=process",
                         "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=1", "search.islands=1"])
    with sqlite3.connect(result.run_dir / "evolve.db") as connection:
        connection.execute("DROP TABLE remeasurements")
        connection.execute("UPDATE evolve_meta SET value='3' WHERE key='schema_version'")
    assert run_status(result.run_dir)["remeasurements"] is None
    assert query(result.run_dir, "SELECT COUNT(*) FROM remeasurements") == [(0,)]
    assert evolve.resume(result.run_dir, ["budget.evaluations=2"]).evaluations == 2
