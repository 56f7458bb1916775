"""The held-out alarm: the decision alone, then planted shortcuts in whole runs.

The runs use a scripted LLM endpoint on 127.0.0.1 (tests/fake_llm.py) whose replies are
programs that answer the search cases of tests/fixtures/memo from memory, one step or
several; an honest fix is the control that must stay silent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import evolve
from evolve.alarms import STALLED, WORSE, HeldoutAlarm, Standing, judge, relative_gain
from evolve.status import render, run_status
from tests.conftest import query
from tests.fake_llm import FakeLLM, Reply

MEMO = Path(__file__).parent / "fixtures" / "memo"
SEARCH = json.loads((MEMO / "cases.json").read_text())["search"]


# ------------------------------------------------------------------ the decision, without a database

def test_a_one_step_jump_on_search_with_held_out_unchanged_fires_against_the_seed() -> None:
    seed, jump = Standing(1, -30.0, -20.0), Standing(2, 0.0, -20.0)
    (finding,) = judge(jump, {"the seed": seed}, margin=0.02, ratio=4.0)
    assert finding["rule"] == STALLED and finding["baseline_program"] == 1
    assert finding["search_gain"] == 1.0 and finding["heldout_gain"] == 0.0


def test_a_held_out_loss_beyond_the_margin_fires_and_one_within_it_does_not() -> None:
    seed = Standing(1, -10.0, -10.0)
    assert judge(Standing(2, -9.9, -10.5), {"s": seed}, 0.02, 4.0)[0]["rule"] == WORSE
    assert judge(Standing(2, -9.9, -10.1), {"s": seed}, 0.02, 4.0) == []


def test_a_small_held_out_gain_does_not_silence_a_far_larger_search_gain() -> None:
    seed = Standing(1, -10.0, -10.0)
    # search +50%, held-out +5%: more than 4 times as much
    assert judge(Standing(2, -5.0, -9.5), {"s": seed}, 0.02, 4.0)[0]["rule"] == STALLED
    # a real improvement that carries over (search +50%, held-out +40%) is no alarm
    assert judge(Standing(2, -5.0, -6.0), {"s": seed}, 0.02, 4.0) == []
    # with margin 0 and ratio 1, only a held-out gain at least as large as the search gain is silent
    assert judge(Standing(2, -5.0, -9.5), {"s": seed}, 0.0, 1.0)[0]["rule"] == STALLED


def test_a_gradual_shortcut_fires_once_its_sum_is_large_though_no_single_step_is() -> None:
    alarm = HeldoutAlarm(margin=0.02, ratio=4.0, seed_program_id=1)
    assert alarm.observe(1, -100.0, -50.0) == []
    fired = []
    for step, search in enumerate((-97.0, -94.0, -91.0, -88.0), start=2):  # 3% per step, held-out unchanged
        findings = alarm.observe(step, search, -50.0)
        assert all(f["baseline"] == "the seed" for f in findings)  # each step alone is small
        fired += [step] if findings else []
    assert fired and fired[0] == 4  # the cumulative gain over the seed passes 4 x 2% at the third step


def test_a_failed_held_out_is_not_a_score_and_not_a_baseline() -> None:
    alarm = HeldoutAlarm(margin=0.02, ratio=4.0, seed_program_id=1)
    alarm.observe(1, -10.0, -10.0)
    assert alarm.observe(2, -9.0, None) == []  # not judged
    (finding,) = alarm.observe(3, -8.0, -12.0)  # compared with the seed only: 2 is no baseline
    assert finding["baseline_program"] == 1 and finding["rule"] == WORSE


def test_an_honest_sequence_of_champions_never_fires() -> None:
    alarm = HeldoutAlarm(margin=0.02, ratio=4.0, seed_program_id=1)
    for program, (search, heldout) in enumerate([(-10, -12), (-9, -10.8), (-8, -9.7), (-5, -6.2)], start=1):
        assert alarm.observe(program, search, heldout) == []


# ------------------------------------------------------------------ whole runs

def memorizing(count: int, otherwise: str = "sum(values[:-1])") -> str:
    """A program that answers the first `count` search cases from memory."""
    known = {tuple(c["inputs"]["values"]): sum(c["inputs"]["values"]) for c in SEARCH[:count]}
    return ("# EVOLVE-BLOCK-START\n"
            f"KNOWN = {known!r}\n\n\n"
            "def total(values):\n"
            "    answer = KNOWN.get(tuple(values))\n"
            f"    return answer if answer is not None else {otherwise}\n"
            "# EVOLVE-BLOCK-END\n")


HONEST = "# EVOLVE-BLOCK-START\ndef total(values):\n    return sum(values)\n# EVOLVE-BLOCK-END\n"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVE_FAKE_KEY", "sk-test")


def run_with(programs: list[str], run_dir: Path, problem: Path = MEMO / "problem.yaml") -> evolve.RunResult:
    """A run whose proposer replies with these programs, in order, one champion candidate at a time."""
    replies = [Reply(f"Here it is.\n```python\n{code}```\n") for code in programs]
    with FakeLLM(replies) as fake:
        return evolve.run([f"problem={problem}", f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true",
                           "run.progress=false",
                           "llm=openai", f"llm.base_url={fake.url}", "llm.api_key_env=EVOLVE_FAKE_KEY",
                           "llm.diff_probability=0.0", "search.islands=1", "search.proposers=1",
                           "search.evaluators=1", f"budget.evaluations={len(programs)}"])


def events(run_dir: Path, kind: str) -> list[dict]:
    return [json.loads(d) for (d,) in query(run_dir, f"SELECT data FROM events WHERE kind='{kind}' ORDER BY id")]


@pytest.mark.slow
def test_a_one_step_shortcut_raises_the_alarm_in_a_run_with_a_single_champion(tmp_path: Path) -> None:
    result = run_with([memorizing(len(SEARCH))], tmp_path / "run")
    assert result.best_score == 0.0 and result.best_program_id != 1  # perfect on search, in one step
    assert len(events(result.run_dir, "champion")) == 2  # the seed and this one
    (alarm,) = events(result.run_dir, "heldout_divergence")
    assert alarm["program_id"] == result.best_program_id
    assert alarm["comparisons"][0]["baseline"] == "the seed" and alarm["comparisons"][0]["rule"] == STALLED
    assert "held-out alarm" in result.notices[0] and "the seed" in result.notices[0]
    status = run_status(result.run_dir)
    assert [a["kind"] for a in status["alarms"]] == ["heldout_divergence"]
    assert any("evolve best" in str(r) for r in render(status))  # what was compared, and what to do


@pytest.mark.slow
def test_a_gradual_shortcut_raises_the_alarm(tmp_path: Path) -> None:
    steps = [memorizing(n) for n in range(1, len(SEARCH) + 1)]
    result = run_with(steps, tmp_path / "run")
    champions = events(result.run_dir, "champion")
    assert len(champions) == len(steps) + 1  # every step improved the search score
    # The first step (one case of 8 remembered) gains 1.6% on search, within 4 x the 2% margin; the
    # alarm fires from the first champion whose gain over the seed passes it, and on every later one.
    seed = champions[0]["search"]
    due = [c["program_id"] for c in champions[1:] if relative_gain(c["search"], seed) > 4.0 * 0.02]
    assert 2 <= len(due) < len(steps)
    assert [a["program_id"] for a in events(result.run_dir, "heldout_divergence")] == due


@pytest.mark.slow
def test_an_honest_improvement_raises_no_alarm(tmp_path: Path) -> None:
    result = run_with([HONEST], tmp_path / "run")
    assert result.best_score == 0.0 and result.notices == ()
    assert events(result.run_dir, "heldout_divergence") == []


@pytest.mark.slow
def test_a_failed_held_out_evaluation_is_its_own_event(tmp_path: Path) -> None:
    result = run_with([memorizing(len(SEARCH), otherwise="values.undefined")], tmp_path / "run")
    (failed,) = events(result.run_dir, "heldout_failed")
    assert failed["program_id"] == result.best_program_id and "invalid on the held-out split" in failed["message"]
    assert events(result.run_dir, "heldout_divergence") == []
    assert [a["kind"] for a in run_status(result.run_dir)["alarms"]] == ["heldout_failed"]


@pytest.mark.slow
def test_a_problem_without_held_out_cases_raises_no_held_out_alarm_and_says_so_once(tmp_path: Path) -> None:
    problem = tmp_path / "memo"
    shutil.copytree(MEMO, problem)
    (problem / "cases.json").write_text(json.dumps({"search": SEARCH}))
    result = run_with([memorizing(n) for n in (2, 5, 8)], tmp_path / "run", problem / "problem.yaml")
    assert len(events(result.run_dir, "champion")) == 4
    assert events(result.run_dir, "heldout_divergence") == []
    (note,) = events(result.run_dir, "heldout_unavailable")
    assert "no held-out split" in note["message"]
    assert run_status(result.run_dir)["notes"] == [note["message"]]


@pytest.mark.slow
def test_the_baselines_survive_a_resume(tmp_path: Path) -> None:
    """Session 1 crowns a small step (no alarm); after a resume, the jump is compared with the seed and it."""
    replies = [Reply(f"```python\n{code}```\n") for code in (memorizing(1), memorizing(len(SEARCH)))]
    run_dir = tmp_path / "run"
    with FakeLLM(replies) as fake:
        first = evolve.run([f"problem={MEMO / 'problem.yaml'}", f"run.dir={run_dir}", "sandbox=process",
                            "sandbox.allow_root=true", "run.progress=false", "llm=openai", f"llm.base_url={fake.url}",
                            "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.diff_probability=0.0", "search.islands=1",
                            "search.proposers=1", "search.evaluators=1", "budget.evaluations=1"])
        assert first.notices == () and first.best_program_id == 2
        resumed = evolve.resume(run_dir, ["budget.evaluations=2"])
    (alarm,) = events(run_dir, "heldout_divergence")
    assert alarm["program_id"] == resumed.best_program_id == 3
    assert [(c["baseline"], c["baseline_program"]) for c in alarm["comparisons"]] == [
        ("the seed", 1), ("the previous champion", 2)]


@pytest.mark.slow
def test_the_command_line_summary_and_status_say_what_the_alarm_compared_and_what_to_do(tmp_path: Path) -> None:
    import subprocess
    import sys

    with FakeLLM([Reply(f"```python\n{memorizing(len(SEARCH))}```\n")]) as fake:
        run = subprocess.run(
            [sys.executable, "-m", "evolve", "run", f"problem={MEMO / 'problem.yaml'}", "run.dir=r", "sandbox=process",
             "sandbox.allow_root=true", "run.progress=false", "llm=openai", f"llm.base_url={fake.url}",
             "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.diff_probability=0.0", "search.islands=1",
             "search.proposers=1", "search.evaluators=1", "budget.evaluations=1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    summary = " ".join(run.stdout.split())  # rich wraps long lines
    assert "alarm: held-out alarm at champion 2 (after 1 evaluations): vs the seed (program 1)" in summary
    assert "evolve best" in summary
    status = subprocess.run([sys.executable, "-m", "evolve", "status", "r"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert "heldout_divergence: held-out alarm at champion 2" in " ".join(status.stdout.split())
