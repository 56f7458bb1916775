"""Evaluation: run a candidate in the sandbox, then score its outputs on the host.

Only the verifier produces scores. The candidate's outputs arrive as data; the
verifier validates them strictly. A verifier that raises or returns something
other than a Verdict is a fault of the problem, reported with the verifier's
name, never a crashed run.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from evolve.calibration import CalibrationError, relative_verdicts
from evolve.problem import Case, Problem, Verdict
from evolve.sandbox.base import CaseRun, Sandbox, SandboxJob, SandboxLimits

FEEDBACK_LIMIT = 2000  # characters of feedback kept for the next prompt


@dataclass(frozen=True)
class Evaluation:
    """A program's verified result on one split."""

    split: str
    valid: bool
    score: float | None
    verdicts: dict[str, Verdict]
    feedback: str
    seconds: float
    evaluator_hash: str
    stdout: str = ""
    stderr: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def signature(self) -> str:
        """Per-case scores, rounded: programs that behave alike share a cluster."""
        if not self.valid:
            return "invalid"
        return ",".join(f"{v.score:.6g}" for v in self.verdicts.values())


class VerifierError(RuntimeError):
    pass


class Evaluator:
    def __init__(self, problem: Problem, sandbox: Sandbox, limits: SandboxLimits, evaluator_hash: str) -> None:
        self.problem = problem
        self.sandbox = sandbox
        self.limits = limits
        self.evaluator_hash = evaluator_hash
        self.reference_first = False  # calibrated problems: which of the pair runs first, alternating

    async def evaluate(self, code: str, split: str) -> Evaluation:
        cases = self.problem.split(split)
        job = SandboxJob(code, self.problem.entry, tuple((c.id, c.inputs) for c in cases), self.limits)
        started = time.monotonic()
        reference = None
        if self.problem.reference_code is not None:  # measured on the same sandbox, next to the candidate
            ref_job = SandboxJob(self.problem.reference_code, self.problem.entry, job.cases, self.limits)
            self.reference_first = not self.reference_first
            if self.reference_first:
                reference = await self.sandbox.run(ref_job)
                result = await self.sandbox.run(job)
            else:
                result = await self.sandbox.run(job)
                reference = await self.sandbox.run(ref_job)
        else:
            result = await self.sandbox.run(job)
        # Verifiers may be slow (exact arithmetic, solvers): keep the event loop free.
        evaluation = await asyncio.to_thread(self._score, split, cases, result.runs,
                                             reference.runs if reference is not None else None)
        return Evaluation(
            split=split,
            valid=evaluation[0],
            score=evaluation[1],
            verdicts=evaluation[2],
            feedback=evaluation[3][:FEEDBACK_LIMIT],
            seconds=time.monotonic() - started,
            evaluator_hash=self.evaluator_hash,
            stdout=result.stdout,
            stderr=result.stderr,
        )

    def fault(self, split: str, reason: str) -> Evaluation:
        """An invalid result for a program the verifier could not score."""
        return Evaluation(split, False, None, {}, reason, 0.0, self.evaluator_hash)

    def _score(self, split: str, cases: tuple[Case, ...], runs: tuple[CaseRun, ...],
               reference: tuple[CaseRun, ...] | None = None):
        verdicts = {case.id: self._verify(case, run) for case, run in zip(cases, runs)}
        if reference is not None:
            try:
                verdicts = relative_verdicts(verdicts, {case.id: self._verify(case, run)
                                                        for case, run in zip(cases, reference)})
            except CalibrationError as error:
                raise VerifierError(f"problem {self.problem.name}: {error}") from None
        valid = all(v.valid for v in verdicts.values())
        feedback = "\n".join(f"[{case_id}] {v.feedback}" for case_id, v in verdicts.items() if v.feedback)
        if not valid:
            return False, None, verdicts, feedback
        score = self._aggregate(list(verdicts.values()))
        return True, score, verdicts, feedback

    def _verify(self, case: Case, run: CaseRun) -> Verdict:
        try:
            verdict = self.problem.verify(case, run, self.problem.settings)
        except Exception as error:  # noqa: BLE001 - any verifier fault is reported, not raised
            raise VerifierError(
                f"verifier {self.problem.verifier_path.name} raised {type(error).__name__} on case "
                f"{case.id!r}: {error}"
            ) from error
        if not isinstance(verdict, Verdict) or not _finite(verdict.score):
            raise VerifierError(
                f"verifier {self.problem.verifier_path.name} returned {verdict!r} for case {case.id!r}; "
                "it must return a Verdict with a finite score"
            )
        return verdict

    def _aggregate(self, verdicts: list[Verdict]) -> float:
        if self.problem.aggregate is None:
            return sum(v.score for v in verdicts) / len(verdicts)
        try:
            score = self.problem.aggregate(verdicts, self.problem.settings)
        except Exception as error:  # noqa: BLE001
            raise VerifierError(
                f"verifier {self.problem.verifier_path.name}: aggregate() raised {type(error).__name__}: {error}"
            ) from error
        if not _finite(score):
            raise VerifierError(f"verifier {self.problem.verifier_path.name}: aggregate() returned {score!r}")
        return float(score)


def _finite(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
