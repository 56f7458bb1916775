"""Whole searches driven through the real openai client against a scripted endpoint on 127.0.0.1."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import evolve
from evolve.status import run_status
from tests.conftest import query
from tests.fake_llm import (Drop, FakeLLM, Garbage, Slow, Status, author_script, flaky_script, tiny_problem,
                            tweak_author)

KEY = "sk-live-0b5e9f3a-must-not-be-stored"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVE_FAKE_KEY", KEY)


def _llm(url: str, *extra: str) -> list[str]:
    return ["llm=openai", f"llm.base_url={url}", "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.backoff_base=0.01",
            *extra]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_search_through_the_client_improves_and_every_call_is_accounted(quick: list[str]) -> None:
    run_dir = Path(quick[0].split("=", 1)[1])
    models = "llm.models=[{name:fake-large,price_in:3.0,price_out:15.0},{name:fake-small,price_in:0.1,price_out:0.4}]"
    with FakeLLM(author_script(tweak_author(seed=3))) as fake:
        result = evolve.run([*quick, "budget.evaluations=14", *_llm(fake.url, models, "llm.selection=ucb")])
        assert result.best_score > result.seed_score
        assert query(run_dir, "SELECT COUNT(*) FROM llm_calls")[0][0] == fake.count()
        state = query(run_dir, "SELECT proposer_state FROM runs")[0][0]
        pulls_before = sum(query(run_dir, "SELECT COUNT(*) FROM proposals")[0])

        resumed = evolve.resume(run_dir, ["budget.evaluations=20"])
        assert resumed.evaluations == 20
        assert query(run_dir, "SELECT COUNT(*) FROM llm_calls")[0][0] == fake.count()

    # the bandit's counts went on from where they were, not from zero
    before, after = json.loads(state)["models"], json.loads(query(run_dir, "SELECT proposer_state FROM runs")[0][0])["models"]
    assert sum(arm["pulls"] for arm in before.values()) == pulls_before
    assert sum(arm["pulls"] for arm in after.values()) == sum(query(run_dir, "SELECT COUNT(*) FROM proposals")[0])
    assert all(after[m]["pulls"] >= before[m]["pulls"] for m in before)

    # tokens and cost per model, in the database and in `evolve status`
    rows = query(run_dir, "SELECT model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost) "
                          "FROM llm_calls GROUP BY model ORDER BY model")
    seen = Counter(s.body["model"] for s in fake.seen)
    assert {model: calls for model, calls, *_ in rows} == dict(seen)
    prices = {"fake-large": (3.0, 15.0), "fake-small": (0.1, 0.4)}
    for model, _calls, prompt, completion, cost in rows:
        assert prompt > 0 and completion > 0
        assert cost == pytest.approx((prompt * prices[model][0] + completion * prices[model][1]) / 1e6)
    status = run_status(run_dir)
    assert {m["model"]: (m["calls"], m["cost"]) for m in status["llm"]} == {
        model: (calls, pytest.approx(cost)) for model, calls, _p, _c, cost in rows}
    assert status["budget"]["llm_cost"]["spent"] == pytest.approx(sum(r[4] for r in rows))

    # what the model saw: statement, parent, scores; never held-out cases or the verifier
    problem_root = Path(evolve.__file__).resolve().parent.parent
    verifier = [line.strip() for line in (problem_root / "problems/circle_packing/verifier.py").read_text().splitlines()
                if len(line.strip()) > 40]
    prompts = [s.body["messages"][1]["content"] for s in fake.seen]
    assert all("Circle packing" in p and "EVOLVE-BLOCK-START" in p for p in prompts)
    assert not any("n32" in p or any(line in p for line in verifier) for p in prompts)

    # the key was sent to the endpoint and written nowhere
    assert all(s.authorization == f"Bearer {KEY}" for s in fake.seen)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def _category(action) -> str:
    if isinstance(action, Status):
        return f"HTTP {action.code}"
    if isinstance(action, Drop):
        return "connection error"
    if isinstance(action, Slow):
        return "timeout"
    if isinstance(action, Garbage):
        return "bad response"
    if action.finish_reason == "length":
        return "unusable reply: reply truncated"
    if not action.text:
        return "unusable reply: empty reply"
    if "<<<<<<<" not in action.text and "```" not in action.text:
        return "unusable reply: garbled"
    return ""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_against_an_endpoint_failing_30_percent_finishes_and_records_every_failure(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=200",
                 *tiny_problem(tmp_path / "tiny"), "search.proposers=4", "search.evaluators=2",
                 *_llm("URL", "llm.models=[{name:flaky,price_in:1.0,price_out:1.0}]", "llm.timeout=0.4",
                       "llm.max_retries=3")]
    with FakeLLM(flaky_script(tweak_author(seed=5), failure_rate=0.3, seed=11, slow=0.8)) as fake:
        overrides = [o.replace("URL", fake.url) for o in overrides]
        result = evolve.run(overrides)
    assert result.status == "finished" and result.evaluations == 200
    assert not any("secret-holdout-case" in str(s.body) or "case.private" in str(s.body) for s in fake.seen)

    expected = Counter(_category(s.action) for s in fake.seen)
    failures = sum(n for kind, n in expected.items() if kind)
    assert 0.2 < failures / fake.count() < 0.4
    assert query(run_dir, "SELECT COUNT(*) FROM llm_calls")[0][0] == fake.count()
    for kind, count in expected.items():
        if kind:
            assert query(run_dir, f"SELECT COUNT(*) FROM llm_calls WHERE error LIKE '{kind}%'")[0][0] == count, kind
    assert query(run_dir, "SELECT COUNT(*) FROM llm_calls WHERE error = ''")[0][0] == expected[""]
    assert query(run_dir, "SELECT COUNT(*) FROM llm_calls WHERE proposal_id IS NULL")[0][0] == 0

    # every failed proposal says why, and the reason is the error of its last call
    failed = query(run_dir, "SELECT p.reason, (SELECT c.error FROM llm_calls c WHERE c.proposal_id = p.id "
                            "ORDER BY c.id DESC LIMIT 1) FROM proposals p WHERE p.outcome = 'failed'")
    assert failed
    for reason, last_error in failed:
        assert reason and last_error and (reason in last_error or last_error in reason)
    unusable = sum(n for kind, n in expected.items() if kind.startswith(("unusable", "bad response")))
    assert len(failed) >= unusable


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_cost_budget_stops_new_proposals(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with FakeLLM(author_script(tweak_author(seed=2))) as fake:
        result = evolve.run([f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true", "run.progress=false", "budget.evaluations=100",
                             "budget.llm_cost=0.05", *tiny_problem(tmp_path / "tiny"), "search.proposers=2",
                             *_llm(fake.url, "llm.models=[{name:pricey,price_in:20.0,price_out:60.0}]")])
    costs = [row[0] for row in query(run_dir, "SELECT cost FROM llm_calls ORDER BY id")]
    assert result.reason == "LLM cost budget spent" and result.evaluations < 100
    assert len(costs) == fake.count() and sum(costs) >= 0.05
    # Cost is counted the moment a proposal returns, so past the limit there can only be the
    # requests already in flight then: one per proposer task at most.
    assert sum(costs) - sum(sorted(costs)[-2:]) < 0.05
