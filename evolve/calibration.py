"""Calibration across machines: scores relative to a reference program measured alongside.

A timed score (seconds, PAR-2) depends on the machine as much as on the program. A
problem that declares `reference: seed` (or the path of a reference solver) has the
engine run that program on the same sandbox with every evaluation, right before or
after the candidate (alternating, so drift during the pair cancels on average), and
each case's score becomes candidate / reference. A machine twice as slow slows both;
the ratio stays. The reference's own verdicts must be valid with a positive score:
a reference that fails a case is a fault of the problem, not of the candidate.
"""

from __future__ import annotations

from evolve.errors import EvolveError
from evolve.problem import Verdict


class CalibrationError(EvolveError, ValueError):
    """The reference program cannot serve as a yardstick on some case."""


def relative_verdicts(candidate: dict[str, Verdict], reference: dict[str, Verdict]) -> dict[str, Verdict]:
    """Each valid case score divided by the reference's score on the same case (raw scores kept in metrics)."""
    out = {}
    for case_id, verdict in candidate.items():
        base = reference[case_id]
        if not base.valid or not base.score > 0:
            raise CalibrationError(f"the reference program scored {'invalid' if not base.valid else base.score} "
                                   f"on case {case_id!r} ({base.feedback[:200]}); a calibrated score needs a "
                                   "valid, positive reference score on every case")
        if not verdict.valid:
            out[case_id] = verdict
            continue
        ratio = verdict.score / base.score
        out[case_id] = Verdict(True, ratio, {**verdict.metrics, "raw_score": verdict.score,
                                             "reference_score": base.score},
                               f"{verdict.feedback} ({ratio:.3g} x the reference)".strip())
    return out
