"""The openai proposer against a real HTTP server on 127.0.0.1, through the real client."""

from __future__ import annotations

import asyncio

import pytest

from evolve.config import compose_config
from evolve.edits import Rewrite, SearchReplace, apply_edit
from evolve.problem import load_problem
from evolve.proposers.base import ProgramView, ProposalRequest
from evolve.proposers.factory import make_proposer
from evolve.proposers.llm import LLMConfigError, OpenAIProposer
from tests.fake_llm import Drop, FakeLLM, Garbage, Reply, Slow, Status, author_script, tweak_author

KEY = "sk-test-7c1f0d5e-never-store-me"


@pytest.fixture()
def problem():
    return load_problem(compose_config([]))


def _config(url: str, *extra: str):
    return compose_config([
        "llm=openai", f"llm.base_url={url}", "llm.api_key_env=EVOLVE_TEST_KEY",
        "llm.models=[{name:fake-a,price_in:2.0,price_out:8.0}]", "llm.timeout=0.5",
        "llm.backoff_base=0.01", "llm.max_retries=4", *extra,
    ])


def _request(problem, seed: int = 0) -> ProposalRequest:
    parent = ProgramView(1, problem.seed_code, 2.08, "n26: sum of radii 2.08")
    return ProposalRequest(parent, (), problem.statement, problem.maximize, island=0, seed=seed)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVE_TEST_KEY", KEY)


async def test_a_diff_reply_becomes_an_edit_and_the_call_is_accounted(problem) -> None:
    with FakeLLM(author_script(tweak_author())) as fake:
        proposer = make_proposer(_config(fake.url, "llm.diff_probability=1.0"))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert isinstance(proposal.edit, SearchReplace) and proposal.failure == "" and proposal.proposer == "fake-a"
    assert apply_edit(problem.seed_code, proposal.edit) != problem.seed_code
    (call,) = proposal.calls
    assert fake.count() == 1 and call.error == "" and call.model == "fake-a"
    assert call.prompt_tokens > 100 and call.completion_tokens > 0 and call.latency > 0
    assert call.cost == pytest.approx((call.prompt_tokens * 2.0 + call.completion_tokens * 8.0) / 1e6)
    seen = fake.seen[0]
    assert seen.authorization == f"Bearer {KEY}" and seen.body["model"] == "fake-a"
    user = seen.body["messages"][1]["content"]
    assert problem.statement.strip() in user and "n26: sum of radii 2.08" in user and "2.08" in user


async def test_a_rewrite_is_asked_for_and_parsed(problem) -> None:
    with FakeLLM(author_script(tweak_author())) as fake:
        proposer = OpenAIProposer(_config(fake.url, "llm.diff_probability=0.0"))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert isinstance(proposal.edit, Rewrite)
    assert "complete new program" in fake.seen[0].body["messages"][1]["content"]
    apply_edit(problem.seed_code, proposal.edit)


@pytest.mark.slow
async def test_transient_failures_are_retried_each_attempt_recorded(problem) -> None:
    author = tweak_author()
    actions = [Status(429, retry_after="0.4"), Status(502), Drop(), Slow(1.5)]
    with FakeLLM(lambda i, body: actions[i] if i < len(actions) else Reply(author(i, body))) as fake:
        proposer = OpenAIProposer(_config(fake.url))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert proposal.edit is not None and proposal.failure == ""
    errors = [call.error for call in proposal.calls]
    assert len(errors) == fake.count() == 5
    assert errors[0].startswith("HTTP 429") and errors[1].startswith("HTTP 502")
    assert errors[2].startswith("connection error") and errors[3].startswith("timeout") and errors[4] == ""
    assert fake.seen[1].at - fake.seen[0].at >= 0.4  # retry-after honoured
    assert all(call.cost == 0 for call in proposal.calls[:4]) and proposal.calls[4].cost > 0


@pytest.mark.slow
async def test_the_proposer_gives_up_after_max_retries(problem) -> None:
    with FakeLLM([Status(500)]) as fake:
        proposer = OpenAIProposer(_config(fake.url, "llm.max_retries=2"))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert proposal.edit is None and fake.count() == 3 == len(proposal.calls)
    assert "HTTP 500" in proposal.failure and "gave up after 3 attempts" in proposal.failure


@pytest.mark.parametrize(("action", "reason"), [
    (Status(401), "HTTP 401"),
    (Status(400, body='{"error": {"message": "context length exceeded"}}'), "context length exceeded"),
    (Garbage(), "bad response"),
    (Reply("I think the margin could be smaller."), "garbled"),
    (Reply("<<<<<<< SEARCH\n    margin = 0.1\n", finish_reason="length"), "truncated"),
    (Reply(""), "empty reply"),
])
@pytest.mark.slow
async def test_unusable_answers_fail_the_proposal_with_the_reason(problem, action, reason) -> None:
    with FakeLLM([action]) as fake:
        proposer = OpenAIProposer(_config(fake.url))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert proposal.edit is None and reason in proposal.failure
    assert len(proposal.calls) == fake.count() == 1 and reason in proposal.calls[0].error


@pytest.mark.slow
async def test_requests_in_flight_are_bounded_per_endpoint(problem) -> None:
    author = tweak_author()
    with FakeLLM(lambda i, body: Reply(author(i, body), delay=0.2)) as fake:
        proposer = OpenAIProposer(_config(fake.url, "llm.max_concurrency=2"))
        proposals = await asyncio.gather(*(proposer.propose(_request(problem, seed)) for seed in range(6)))
        await proposer.close()
    assert all(p.edit is not None for p in proposals)
    assert fake.count() == 6 and fake.max_in_flight == 2


@pytest.mark.slow
async def test_two_endpoints_each_get_their_own_bound_and_models_are_routed(problem) -> None:
    author = tweak_author()
    with FakeLLM(author_script(author)) as first, FakeLLM(author_script(author)) as second:
        cfg = _config(first.url, f"llm.models=[{{name:near}},{{name:far,base_url:'{second.url}'}}]")
        proposer = OpenAIProposer(cfg)
        proposals = await asyncio.gather(*(proposer.propose(_request(problem, seed)) for seed in range(12)))
        await proposer.close()
    assert {s.body["model"] for s in first.seen} == {"near"} and {s.body["model"] for s in second.seen} == {"far"}
    assert sum(p.proposer == "near" for p in proposals) == first.count()


async def test_the_key_comes_from_the_environment_and_stays_out_of_records(problem, monkeypatch) -> None:
    with FakeLLM([Status(401)]) as fake:
        cfg = _config(fake.url)
        proposer = OpenAIProposer(cfg)
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert KEY not in repr(proposal) and KEY not in repr(proposer.state()) and KEY not in str(cfg)
    monkeypatch.delenv("EVOLVE_TEST_KEY")
    with pytest.raises(LLMConfigError, match="EVOLVE_TEST_KEY"):
        OpenAIProposer(cfg)


@pytest.mark.slow
def test_a_bad_llm_section_is_refused_in_one_line() -> None:
    for override, message in [("llm.models=[]", "at least one model"), ("llm.timeout=0", "llm.timeout"),
                              ("llm.diff_probability=2", "diff_probability"), ("llm.base_url=localhost:8000", "http")]:
        with pytest.raises(LLMConfigError, match=message):
            OpenAIProposer(_config("http://127.0.0.1:9/v1", override))


@pytest.mark.slow
async def test_bandit_state_follows_outcomes_and_restores(problem) -> None:
    with FakeLLM(author_script(tweak_author())) as fake:
        cfg = _config(fake.url, "llm.models=[{name:a},{name:b}]", "llm.selection=ucb")
        proposer = OpenAIProposer(cfg)
        for seed in range(8):
            proposal = await proposer.propose(_request(problem, seed))
            proposer.report_outcome(proposal, 0.5 if proposal.proposer == "a" else None)
        await proposer.close()
        state = proposer.state()
        resumed = OpenAIProposer(cfg)
        resumed.restore(state)
        await resumed.close()
    assert state["models"]["a"]["reward"] > 0 and state["models"]["b"]["reward"] == 0
    assert resumed.state() == state


@pytest.mark.slow
async def test_a_long_retry_after_is_capped_by_backoff_max(problem) -> None:
    author = tweak_author()
    actions = [Status(503, retry_after="3600"), Status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")]
    with FakeLLM(lambda i, body: actions[i] if i < len(actions) else Reply(author(i, body))) as fake:
        proposer = OpenAIProposer(_config(fake.url, "llm.backoff_max=0.3"))
        proposal = await proposer.propose(_request(problem))
        await proposer.close()
    assert proposal.edit is not None and fake.count() == 3
    assert 0.3 <= fake.seen[1].at - fake.seen[0].at < 2.0  # waited the cap, not an hour
    assert fake.seen[2].at - fake.seen[1].at < 0.3  # a date in the past: no wait
