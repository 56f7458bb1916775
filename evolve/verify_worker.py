"""Verification in its own process: `python -m evolve.verify_worker VERIFIER_PATH ENGINE_PID`.

Long-lived: its first stdin line is the verifier's frozen code, {"verifier": VerifierSource.to_json()}
(evolve/verifier_source.py: the bytes the engine read and hashed when it loaded the problem; the
files on disk are never read, so a candidate that rewrote them changes nothing). It loads that
once, writes one line {"ready": true} (or {"fault": "..."} if it cannot be loaded, then exits),
then answers each job line on stdin with one reply line:

    job    {"settings": {...}, "cases": [case id, ...], "new_cases": [{"id", "split", "inputs", "private"}, ...],
            "runs": [{"case_id", "status", "output", "seconds", "message", "cpu_seconds"}, ...],
            "reference_runs": [...] | null}  (a calibrated problem's reference program, same cases)
           (a case's data comes once, in the first job that needs it; later jobs name it by id)
    reply  {"verdicts": [{"valid", "score", "metrics", "feedback", "rejected"}, ...], "score": float | null}
           or {"fault": "verifier X ..."}: the verifier's own fault, which the engine counts.

Who is at fault when verify() raises: the kinds of exception a malformed value makes a
correct verifier raise (DATA_ERRORS: a huge number overflowing a float, a wrong type, a
missing key) are the candidate's failure: that case's verdict is invalid, with the
exception as its feedback and `rejected` saying what happened. Anything else (an import
that fails, a name that is not defined, an assertion, a result that is not a Verdict) is
the verifier's fault. The engine kills this process when it runs past its time limit.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from evolve.certify_worker import _die_with_parent

# Exceptions a malformed value chosen by the candidate makes a correct verifier raise.
DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError,
               MemoryError, UnicodeError)
MESSAGE_LIMIT = 300  # characters of an exception's text kept (a huge value can make a huge message)


def main() -> int:
    _die_with_parent()
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the verifier prints (Python or C) goes to stderr, never into a reply
    sys.stdout = sys.stderr
    path = Path(sys.argv[1])
    try:
        from evolve.problem import load_frozen_verifier
        from evolve.verifier_source import VerifierSource

        module = load_frozen_verifier(VerifierSource.from_json(json.loads(sys.stdin.readline())["verifier"]))
    except Exception as error:  # noqa: BLE001 - reported to the engine, which names the verifier
        _send(replies, {"fault": f"verifier {path.name} could not be loaded for verification: {_text(error)}"})
        return 1
    _send(replies, {"ready": True})
    cases: dict[str, Any] = {}  # every case seen so far, by id: the engine sends a case's data once
    for line in sys.stdin:
        job = json.loads(line)
        cases.update((case["id"], case) for case in job.pop("new_cases"))
        _send(replies, judge(module, path.name, {**job, "cases": [cases[case_id] for case_id in job["cases"]]}))
    return 0


def judge(module: Any, name: str, job: dict[str, Any]) -> dict[str, Any]:
    """The reply to one job: every case's verdict and the aggregate score, or the verifier's fault.

    With "reference_runs" (a calibrated problem), each valid case score becomes the ratio to the
    reference program's score on that case before aggregation (evolve/calibration.py).
    """
    from evolve.calibration import CalibrationError, relative_verdicts

    settings = job["settings"]
    judged = _verdicts(module, name, job["cases"], job["runs"], settings)
    if isinstance(judged, str):
        return {"fault": judged}
    verdicts, rejected = judged
    if job.get("reference_runs") is not None:
        reference = _verdicts(module, name, job["cases"], job["reference_runs"], settings)
        if isinstance(reference, str):
            return {"fault": reference}
        try:
            verdicts = relative_verdicts(verdicts, reference[0])
        except CalibrationError as error:  # the reference cannot serve as a yardstick: the problem's fault
            return {"fault": f"verifier {name}: calibration: {error}"}
    score = None
    if all(v.valid for v in verdicts.values()):
        score = _aggregate(module, name, list(verdicts.values()), settings)
        if isinstance(score, str):
            return {"fault": score}
    replies = [{"valid": bool(v.valid), "score": v.score, "metrics": v.metrics, "feedback": str(v.feedback),
                "rejected": rejected.get(case_id, "")} for case_id, v in verdicts.items()]
    return {"verdicts": replies, "score": score}


def _verdicts(module: Any, name: str, cases: list[dict[str, Any]], runs: list[dict[str, Any]],
              settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | str:
    """({case id: Verdict}, {case id: why the verifier rejected the output}), or the fault's message."""
    from evolve.problem import Case, Verdict
    from evolve.sandbox.base import CaseRun

    verdicts: dict[str, Verdict] = {}
    rejected: dict[str, str] = {}
    for case_data, run_data in zip(cases, runs):
        case = Case(**case_data)
        try:
            verdict = module.verify(case, CaseRun(**run_data), settings)
        except DATA_ERRORS as error:
            rejected[case.id] = f"verifier {name} raised {type(error).__name__} on case {case.id!r}: {_message(error)}"
            verdict = Verdict(False, feedback=f"the verifier rejected this output: {_text(error)}")
        except Exception as error:  # noqa: BLE001 - the verifier's own fault
            return f"verifier {name} raised {_text(error, ' on case ' + repr(case.id))}"
        if not isinstance(verdict, Verdict) or not _finite(verdict.score):
            return (f"verifier {name} returned {str(verdict)[:MESSAGE_LIMIT]} for case {case.id!r}; "
                    "it must return a Verdict with a finite score")
        verdicts[case.id] = verdict
    return verdicts, rejected


def _aggregate(module: Any, name: str, verdicts: list[Any], settings: dict[str, Any]) -> float | str:
    """The program's score, or the fault's message."""
    aggregate = getattr(module, "aggregate", None)
    if aggregate is None:
        return sum(v.score for v in verdicts) / len(verdicts)
    try:
        score = aggregate(verdicts, settings)
    except Exception as error:  # noqa: BLE001
        return f"verifier {name}: aggregate() raised {_text(error)}"
    if not _finite(score):
        return f"verifier {name}: aggregate() returned {str(score)[:MESSAGE_LIMIT]}"
    return float(score)


def _send(stream: Any, reply: dict[str, Any]) -> None:
    try:
        text = json.dumps(reply, default=str)  # as the store writes metrics
    except (ValueError, TypeError, RecursionError) as error:
        text = json.dumps({"fault": f"a verdict's metrics cannot be stored as JSON: {_text(error)}"})
    stream.write(text + "\n")
    stream.flush()


def _message(error: BaseException) -> str:
    try:
        return str(error)[:MESSAGE_LIMIT]
    except Exception:  # noqa: BLE001 - str() of an exception about a huge value can itself fail
        return "(no message)"


def _text(error: BaseException, where: str = "") -> str:
    return f"{type(error).__name__}{where}: {_message(error)}"


def _finite(value: object) -> bool:
    try:
        return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return False


if __name__ == "__main__":
    sys.exit(main())
