"""Evaluation: run a candidate in the sandbox, then score its outputs on the host.

Only the verifier produces scores. The candidate's outputs arrive as data; the
verifier validates them strictly, in a process of its own (evolve/verify_worker.py)
that is stopped at `verification.verifier_timeout` seconds per evaluation.

Who is at fault: a verifier that raises a data error (ValueError, OverflowError,
KeyError, ...) on a value the candidate chose, or runs past its time limit on it,
rejects that candidate: invalid, with the reason in its feedback and `rejected`.
A verifier that raises anything else, returns something other than a Verdict or
crashes is a fault of the problem (VerifierError), reported with the verifier's
name, never a crashed run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from evolve.errors import EvolveError
from evolve.problem import Case, Problem, Verdict
from evolve.builds import BuildCache
from evolve.sandbox.base import CaseRun, Sandbox, SandboxJob, SandboxLimits
from evolve.verifier_process import VerifierProcesses

FEEDBACK_LIMIT = 2000  # characters of feedback kept for the next prompt
DEFAULT_VERIFIER_TIMEOUT = 60.0  # seconds the verifier may spend on one evaluation (verification.verifier_timeout)


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
    # Why the verifier could not judge the candidate's output (its exception on a value the candidate
    # chose, or its time limit): the candidate's failure, already in `feedback`; empty otherwise.
    rejected: str = ""

    def signature(self) -> str:
        """Per-case scores, rounded: programs that behave alike share a cluster."""
        if not self.valid:
            return "invalid"
        return ",".join(f"{v.score:.6g}" for v in self.verdicts.values())


class VerifierError(EvolveError, RuntimeError):
    pass


class Evaluator:
    def __init__(self, problem: Problem, sandbox: Sandbox, limits: SandboxLimits, evaluator_hash: str,
                 verifier_timeout: float = DEFAULT_VERIFIER_TIMEOUT) -> None:
        self.problem = problem
        self.sandbox = sandbox
        self.limits = limits
        self.evaluator_hash = evaluator_hash
        self.verifier = VerifierProcesses(problem.verifier_source, verifier_timeout)
        self.reference_first = False  # calibrated problems: which of the pair runs first, alternating
        self.builds = BuildCache()  # compiled problems: identical sources are built once per run

    async def evaluate(self, code: str, split: str) -> Evaluation:
        cases = self.problem.split(split)
        started = time.monotonic()
        case_inputs = tuple((c.id, c.inputs) for c in cases)
        if self.problem.program is not None:
            return await self._evaluate_built(code, split, cases, case_inputs, started)
        job = SandboxJob(code, self.problem.entry, case_inputs, self.limits)
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
        valid, score, verdicts, feedback, rejected = await self._score(
            cases, result.runs, reference.runs if reference is not None else None)
        return Evaluation(
            split=split,
            valid=valid,
            score=score,
            verdicts=verdicts,
            feedback=feedback[:FEEDBACK_LIMIT],
            seconds=time.monotonic() - started,
            evaluator_hash=self.evaluator_hash,
            stdout=result.stdout,
            stderr=result.stderr,
            rejected=rejected,
        )

    async def _evaluate_built(self, code: str, split: str, cases: tuple[Case, ...],
                              case_inputs: tuple[tuple[str, dict[str, Any]], ...], started: float) -> Evaluation:
        """A compiled candidate: built in the sandbox (once per distinct sources), run per case, then judged.

        A failed build is the candidate's fault: invalid, with the compiler's trimmed output as its
        feedback; the verifier is not asked.
        """
        reference = None
        if self.problem.reference_code is not None:  # calibrated: the reference runs next to it, alternating
            self.reference_first = not self.reference_first
            if self.reference_first:
                reference = await self._run_built(self.problem.reference_code, case_inputs)
            result = await self._run_built(code, case_inputs)
            if not self.reference_first:
                reference = await self._run_built(self.problem.reference_code, case_inputs)
        else:
            result = await self._run_built(code, case_inputs)
        if isinstance(result, str):
            return Evaluation(split, False, None, {}, result[:FEEDBACK_LIMIT], time.monotonic() - started,
                              self.evaluator_hash)
        if isinstance(reference, str):
            raise VerifierError(f"the problem's reference program does not build: {reference[:500]}")
        valid, score, verdicts, feedback, rejected = await self._score(
            cases, result.runs, reference.runs if reference is not None else None)
        return Evaluation(split, valid, score, verdicts, feedback[:FEEDBACK_LIMIT], time.monotonic() - started,
                          self.evaluator_hash, stdout=result.stdout, stderr=result.stderr, rejected=rejected)

    async def _run_built(self, code: str, case_inputs: tuple[tuple[str, dict[str, Any]], ...]):
        """The sandbox's result for a compiled program, or the message of its failed build."""
        program = self.problem.program
        assert program is not None
        key = self.builds.key(code, program)
        known = self.builds.get(key)
        if isinstance(known, str):  # these sources failed to build before: they still do
            return known
        job = SandboxJob(code, self.problem.entry, case_inputs, self.limits, program=program, prebuilt=known)
        result = await self.sandbox.run(job)
        build = result.build
        if build is not None and not result.failure:
            self.builds.remember(key, build)
            if not build.ok:
                return f"build failed ({build.status}): {build.message}"
        return result

    def fault(self, split: str, reason: str) -> Evaluation:
        """An invalid result for a program the verifier could not score."""
        return Evaluation(split, False, None, {}, reason, 0.0, self.evaluator_hash)

    def close(self) -> None:
        """Stop the idle verification processes."""
        self.verifier.close()

    async def _score(self, cases: tuple[Case, ...], runs: tuple[CaseRun, ...],
                     reference: tuple[CaseRun, ...] | None = None):
        """(valid, score, verdicts, feedback, rejected) from the verifier's process; VerifierError if it failed."""
        name = self.problem.verifier_path.name
        reply = await self.verifier.judge({
            "settings": self.problem.settings,
            "cases": [{"id": c.id, "split": c.split, "inputs": c.inputs, "private": c.private} for c in cases],
            "runs": [_fields(run) for run in runs[:len(cases)]],
            # Calibrated problems: the reference's runs too; case scores become ratios to its scores.
            "reference_runs": None if reference is None else [_fields(run) for run in reference[:len(cases)]],
        })
        if "timeout" in reply:  # the candidate chose an output the verifier could not finish judging
            reason = f"the verifier ran past its {reply['timeout']:g} s limit on this output and was stopped"
            return False, None, {}, reason, f"verifier {name}: {reason}"
        if "fault" in reply or "crashed" in reply:
            raise VerifierError(reply.get("fault") or f"verifier {name}: {reply['crashed']}")
        verdicts = {case.id: Verdict(v["valid"], v["score"], v["metrics"], v["feedback"])
                    for case, v in zip(cases, reply["verdicts"])}
        rejected = "; ".join(v["rejected"] for v in reply["verdicts"] if v["rejected"])
        feedback = "\n".join(f"[{case_id}] {v.feedback}" for case_id, v in verdicts.items() if v.feedback)
        valid = all(v.valid for v in verdicts.values())
        return valid, reply["score"] if valid else None, verdicts, feedback, rejected


def _fields(run: CaseRun) -> dict[str, Any]:
    """A run's fields, not copied (dataclasses.asdict deep-copies every output)."""
    return {name: getattr(run, name) for name in CaseRun.__dataclass_fields__}
