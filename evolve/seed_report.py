"""Why a seed program failed, told once and in the user's own terms.

Every case of a broken seed usually fails the same way: the report names the
cases together, shows each distinct message once, points at the seed's file
instead of the sandbox's temporary copy, leaves out the runner's own frames, and
shortens only at line boundaries.
"""

from __future__ import annotations

import re
from pathlib import Path

from evolve.evaluation import Evaluation

MAX_LINES = 30  # per distinct message
_CANDIDATE_FILE = re.compile(r'File "[^"\n]*candidate\.py"')
# A traceback frame of the sandbox runner: its "File" line and the indented source / caret lines under it.
_RUNNER_FRAME = re.compile(r'^ *File "[^"\n]*runner\.py", line \d+, in [^\n]*\n(?: {4,}[^\n]*\n)*', re.MULTILINE)


def invalid_seed_message(problem_name: str, seed_path: Path | None, evaluation: Evaluation) -> str:
    where = f" ({seed_path})" if seed_path is not None else ""
    failing = {case_id: verdict.feedback for case_id, verdict in evaluation.verdicts.items() if not verdict.valid}
    if not failing:  # nothing per case: the evaluation's own reason
        return f"the seed program of '{problem_name}'{where} is invalid: {evaluation.feedback}"
    groups: dict[str, list[str]] = {}
    for case_id, feedback in failing.items():
        groups.setdefault(_readable(feedback, seed_path), []).append(case_id)
    parts = [f"the seed program of '{problem_name}'{where} fails {len(failing)} of {len(evaluation.verdicts)} "
             f"case(s); fix it and start again"]
    for text, cases in groups.items():
        parts.append(f"case(s) {', '.join(cases)}: {text}")
    return "\n".join(parts)


def _readable(feedback: str, seed_path: Path | None) -> str:
    text = feedback.strip() or "(no message)"
    if seed_path is not None:
        text = _CANDIDATE_FILE.sub(f'File "{seed_path}"', text + "\n").rstrip("\n")
    text = _RUNNER_FRAME.sub("", text + "\n").rstrip("\n")
    lines = text.splitlines()
    if len(lines) > MAX_LINES:  # keep the head (what failed) and the tail (the exception itself)
        head, tail = lines[: MAX_LINES // 3], lines[-(MAX_LINES - MAX_LINES // 3):]
        lines = [*head, f"    ... ({len(lines) - len(head) - len(tail)} lines left out)", *tail]
    return "\n".join(lines)
