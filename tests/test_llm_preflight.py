"""An unreachable endpoint is a clear error at start, with nothing written."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

import evolve


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_endpoint_fails_fast_and_writes_nothing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(evolve.ConfigError, match=f"cannot reach the LLM endpoint {url}"):
        evolve.run([f"run.dir={tmp_path / 'run'}", "sandbox=process", "sandbox.allow_root=true", "llm=openai", f"llm.base_url={url}",
                    "llm.api_key_env="])
    assert time.monotonic() - started < 30
    assert not (tmp_path / "run").exists()
