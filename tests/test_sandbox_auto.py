"""`sandbox=auto` picks the strongest tier that works and says when it falls back."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from evolve.config import compose_config
from evolve.sandbox.factory import make_sandbox, remove_orphans
from tests.sandbox_support import ensure_image

pytestmark = [pytest.mark.docker, pytest.mark.bwrap, pytest.mark.timeout(120)]


def choose(caplog: pytest.LogCaptureFixture, *overrides: str):
    cfg = compose_config(["sandbox=auto", *overrides])
    with caplog.at_level(logging.WARNING, logger="evolve.sandbox"):
        sandbox = make_sandbox(cfg, f"test-auto-{uuid.uuid4().hex[:8]}")
    asyncio.run(sandbox.close())
    return sandbox, [record.getMessage() for record in caplog.records]


def test_docker_when_the_daemon_answers(caplog: pytest.LogCaptureFixture) -> None:
    ensure_image()
    sandbox, warnings = choose(caplog)
    assert sandbox.name == "docker" and sandbox.identity.startswith("docker:sha256:")
    assert warnings == []


def test_bubblewrap_with_a_warning_when_docker_is_absent(caplog, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    sandbox, warnings = choose(caplog)
    assert sandbox.name == "bwrap"
    assert len(warnings) == 1 and "using bubblewrap, not Docker" in warnings[0] and "does not answer" in warnings[0]


def test_processes_with_a_loud_warning_when_nothing_else_works(caplog, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on the path
    sandbox, warnings = choose(caplog, "sandbox.allow_root=true")  # refused as root otherwise
    assert sandbox.name == "process"
    assert len(warnings) == 1 and "WEAKER isolation" in warnings[0]
    assert "docker:" in warnings[0] and "bwrap: bubblewrap is not installed" in warnings[0]


def test_sandbox_groups_compose() -> None:
    for group in ("process", "bwrap", "docker", "auto"):
        assert compose_config([f"sandbox={group}"]).sandbox.backend == group


def test_remove_orphans_without_docker_is_a_no_op(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert remove_orphans() == 0
