"""An endpoint that is down, hangs, or is misconfigured stops a run soon, with its URL and the
last error; every request the server saw is in the database, even those a stop cut short.

Real runs through the real openai client against the scripted server of tests/fake_llm.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import evolve
from evolve.config import compose_config
from evolve.engine import SearchStalled
from evolve.problem import load_problem
from evolve.proposers.base import ProgramView, ProposalRequest
from evolve.proposers.llm import OpenAIProposer
from tests.conftest import query
from tests.fake_llm import FakeLLM, NoChoices, Reply, Slow, Status, tiny_problem, tweak_author

pytestmark = pytest.mark.timeout(120)


def _run(tmp_path: Path, url: str, *extra: str, sleep: float = 0.0) -> list[str]:
    return [f"run.dir={tmp_path / 'run'}", "sandbox=process", "sandbox.allow_root=true", "run.progress=false",
            "budget.evaluations=50", *tiny_problem(tmp_path / "tiny", sleep=sleep), "llm=openai",
            f"llm.base_url={url}", "llm.api_key_env=", "llm.models=[{name:fake}]", "llm.backoff_base=0.05", *extra]


def _accounted(run_dir: Path, fake: FakeLLM) -> None:
    """Every request the server saw is a call row; the run's proposal counter is the rows written.

    A request the client gave up on before it reached the server (a timeout while connecting, on
    a loaded machine) is a row too, with its error: so rows may exceed what the server saw, by
    failed attempts only.
    """
    calls, failed = query(run_dir, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN COALESCE(error, '') != '' THEN 1 "
                                   "ELSE 0 END), 0) FROM llm_calls")[0]
    assert fake.count() <= calls <= fake.count() + failed
    assert query(run_dir, "SELECT proposals FROM runs") == query(run_dir, "SELECT COUNT(*) FROM proposals")


@pytest.mark.slow
def test_an_endpoint_failing_every_request_stops_the_run_within_the_bound(tmp_path: Path) -> None:
    with FakeLLM([Status(503)]) as fake:
        with pytest.raises(SearchStalled) as stopped:
            evolve.run(_run(tmp_path, fake.url, "llm.endpoint_down_after=0.5"))
    message = str(stopped.value)
    assert fake.url in message and "HTTP 503" in message and "failed every request" in message
    assert fake.count() < 50  # not 50 proposals x 5 attempts
    _accounted(tmp_path / "run", fake)
    assert query(tmp_path / "run", "SELECT status FROM runs") == [("failed",)]


@pytest.mark.slow
def test_an_endpoint_that_never_answers_stops_the_run(tmp_path: Path) -> None:
    with FakeLLM([Slow(3.0)]) as fake:
        with pytest.raises(SearchStalled) as stopped:
            evolve.run(_run(tmp_path, fake.url, "llm.timeout=0.2", "llm.endpoint_down_after=0.5"))
    assert fake.url in str(stopped.value) and "timeout" in str(stopped.value)
    assert fake.count() < 50
    _accounted(tmp_path / "run", fake)


@pytest.mark.slow
@pytest.mark.parametrize("code", [401, 403, 404])
def test_a_wrong_url_model_or_key_stops_the_run_at_the_first_answer(tmp_path: Path, code: int) -> None:
    with FakeLLM([Status(code)]) as fake:
        with pytest.raises(SearchStalled) as stopped:
            evolve.run(_run(tmp_path, fake.url, "search.proposers=1"))
    assert f"{fake.url} answered HTTP {code}" in str(stopped.value) and "'fake'" in str(stopped.value)
    assert fake.count() == 1  # neither retried nor asked again by the next proposal
    _accounted(tmp_path / "run", fake)


@pytest.mark.slow
def test_a_request_in_flight_when_the_run_stops_is_recorded(tmp_path: Path) -> None:
    """One proposer waits on a slow request while the other's 404 stops the run: both requests are rows."""
    with FakeLLM(lambda index, body: Slow(3.0) if index == 0 else Status(404)) as fake:
        with pytest.raises(SearchStalled):
            evolve.run(_run(tmp_path, fake.url, "search.proposers=2", "llm.timeout=10"))
    assert fake.count() == 2
    _accounted(tmp_path / "run", fake)
    rows = query(tmp_path / "run", "SELECT p.outcome, c.error FROM proposals p JOIN llm_calls c ON c.proposal_id=p.id "
                                   "ORDER BY p.outcome")
    assert [outcome for outcome, _ in rows] == ["cancelled", "failed"]
    assert rows[0][1].startswith("cancelled:")


def _propose(fake: FakeLLM, *extra: str):
    cfg = compose_config(["llm=openai", f"llm.base_url={fake.url}", "llm.api_key_env=", "llm.models=[{name:fake}]",
                          "llm.max_retries=0", "llm.diff_probability=0", *extra])
    problem = load_problem(cfg)
    request = ProposalRequest(ProgramView(1, problem.seed_code, 1.0), (), problem.statement, True, 0, seed=1)

    async def go():
        proposer = OpenAIProposer(cfg)
        try:
            return await proposer.propose(request)
        finally:
            await proposer.close()

    return asyncio.run(go())


def test_the_usage_of_a_response_without_choices_is_kept() -> None:
    with FakeLLM([NoChoices(prompt_tokens=321, completion_tokens=45)]) as fake:
        proposal = _propose(fake)
    assert proposal.edit is None and "no choices" in proposal.failure
    (call,) = proposal.calls
    assert (call.prompt_tokens, call.completion_tokens) == (321, 45) and "no choices" in call.error


def test_a_completion_far_over_max_tokens_is_flagged() -> None:
    write = tweak_author()
    with FakeLLM(lambda index, body: Reply(write(index, body), completion_tokens=5000)) as fake:
        proposal = _propose(fake, "llm.max_tokens=100")
    assert proposal.edit is not None  # the reply is used ...
    (call,) = proposal.calls
    assert call.completion_tokens == 5000 and call.error.startswith("over max_tokens")  # ... and flagged


@pytest.mark.slow
def test_candidates_waiting_for_evaluation_when_the_run_stops_are_recorded(tmp_path: Path) -> None:
    """Replies come faster than one evaluator scores them; a 404 then stops the run with candidates queued."""
    write = tweak_author(seed=4)
    replies = 8
    script = (lambda index, body: Reply(write(index, body)) if index < replies else Status(404))
    with FakeLLM(script) as fake:
        with pytest.raises(SearchStalled):
            evolve.run(_run(tmp_path, fake.url, "search.proposers=2", "search.evaluators=1", "search.queue_size=2",
                            sleep=0.3))
    run_dir = tmp_path / "run"
    _accounted(run_dir, fake)
    cancelled = query(run_dir, "SELECT COUNT(*) FROM proposals p JOIN llm_calls c ON c.proposal_id=p.id "
                               "WHERE p.outcome='cancelled' AND c.error=''")[0][0]
    assert cancelled >= 1  # answered, never evaluated: the calls are there all the same
