"""Hostile candidates on every backend.

Each attack must end with the candidate scored as failed, with feedback saying
why; the engine (this test process) still running and able to score an honest
program on the same sandbox; nothing outside the job's scratch changed; and no
process (found by the marker the candidate gives itself) or container left.

The `process` backend does not isolate the file system or the network. For
those attacks the test asserts what it does guarantee (failed score, limits,
clean-up) and records the gap by asserting that the attack got through, so the
day it stops getting through this test says so.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sandbox_support import (
    BACKENDS, HONEST, HOSTILE, make_backend, make_problem, evaluator, new_marker, run_containers, wait_until_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # the whole hostile matrix: every tier, every attack


@dataclass(frozen=True)
class Attack:
    cases: tuple[dict, ...]  # extra inputs per case (besides x and the marker)
    feedback: tuple[str, ...]  # per case, a regex its feedback must match where the sandbox isolates
    weak_feedback: tuple[str, ...] = ()  # the same for the process backend, when it differs
    isolation: str = ""  # "files" | "network" | "secrets": what the process backend cannot stop


ONE = ({},)
CPU_TIMEOUT = (r"^timeout: exceeded the 2 s CPU time limit$",)
WALL_TIMEOUT = (r"^timeout: exceeded the 7 s wall-clock limit \(waiting or sleeping\)$",)
NOT_JSON = r"^error: the returned value is not JSON data: "
ATTACKS = {
    "infinite_loop": Attack(ONE, CPU_TIMEOUT),
    "sleep_past_limit": Attack(ONE, WALL_TIMEOUT),
    "fork_bomb": Attack(ONE, (CPU_TIMEOUT[0] + "|" + WALL_TIMEOUT[0],)),
    "memory_bomb": Attack(ONE, (r"MemoryError|out of memory",)),
    "stdout_flood": Attack(ONE, (r"File too large|more than \d+ bytes|larger than",)),
    "network": Attack(ONE, (r"no network: .*(unreachable|refused).*dns",), (r"wrong answer: .*reached",), "network"),
    "write_outside": Attack(ONE, (r"every write outside the scratch was refused",), (r"wrong answer: .*written",),
                            "files"),
    "read_secrets": Attack(ONE, (r"nothing could be read",), (r"wrong answer: .*stolen",), "secrets"),
    # Where the runner is out of the candidate's reach (another uid, or PID 1 of the job's
    # namespace) the kill fails or is ignored; where it is not, the runner's result is missing.
    "kill_parent": Attack(ONE, (r"^sandbox: the sandbox runner returned no result|"
                                r"PermissionError: \[Errno 1\] Operation not permitted$|" + WALL_TIMEOUT[0][1:],)),
    "background_process": Attack(ONE, (r"^wrong answer: .*left something running",)),
    # A reply forged on the candidate's own channel can only stand in for its own
    # output (which the verifier judges); the runner's result line is out of reach.
    "forged_result": Attack(ONE, (r"^protocol: the candidate wrote to the result channel itself$|"
                                  r"^wrong answer: \{'answer': 'FORGED'\}$",)),
    "raise_exceptions": Attack(
        tuple({"kind": kind} for kind in ("value", "system_exit", "keyboard", "nasty", "recursion", "exit")),
        (r"^error: .*ValueError: plain failure", r"^error: .*SystemExit", r"^error: .*KeyboardInterrupt",
         r"^error: .*Nasty", r"^error: .*RecursionError", r"^crashed: the candidate process exited \(status 0\)"),
    ),
    "unserializable": Attack(
        tuple({"kind": kind} for kind in ("object", "generator", "circular", "fake_numpy", "bytes", "nan")),
        (NOT_JSON + "TypeError: object of type object", NOT_JSON + "TypeError: object of type generator",
         NOT_JSON + "ValueError: Circular reference", NOT_JSON + "ValueError: Circular reference",
         NOT_JSON + "TypeError: object of type bytes", r"^wrong answer: nan$"),
    ),
}


class Listener:
    """A TCP server on all of the host's addresses that counts who got through."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(1)
                try:
                    self.received.append(connection.recv(100))
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def host_addresses() -> list[str]:
    """127.0.0.1 and the host's outward address (the candidate must reach neither)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the route
        outward = probe.getsockname()[0]
    except OSError:
        outward = "127.0.0.1"
    finally:
        probe.close()
    return sorted({"127.0.0.1", outward})


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


MARKS = {"process": [], "bwrap": [pytest.mark.bwrap], "docker-pool": [pytest.mark.docker],
         "docker-fresh": [pytest.mark.docker]}


@pytest.mark.parametrize("backend", [pytest.param(name, marks=MARKS[name]) for name in BACKENDS])
@pytest.mark.parametrize("attack_name", sorted(ATTACKS))
async def test_hostile_candidate_is_contained(attack_name: str, backend: str, tmp_path: Path) -> None:
    attack = ATTACKS[attack_name]
    marker = new_marker()
    secret = "SECRET-" + uuid.uuid4().hex
    outside = tmp_path / "outside"  # stands for everything outside the job's scratch
    listener = Listener()
    extra = {"marker": marker, "port": listener.port, "hosts": host_addresses(),
             "targets": [str(outside / "canary.txt"), str(outside / "verifier" / "verifier.py")],
             "paths": [str(outside / "verifier" / "verifier.py"), str(outside / "verifier" / "cases.json")]}
    problem = make_problem(outside / "verifier", [{**extra, **case} for case in attack.cases], secret)
    (outside / "canary.txt").write_text("untouched\n")
    before = digest_tree(outside)
    run_id = f"test-hostile-{uuid.uuid4().hex[:8]}"
    sandbox = make_backend(backend, run_id)
    weak = not sandbox.isolates_filesystem
    try:
        code = (HOSTILE / f"{attack_name}.py").read_text()
        result = await evaluator(problem, sandbox).evaluate(code, "search")

        # Scored as failed, and the feedback says why.
        assert not result.valid and result.score is None
        expected = attack.weak_feedback if weak and attack.weak_feedback else attack.feedback
        for (case_id, verdict), pattern in zip(result.verdicts.items(), expected, strict=True):
            assert not verdict.valid
            assert re.search(pattern, verdict.feedback, re.DOTALL), f"{case_id}: {verdict.feedback}"

        # The engine goes on: the same sandbox still scores an honest program.
        honest = await evaluator(problem, sandbox).evaluate(HONEST, "search")
        assert honest.valid and honest.score == 1.0, honest.feedback
    finally:
        await sandbox.close()
        listener.close()
        stray = [Path(f"/{marker}"), Path(f"/tmp/{marker}")]
        strays_found = [path for path in stray if path.exists()]
        for path in strays_found:
            path.unlink()

    # Nothing outside the job's scratch changed, nothing secret came out.
    changed = digest_tree(outside) != before
    leaked = secret in result.feedback + result.stdout + result.stderr
    reached = bool(listener.received)
    if weak and attack.isolation == "files":
        assert changed and strays_found, "the process backend is documented not to isolate the file system"
    else:
        assert not changed, "files outside the scratch were changed"
        assert not strays_found, f"files were created outside the scratch: {strays_found}"
    if weak and attack.isolation == "secrets":
        assert leaked, "the process backend is documented not to hide the verifier's files"
    else:
        assert not leaked, "the verifier's secret reached the candidate"
    if weak and attack.isolation == "network":
        assert reached, "the process backend is documented not to isolate the network"
    else:
        assert not reached, f"the candidate reached the host over the network: {listener.received}"

    # No process and no container left behind.
    assert wait_until_gone(marker) == [], f"processes of the candidate are still running ({marker})"
    if backend.startswith("docker"):
        assert run_containers(run_id) == []
    shutil.rmtree(outside, ignore_errors=True)
