"""An LLM search of the compiled example through a real local endpoint: edits name their file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import evolve
from evolve import bundle
from evolve.paths import PROBLEMS
from tests.conftest import query
from tests.fake_llm import FakeLLM, author_script

KEY = "sk-fake-compiled"
_SHIFT = re.compile(r"double shift = (-?[\d.]+);")
_CENTER = re.compile(r"```c center\.c\n(.*?)\n```", re.DOTALL)


def lower_the_shift(index: int, body: dict) -> str:
    """Moves the centre towards the (lower) median: a diff naming center.c, or a rewrite of it."""
    user = body["messages"][1]["content"]
    current = _CENTER.search(user).group(1) + "\n"
    old = _SHIFT.search(current)
    new = f"double shift = {float(old.group(1)) - 0.001 * (index + 1):.3f};"  # a new program each time
    if index % 2 == 0:  # whole lines, as the prompt asks
        line = next(line for line in current.splitlines() if old.group(0) in line)
        return (f"Lower the shift.\n<<<<<<< SEARCH center.c\n{line}\n=======\n{line.replace(old.group(0), new)}\n"
                ">>>>>>> REPLACE\n")
    return f"Lower the shift.\n```c center.c\n{current.replace(old.group(0), new)}```\n"


@pytest.mark.timeout(240)
def test_an_llm_search_of_a_c_problem_edits_the_named_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVE_FAKE_KEY", KEY)
    with FakeLLM(author_script(lower_the_shift)) as fake:
        result = evolve.run([f"problem={PROBLEMS / 'center_c' / 'problem.yaml'}", f"run.dir={tmp_path / 'r'}",
                             "sandbox=process", "sandbox.allow_root=true", "run.progress=false",
                             "budget.evaluations=8", "llm=openai", f"llm.base_url={fake.url}",
                             "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.backoff_base=0.01"])
        prompts = [seen.body["messages"][1]["content"] for seen in fake.seen]
    assert result.best_score < result.seed_score
    assert prompts and all("### File `main.c` (fixed: shown for reference, never changed)" in p
                           and "### File `center.c` (editable: only between the EVOLVE-BLOCK markers)" in p
                           for p in prompts)
    # Every reply, diff or rewrite, applied to the file it named (duplicates across islands aside).
    outcomes = query(tmp_path / "r", "SELECT outcome, reason FROM proposals")
    assert outcomes and all(outcome in ("new", "duplicate") for outcome, _ in outcomes), outcomes
    assert sum(outcome == "new" for outcome, _ in outcomes) >= 2
    codes = [code for (code,) in query(tmp_path / "r", "SELECT code FROM programs")]
    for code in codes:
        assert [source.path for source in bundle.parse(code)] == ["main.c", "center.h", "center.c"]
