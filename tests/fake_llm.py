"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, for tests and benchmarks.

Real HTTP over a real socket (stdlib `http.server`, one thread per connection),
so the real `openai` client is exercised end to end. A script decides, for the
n-th request (0-based) and its JSON body, what the server does:

    Reply(text, finish_reason, delay)   a chat completion, after `delay` seconds
    Status(code, retry_after, body)     an HTTP error (429, 500, 401, ...)
    Drop()                              close the connection without answering
    Garbage()                           200 with a body that is not JSON
    Slow(delay)                         answer nothing for `delay` seconds (for client timeouts)
    NoChoices()                         200 with usage but an empty `choices` list

`Reply(..., completion_tokens=N)` reports N completion tokens whatever the text's length
(an endpoint that ignores max_tokens).

Every request the server saw is kept in `seen` with what it did, so tests can
compare the server's count with the calls the engine recorded.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import random
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Union


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str = "stop"
    delay: float = 0.0
    kind: str = "reply"
    completion_tokens: int | None = None  # reported usage; default: the text's length / 4


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: str | None = None
    body: str = ""
    kind: str = "status"


@dataclass(frozen=True)
class Drop:
    kind: str = "drop"


@dataclass(frozen=True)
class Garbage:
    kind: str = "garbage"


@dataclass(frozen=True)
class Slow:
    delay: float
    kind: str = "slow"


@dataclass(frozen=True)
class NoChoices:
    prompt_tokens: int = 120
    completion_tokens: int = 30
    kind: str = "no_choices"


Action = Union[Reply, Status, Drop, Garbage, Slow, NoChoices]
Script = Callable[[int, dict], Action]


@dataclass(frozen=True)
class Seen:
    index: int
    body: dict
    authorization: str
    action: Action
    at: float


class FakeLLM:
    """`with FakeLLM(script) as llm:` serves at `llm.url` until the block ends."""

    def __init__(self, script: Script | list[Action]) -> None:
        if isinstance(script, list):
            actions = list(script)
            script = lambda index, body: actions[min(index, len(actions) - 1)]  # noqa: E731
        self.script = script
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being handled at once
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-llm", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if kind is None or s.action.kind == kind)

    def _next(self, body: dict, authorization: str) -> Action:
        with self._lock:
            index = len(self.seen)
            action = self.script(index, body)
            self.seen.append(Seen(index, body, authorization, action, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return action


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real server
        disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            return None

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                return
            body = json.loads(raw or b"{}")
            action = fake._next(body, self.headers.get("Authorization", ""))
            try:
                self._act(action, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer
            finally:
                with fake._lock:
                    fake.in_flight -= 1

        def _act(self, action: Action, body: dict) -> None:
            if isinstance(action, Reply):
                time.sleep(action.delay)
                reply = completion(body, action.text, action.finish_reason)
                if action.completion_tokens is not None:
                    usage = reply["usage"]
                    usage["completion_tokens"] = action.completion_tokens
                    usage["total_tokens"] = usage["prompt_tokens"] + action.completion_tokens
                self._send(200, json.dumps(reply).encode())
            elif isinstance(action, Status):
                payload = action.body or json.dumps({"error": {"message": f"scripted {action.code}", "type": "fake"}})
                headers = {"retry-after": action.retry_after} if action.retry_after is not None else {}
                self._send(action.code, payload.encode(), headers)
            elif isinstance(action, Drop):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif isinstance(action, Garbage):
                self._send(200, b"<html>upstream proxy error: \x00\xff not json", content_type="application/json")
            elif isinstance(action, NoChoices):
                usage = {"prompt_tokens": action.prompt_tokens, "completion_tokens": action.completion_tokens,
                         "total_tokens": action.prompt_tokens + action.completion_tokens}
                self._send(200, json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                                            "model": body.get("model", "fake"), "choices": [],
                                            "usage": usage}).encode())
            elif isinstance(action, Slow):
                time.sleep(action.delay)
                self.close_connection = True

        def _send(self, code: int, payload: bytes, headers: dict | None = None,
                  content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def completion(body: dict, text: str, finish_reason: str = "stop") -> dict:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    prompt_tokens, completion_tokens = max(prompt_chars // 4, 1), max(len(text) // 4, 1)
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


# --- a scripted "author": numeric tweaks of the parent, as a diff or a rewrite ---------------

_PARENT = re.compile(r"# Current program.*?```python\n(.*?)\n```", re.DOTALL)
_FLOAT = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")


def parent_code(body: dict) -> str:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    match = _PARENT.search(user)
    if match is None:
        raise ValueError("the prompt shows no current program")
    return match.group(1) + "\n"


def wants_diff(body: dict) -> bool:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return "SEARCH/REPLACE" in user.split("# Your task", 1)[-1]


def tweak_author(seed: int = 0) -> Callable[[int, dict], str]:
    """Reply text that changes one decimal literal inside the EVOLVE-BLOCK by a random step."""

    def write(index: int, body: dict) -> str:
        rng = random.Random(seed * 1_000_003 + index)
        code = parent_code(body)
        start, end = code.index("EVOLVE-BLOCK-START"), code.index("EVOLVE-BLOCK-END")
        lines = code[start:end].splitlines(keepends=True)[1:]
        spots = [(line, m) for line in lines if not line.lstrip().startswith("#") for m in _FLOAT.finditer(line)]
        line, match = rng.choice(spots)
        value = float(match.group(1)) * (1 + rng.gauss(0, 0.15))
        new_line = line[: match.start()] + f"{value:.4f}" + line[match.end():]
        if wants_diff(body):
            return f"Adjust a constant.\n<<<<<<< SEARCH\n{line}=======\n{new_line}>>>>>>> REPLACE\n"
        return f"Adjusted a constant.\n```python\n{code.replace(line, new_line, 1)}```\n"

    return write


def author_script(write: Callable[[int, dict], str], latency: float = 0.0) -> Script:
    return lambda index, body: Reply(write(index, body), delay=latency)


def flaky_script(write: Callable[[int, dict], str], failure_rate: float, seed: int = 0,
                 latency: float = 0.0, slow: float = 2.0) -> Script:
    """`failure_rate` of requests fail, evenly mixed over every way a request can fail."""
    failures: list[Callable[[], Action]] = [
        lambda: Status(429, retry_after="0"),
        lambda: Status(500),
        lambda: Status(503),
        lambda: Drop(),
        lambda: Garbage(),
        lambda: Slow(slow),
        lambda: Reply("I am not sure what to change here."),  # no edit in it
        lambda: Reply("<<<<<<< SEARCH\nx = 1\n", finish_reason="length"),  # truncated
        lambda: Reply(""),  # empty
    ]

    def script(index: int, body: dict) -> Action:
        rng = random.Random(seed * 7919 + index)
        if rng.random() < failure_rate:
            return rng.choice(failures)()
        return Reply(write(index, body), delay=latency)

    return script


# --- a tiny problem for whole runs against the fake endpoint ----------------------------------

_TINY_SEED = '''"""Guess a number; the verifier rewards closeness to the case's target."""

import time


# EVOLVE-BLOCK-START
def guess() -> float:
    return 0.5
# EVOLVE-BLOCK-END


def main(target: float) -> float:
    time.sleep(SLEEP)
    return guess()
'''

_TINY_VERIFIER = '''from evolve.problem import Verdict


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{run.status}: {run.message}")
    if type(run.output) not in (int, float):
        return Verdict(False, feedback=f"expected a number, got {type(run.output).__name__}")
    distance = abs(float(run.output) - case.private["target"])
    return Verdict(True, -distance, {"distance": distance}, f"off by {distance:.4f}")
'''


def tiny_problem(folder, sleep: float = 0.0, heldout: bool = True) -> list[str]:
    """Write a problem whose candidate sleeps `sleep` seconds per case; return the overrides naming it."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.py").write_text(_TINY_SEED.replace("SLEEP", repr(float(sleep))))
    (folder / "verifier.py").write_text(_TINY_VERIFIER)
    (folder / "prompt.md").write_text("Return a number as close as possible to the hidden target.\n")
    cases = {"search": [{"id": "t1", "inputs": {"target": 0}, "private": {"target": 3.0}}],
             "heldout": [{"id": "secret-holdout-case", "inputs": {"target": 0}, "private": {"target": 3.5}}]}
    if not heldout:
        del cases["heldout"]
    (folder / "cases.json").write_text(json.dumps(cases))
    return ["problem.name=tiny", f"problem.seed_program={folder / 'seed.py'}", f"problem.prompt={folder / 'prompt.md'}",
            f"problem.cases={folder / 'cases.json'}", f"problem.verifier={folder / 'verifier.py'}",
            "problem.entry=main", "problem.objective=maximize", f"problem.case_timeout={max(5.0, 4 * sleep)}"]


@contextlib.contextmanager
def author_in_process(seed: int = 0, latency: float = 0.0) -> Iterator[str]:
    """The `tweak_author` endpoint served from a process of its own, as a real server would be (its CPU
    and GIL are not the engine's); yields its URL. For the benchmarks."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()

    def serve() -> None:
        with FakeLLM(author_script(tweak_author(seed=seed), latency=latency)) as fake:
            child.send(fake.url)
            child.recv()  # until told to stop

    process = context.Process(target=serve, daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=10)
