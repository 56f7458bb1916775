"""Certifying verifiers: an optimistic search score for everyone, a proven bound for champions.

Some problems (objective: minimize) score every candidate cheaply but optimistically
(a lower estimate of its true value), and can prove an exact upper bound only at
great cost (SMT calls of seconds to minutes). Their verifier file then has, besides
`verify`, both of

    def gate(subject, bound: str, settings: dict, time_limit: float) -> dict
        "Is this candidate better than `bound` (the champion's certified bound)?"
        {"status": "witness" | "proven" | "unknown", "value": str | None, "value_float": float | None,
         "seconds": float, "solver": str, "detail": dict}
        witness: provably not better; value/value_float is an exact worst-case value found for it,
                 which replaces its search score. proven: provably better (value: the bound proven,
                 if any). unknown: nothing proven; it can never be champion.

    def certify(subject, settings: dict, upper: str | None, lower: float | None, time_limit: float) -> dict
        The candidate's own bound; `upper` is a bound already proven for it, `lower` its search score.
        {"status": "proven" | "uncertified", "bound": str | None, "bound_float": float | None,
         "lower": float | None, "width": float | None, "calls": int, "seconds": float, "solver": str,
         "detail": dict}

`subject` is the JSON data the verifier put in `Verdict.metrics["subject"]` when it
verified the candidate's search cases (the first verdict that has one). Bounds are
exact strings ("1/3", "0.5"); floats are for display and selection.

Every call runs in its own process (`python -m evolve.certify_worker`), never in the
event loop or a thread: a solver call cannot be interrupted from Python, but a process
can be killed, on cancellation (Ctrl-C, stop) and at the time limit plus a grace.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from evolve.certify_worker import worker_env
from evolve.evaluation import VerifierError
from evolve.verifier_source import VerifierSource

GATE_STATUSES = ("witness", "proven", "unknown")
CERTIFY_STATUSES = ("proven", "uncertified")
STDERR_TAIL = 2000  # characters of a failed call's stderr kept for the report


class CertifierError(VerifierError):
    """A gate() or certify() that crashed or answered something outside the contract."""


@dataclass(frozen=True)
class GateResult:
    status: str  # witness | proven | unknown
    value: str | None = None
    value_float: float | None = None
    seconds: float = 0.0
    solver: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CertifyResult:
    status: str  # proven | uncertified
    bound: str | None = None
    bound_float: float | None = None
    lower: float | None = None
    width: float | None = None
    calls: int = 0
    seconds: float = 0.0
    solver: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def subject_of(verdict_metrics: list[dict[str, Any]]) -> Any:
    """The first search verdict's `subject` (None if no verdict has one: such a program cannot be certified)."""
    for metrics in verdict_metrics:
        if isinstance(metrics, dict) and "subject" in metrics:
            return metrics["subject"]
    return None


def exact(value: str | None) -> Fraction | None:
    """An exact bound ("1/3", "0.5", "3819660/10000000") as a fraction; None if it is not one."""
    if value is None:
        return None
    try:
        return Fraction(value.strip())
    except (ValueError, ZeroDivisionError, AttributeError):
        return None


def better(bound: str | None, bound_float: float, than: str | None, than_float: float | None) -> bool:
    """Is this proven bound strictly below the other (lower is better)? Exactly when both parse."""
    if than_float is None:
        return True
    mine, theirs = exact(bound), exact(than)
    if mine is not None and theirs is not None:
        return mine < theirs
    return bound_float < than_float


class Certifier:
    """Runs a verifier's gate() and certify() in a killable child process, one at a time."""

    def __init__(self, verifier: VerifierSource, settings: dict[str, Any], gate_seconds: float,
                 certify_seconds: float, grace: float) -> None:
        self.verifier = verifier  # the code read when the problem was loaded: each call runs it, not the disk
        self.verifier_path = verifier.path
        self.settings = settings
        self.gate_seconds = gate_seconds
        self.certify_seconds = certify_seconds
        self.grace = grace
        self.slot = asyncio.Lock()  # at most one solver process at a time (they take a core and memory each)

    @property
    def name(self) -> str:
        return self.verifier_path.name

    async def gate(self, subject: Any, bound: str) -> GateResult:
        started = time.monotonic()
        answer = await self._call("gate", {"subject": subject, "bound": bound}, self.gate_seconds)
        wall = time.monotonic() - started
        if isinstance(answer, str):  # killed at its time limit
            return GateResult("unknown", seconds=wall, detail={"reason": answer, "wall_seconds": wall})
        result = self._gate_result(answer)
        return replace(result, detail={**result.detail, "wall_seconds": wall})

    async def certify(self, subject: Any, upper: str | None, lower: float | None) -> CertifyResult:
        started = time.monotonic()
        answer = await self._call("certify", {"subject": subject, "upper": upper, "lower": lower},
                                  self.certify_seconds)
        wall = time.monotonic() - started
        if isinstance(answer, str):
            return CertifyResult("uncertified", lower=lower, seconds=wall, detail={"reason": answer,
                                                                                  "wall_seconds": wall})
        result = self._certify_result(answer)
        return replace(result, detail={**result.detail, "wall_seconds": wall})

    # ------------------------------------------------------------------ the child process

    async def _call(self, hook: str, arguments: dict[str, Any], time_limit: float) -> dict[str, Any] | str:
        """The hook's answer, or the reason it has none (time limit); CertifierError if it failed."""
        job = json.dumps({"verifier": self.verifier.to_json(), "hook": hook, "settings": self.settings,
                          "time_limit": time_limit, **arguments})
        async with self.slot:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "evolve.certify_worker", str(self.verifier_path), str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill reaches whatever it started
                env=worker_env())
            try:
                stdout, stderr = await asyncio.wait_for(process.communicate(job.encode()), time_limit + self.grace)
            except asyncio.TimeoutError:
                await _kill(process)
                return f"{hook}() ran past its time limit of {time_limit:g} s (+{self.grace:g} s grace) and was killed"
            except BaseException:
                await asyncio.shield(_kill(process))  # cancelled (Ctrl-C, stop): no solver outlives the run
                raise
        return self._answer(hook, process.returncode, stdout, stderr)

    def _answer(self, hook: str, code: int | None, stdout: bytes, stderr: bytes) -> dict[str, Any]:
        tail = stderr.decode(errors="replace")[-STDERR_TAIL:].strip()
        try:
            reply = json.loads(stdout.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise CertifierError(f"verifier {self.name}: {hook}() process ended (exit code {code}) without an "
                                 f"answer" + (f"; stderr: {tail}" if tail else "")) from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else reply
            raise CertifierError(f"verifier {self.name}: {hook}() raised {error}")
        result = reply.get("result")
        if not isinstance(result, dict):
            raise CertifierError(f"verifier {self.name}: {hook}() returned {str(result)[:200]!r}; it must return "
                                 "a dict (see evolve/certification.py)")
        return result

    # ------------------------------------------------------------------ checking answers against the contract

    def _gate_result(self, answer: dict[str, Any]) -> GateResult:
        status = answer.get("status")
        if status not in GATE_STATUSES:
            raise CertifierError(f"verifier {self.name}: gate() returned status {status!r}; "
                                 f"it must be one of {', '.join(GATE_STATUSES)}")
        value, value_float = _text(answer.get("value")), _number(answer.get("value_float"))
        if status == "witness" and value_float is None:
            raise CertifierError(f"verifier {self.name}: gate() returned a witness without a finite value_float")
        return GateResult(status, value, value_float, _number(answer.get("seconds")) or 0.0,
                          str(answer.get("solver", "")), _detail(answer.get("detail")))

    def _certify_result(self, answer: dict[str, Any]) -> CertifyResult:
        status = answer.get("status")
        if status not in CERTIFY_STATUSES:
            raise CertifierError(f"verifier {self.name}: certify() returned status {status!r}; "
                                 f"it must be one of {', '.join(CERTIFY_STATUSES)}")
        bound, bound_float = _text(answer.get("bound")), _number(answer.get("bound_float"))
        if status == "proven" and (bound is None or bound_float is None):
            raise CertifierError(f"verifier {self.name}: certify() returned proven without an exact bound "
                                 "(str) and a finite bound_float")
        calls = answer.get("calls", 0)
        return CertifyResult(status, bound, bound_float, _number(answer.get("lower")), _number(answer.get("width")),
                             calls if isinstance(calls, int) else 0, _number(answer.get("seconds")) or 0.0,
                             str(answer.get("solver", "")), _detail(answer.get("detail")))


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    await process.wait()


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _detail(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {} if value is None else {"detail": value}
