"""The `openai` proposer: edits written by models behind any OpenAI-compatible endpoint.

One proposal = choose a model (weights or UCB), choose the edit format (diff
with probability `llm.diff_probability`, else a full rewrite), build the
prompt, ask the endpoint, parse the reply. Retries are done here, not by the
client (`max_retries=0`), so every HTTP attempt becomes its own CallRecord with
its tokens, latency, cost and error: the database can account for every
request the server saw.

Retried: 408/409/429 and 5xx replies, timeouts, dropped connections; the wait
honours `retry-after`/`retry-after-ms`, else backs off exponentially with
jitter, never longer than `llm.backoff_max`. Anything else (400, 422, a reply
that is not a chat completion) fails the proposal at once with the reason.
401/403/404 mean the key, the URL or the model name is wrong, so every later
request would fail alike: they stop the run at once, naming the URL.

Circuit breaker: an endpoint that has failed every attempt for
`llm.endpoint_down_after` seconds (and at least ENDPOINT_DOWN_ATTEMPTS attempts
in a row) stops the run with its URL and last error, so a dead or hanging
server ends a run within minutes, not after hours of retries (the bound is in
docs/llm-endpoints.md).

The API key is read from the environment variable `llm.api_key_env` names and
lives only in the client object: it is never put in a record, a failure text
or the config.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from dataclasses import dataclass

import openai
from omegaconf import DictConfig

from evolve.config import ConfigError
from evolve.prompts import Prompt, PromptBuilder
from evolve.pricing import PriceTable
from evolve.proposers.base import CallRecord, Proposal, ProposalCancelled, ProposalRequest
from evolve.proposers.models import ModelChooser, make_chooser
from evolve.proposers.replies import DIFF, REWRITE, ReplyError, parse_reply
from evolve.settings import LLMSettings, Settings, as_settings

RETRY_STATUS = {408, 409, 429}
FATAL_STATUS = {401, 403, 404}  # wrong key or URL or model: no later request can succeed either
ENDPOINT_DOWN_ATTEMPTS = 3  # failed attempts in a row, at the least, before the breaker opens
OVER_MAX_TOKENS = 1.5  # a completion this many times llm.max_tokens is flagged on its record
NO_KEY = "not-needed"  # local servers ignore the key, but the client wants one


class LLMConfigError(ConfigError):
    """The llm section cannot be used; the message says what to fix."""


PREFLIGHT_TIMEOUT = 10.0  # seconds for the start-up check that each endpoint answers


@dataclass
class Endpoint:
    """One base URL: its client, the bound on requests in flight to it, and its run of failures."""

    url: str
    client: openai.AsyncOpenAI
    slots: asyncio.Semaphore
    failing_since: float | None = None  # when the first attempt of the current run of failures started
    failures_in_row: int = 0

    def succeeded(self) -> None:
        self.failing_since, self.failures_in_row = None, 0

    def failed(self, started: float) -> None:
        if self.failing_since is None:
            self.failing_since = started
        self.failures_in_row += 1

    def down_for(self, now: float) -> float:
        """Seconds this endpoint has failed every attempt (0 while it works)."""
        return 0.0 if self.failing_since is None else now - self.failing_since


@dataclass(frozen=True)
class Reply:
    text: str | None
    finish_reason: str | None


class OpenAIProposer:
    def __init__(self, cfg: Settings | DictConfig) -> None:
        cfg = as_settings(cfg)
        llm = cfg.llm
        _check(llm)
        self.max_retries = int(llm.max_retries)
        self.backoff_base = float(llm.backoff_base)
        self.backoff_max = float(llm.backoff_max)
        self.diff_probability = float(llm.diff_probability)
        self.max_tokens = int(llm.max_tokens)
        self.endpoint_down_after = float(llm.endpoint_down_after)
        self.temperature = float(llm.temperature)
        self.prompts = PromptBuilder.from_config(cfg)
        try:
            self.prices = PriceTable.from_models(llm.models)
            self.chooser: ModelChooser = make_chooser(
                str(llm.selection), {m.name: float(m.weight) for m in llm.models}, float(llm.ucb_exploration))
        except ValueError as error:
            raise LLMConfigError(str(error)) from None
        self.endpoints: dict[str, Endpoint] = {}
        self.route: dict[str, Endpoint] = {}
        for model in llm.models:
            base_url = model.base_url or llm.base_url
            key_env = llm.api_key_env if model.api_key_env is None else model.api_key_env
            if base_url not in self.endpoints:
                client = openai.AsyncOpenAI(base_url=base_url, api_key=_api_key(key_env, model.name),
                                            timeout=float(llm.timeout), max_retries=0)
                self.endpoints[base_url] = Endpoint(base_url, client, asyncio.Semaphore(int(llm.max_concurrency)))
            self.route[model.name] = self.endpoints[base_url]
        self._jitter = random.Random()

    async def preflight(self) -> None:
        """Before a run starts: does every endpoint answer, and does it accept the key?

        A refused connection, an unknown host, a timeout, or 401/403 is an error that
        says what to fix, raised before anything is written. Any other answer (even
        404 from a server without a model list) means the endpoint is there.
        """
        for base_url, endpoint in self.endpoints.items():
            try:
                await endpoint.client.with_options(timeout=PREFLIGHT_TIMEOUT).models.list()
            except openai.APIConnectionError as error:
                raise LLMConfigError(f"cannot reach the LLM endpoint {base_url} ({_cause(error)}); "
                                     "start the server or fix llm.base_url") from None
            except openai.APIStatusError as error:
                if error.status_code in (401, 403):
                    raise LLMConfigError(f"the LLM endpoint {base_url} refused the API key ({error.status_code}); "
                                         "check the variable llm.api_key_env names") from None

    async def propose(self, request: ProposalRequest) -> Proposal:
        rng = random.Random(request.seed)
        model = self.chooser.choose(rng)
        edit_format = DIFF if rng.random() < self.diff_probability else REWRITE
        prompt = self.prompts.build(request, edit_format)
        reply, calls, failure = await self.complete(model, prompt)
        if reply is None:
            stop = self._stop_reason(model, calls)
            return Proposal(None, model, failure=stop or failure, calls=tuple(calls), fatal=bool(stop))
        try:
            edit = parse_reply(reply.text, edit_format, reply.finish_reason)
        except ReplyError as error:
            calls[-1] = _with_error(calls[-1], f"unusable reply: {error}")
            return Proposal(None, model, failure=str(error), calls=tuple(calls))
        return Proposal(edit, model, calls=tuple(calls))

    async def complete(self, model: str, prompt: Prompt) -> tuple[Reply | None, list[CallRecord], str]:
        """The reply (None if no attempt succeeded), one record per HTTP attempt, and why it failed.

        Cancelled (the run stopping), it raises ProposalCancelled carrying the attempts made so far,
        the one in flight included: the server saw them, so the database must too.
        """
        endpoint = self.route[model]
        calls: list[CallRecord] = []
        for attempt in range(1, self.max_retries + 2):
            started: float | None = None
            try:
                async with endpoint.slots:
                    started = time.monotonic()
                    reply, record, retry, wait = await self._attempt(endpoint, model, prompt, started)
            except asyncio.CancelledError:
                if started is not None:
                    calls.append(CallRecord(model, latency=time.monotonic() - started,
                                            error="cancelled: the run stopped while the request was in flight"))
                raise ProposalCancelled(Proposal(None, model, failure="the run stopped before the reply came",
                                                 calls=tuple(calls))) from None
            calls.append(record)
            if reply is not None:
                endpoint.succeeded()
                return reply, calls, ""
            endpoint.failed(started)
            reason = f"{record.error} ({endpoint.url})"
            if not retry or self._breaker_open(endpoint):
                return None, calls, reason
            if attempt > self.max_retries:
                return None, calls, f"{reason} (gave up after {attempt} attempts)"
            try:
                await asyncio.sleep(self._backoff(attempt, wait))
            except asyncio.CancelledError:
                raise ProposalCancelled(Proposal(None, model, failure="the run stopped before the reply came",
                                                 calls=tuple(calls))) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, endpoint: Endpoint, model: str, prompt: Prompt,
                       started: float) -> tuple[Reply | None, CallRecord, bool, float | None]:
        """One HTTP request: the reply (None on failure), its record, whether to retry, the wait asked for."""
        try:
            response = await endpoint.client.chat.completions.create(
                model=model, messages=prompt.messages(),  # type: ignore[arg-type]
                max_tokens=self.max_tokens, temperature=self.temperature)
        except openai.APIStatusError as error:
            retry = error.status_code in RETRY_STATUS or error.status_code >= 500
            reason = f"HTTP {error.status_code}: {_short(_error_message(error))}"
            return None, self._failed(model, started, reason), retry, _retry_after(error)
        except openai.APITimeoutError:
            return None, self._failed(model, started, "timeout: no reply within llm.timeout"), True, None
        except openai.APIConnectionError as error:
            return None, self._failed(model, started, f"connection error: {_short(_cause(error))}"), True, None
        except Exception as error:  # noqa: BLE001 - a body that is no chat completion fails the proposal, never the run
            reason = f"bad response: {type(error).__name__}: {_short(str(error))}"
            return None, self._failed(model, started, reason), False, None
        reply, record = self._read(model, response, time.monotonic() - started)
        return reply, record, False, None

    @staticmethod
    def _failed(model: str, started: float, reason: str) -> CallRecord:
        return CallRecord(model, latency=time.monotonic() - started, error=reason)

    def _breaker_open(self, endpoint: Endpoint) -> bool:
        """Has this endpoint failed every attempt for long enough to call it down?"""
        return (endpoint.failures_in_row >= ENDPOINT_DOWN_ATTEMPTS
                and endpoint.down_for(time.monotonic()) >= self.endpoint_down_after)

    def _stop_reason(self, model: str, calls: list[CallRecord]) -> str:
        """Why no later request can succeed ('' if one may): a wrong key, URL or model, or an endpoint down."""
        endpoint = self.route[model]
        last = calls[-1].error if calls else ""
        if last.startswith(tuple(f"HTTP {code}:" for code in FATAL_STATUS)):
            return (f"the LLM endpoint {endpoint.url} answered {last} for model '{model}'; check llm.base_url, "
                    "the model name and the API key, then `evolve resume` the run")
        if self._breaker_open(endpoint):
            down = endpoint.down_for(time.monotonic())
            return (f"the LLM endpoint {endpoint.url} failed every request for {down:.0f} s "
                    f"({endpoint.failures_in_row} attempts in a row; llm.endpoint_down_after="
                    f"{self.endpoint_down_after:g}); the last: {last}. Fix the endpoint, then `evolve resume` the run")
        return ""

    def _read(self, model: str, response: object, latency: float) -> tuple[Reply | None, CallRecord]:
        """Reply text and accounting from a chat completion.

        The usage is kept even when the response is unusable (no choices): the tokens were billed.
        A completion far over `max_tokens` is flagged on its record: the endpoint ignores the limit.
        """
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self.prices.cost(model, prompt_tokens, completion_tokens)
        choices = getattr(response, "choices", None)
        error = ""
        if not choices:
            error = "bad response: the response has no choices"
        elif completion_tokens > self.max_tokens * OVER_MAX_TOKENS:
            error = (f"over max_tokens: {completion_tokens} completion tokens for llm.max_tokens={self.max_tokens} "
                     "(the endpoint ignores the limit; the reply was used and its cost counted)")
        record = CallRecord(model, prompt_tokens, completion_tokens, latency, cost, error)
        if not choices:
            return None, record
        choice = choices[0]
        return Reply(choice.message.content, choice.finish_reason), record

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        return min(self.backoff_base * 2 ** (attempt - 1) * self._jitter.uniform(0.5, 1.5), self.backoff_max)

    async def close(self) -> None:
        for endpoint in self.endpoints.values():
            await endpoint.client.close()

    def report_outcome(self, proposal: Proposal, improvement: float | None) -> None:
        self.chooser.reward(proposal.proposer, improvement)

    def state(self) -> dict:
        return {"models": self.chooser.state()}

    def restore(self, state: dict) -> None:
        self.chooser.restore(state.get("models", {}))


def _check(llm: LLMSettings) -> None:
    checks = [
        (len(llm.models) > 0, "llm.models must list at least one model, e.g. llm.models=[{name:gpt-4o-mini}]"),
        (all(m.name and m.name != "???" for m in llm.models), "every entry of llm.models needs a name"),
        (len({m.name for m in llm.models}) == len(llm.models), "llm.models names a model twice"),
        (float(llm.timeout) > 0, "llm.timeout must be positive (seconds)"),
        (float(llm.endpoint_down_after) >= 0, "llm.endpoint_down_after must not be negative (seconds)"),
        (int(llm.max_concurrency) >= 1, "llm.max_concurrency must be at least 1"),
        (int(llm.max_retries) >= 0, "llm.max_retries must not be negative"),
        (float(llm.backoff_base) >= 0 and float(llm.backoff_max) >= 0, "llm.backoff_base and backoff_max must be >= 0"),
        (0.0 <= float(llm.diff_probability) <= 1.0, "llm.diff_probability must be between 0 and 1"),
        (int(llm.max_tokens) >= 1, "llm.max_tokens must be at least 1"),
        (int(llm.feedback_chars) >= 0, "llm.feedback_chars must not be negative"),
        (str(llm.base_url).startswith(("http://", "https://")), "llm.base_url must start with http:// or https://"),
    ]
    for ok, message in checks:
        if not ok:
            raise LLMConfigError(message)


def _api_key(env: str, model: str) -> str:
    if not env:
        return NO_KEY
    key = os.environ.get(env, "")
    if not key:
        raise LLMConfigError(f"model '{model}': environment variable {env} (llm.api_key_env) is not set; "
                             f"export it, or set llm.api_key_env='' for a server that needs no key")
    return key


def _retry_after(error: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, retry-after (seconds or HTTP date)."""
    headers = error.response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return when.timestamp() - time.time()
    except (ValueError, TypeError, OverflowError):
        return None


def _error_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return error.message


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(error)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _with_error(call: CallRecord, error: str) -> CallRecord:
    return CallRecord(call.model, call.prompt_tokens, call.completion_tokens, call.latency, call.cost, error)
