"""How soon a run stops when its LLM endpoint is down or hangs (the circuit breaker, item of
docs/llm-endpoints.md), against the scripted server of tests/fake_llm.py on 127.0.0.1.

    python bench/endpoint_faults.py [--down-after 10] [--timeout 3] [--proposers 1 2]

For each fault (every request answered 503; every connection accepted and never answered) and
each number of proposers it prints the seconds from the first request to the end of the run,
the requests the server saw, and how the run ended. The bound it is checked against:
refusing/erroring endpoints: down_after + backoff_max; hanging ones: max(3 x timeout,
down_after + timeout) plus the backoffs, divided among proposers asking in parallel.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evolve  # noqa: E402
from evolve.engine import SearchStalled  # noqa: E402
from tests.fake_llm import FakeLLM, Slow, Status, tiny_problem  # noqa: E402


def measure(action, down_after: float, timeout: float, proposers: int) -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as scratch, FakeLLM([action]) as fake:
        overrides = [f"run.dir={Path(scratch) / 'run'}", "sandbox=process", "sandbox.allow_root=true",
                     "run.progress=false",
                     "budget.evaluations=1000", *tiny_problem(Path(scratch) / "tiny"), "llm=openai",
                     f"llm.base_url={fake.url}", "llm.api_key_env=", "llm.models=[{name:fake}]",
                     f"llm.timeout={timeout}", f"llm.endpoint_down_after={down_after}",
                     f"search.proposers={proposers}"]
        try:
            evolve.run(overrides)
            ended = "finished (not stopped!)"
        except SearchStalled as error:
            ended = str(error)[:110]
        first = fake.seen[0].at if fake.seen else time.monotonic()
        return time.monotonic() - first, fake.count(), ended


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--down-after", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--proposers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    faults = {"503 on every request": Status(503), "accepts, never answers": Slow(3600)}
    print(f"llm.endpoint_down_after={args.down_after:g} s, llm.timeout={args.timeout:g} s, backoff defaults")
    for name, action in faults.items():
        for proposers in args.proposers:
            seconds, requests, ended = measure(action, args.down_after, args.timeout, proposers)
            print(f"{name:24s} proposers={proposers}: stopped after {seconds:6.1f} s, {requests:3d} requests; {ended}")


if __name__ == "__main__":
    main()
