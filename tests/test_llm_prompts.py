"""Prompts carry the statement, the parent with its verified result, inspirations and the format rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolve.config import compose_config
from evolve.problem import load_problem
from evolve.prompts import BUILTIN, PromptBuilder, TemplateError, template_dirs, truncate
from evolve.proposers.base import ProgramView, ProposalRequest


def _request(statement: str = "Pack circles.", feedback: str = "case n26: sum 2.08", maximize: bool = True,
             inspirations: tuple[ProgramView, ...] = ()) -> ProposalRequest:
    parent = ProgramView(7, "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n", 2.08, feedback)
    return ProposalRequest(parent, inspirations, statement, maximize, island=0, seed=1)


def test_the_prompt_holds_statement_parent_score_feedback_inspirations_and_format() -> None:
    builder = PromptBuilder([BUILTIN])
    inspirations = (ProgramView(3, "# EVOLVE-BLOCK-START\ny = 2\n# EVOLVE-BLOCK-END\n", 2.5),
                    ProgramView(4, "# EVOLVE-BLOCK-START\nz = 3\n# EVOLVE-BLOCK-END\n", None))
    prompt = builder.build(_request(inspirations=inspirations), "diff")
    user = prompt.user
    assert "Pack circles." in user and "x = 1" in user and "2.08" in user and "case n26: sum 2.08" in user
    assert "y = 2" in user and "2.5" in user and "z = 3" in user and "invalid" in user
    assert "<<<<<<< SEARCH" in user and "maximized" in user
    rewrite = builder.build(_request(maximize=False), "rewrite").user
    assert "<<<<<<< SEARCH" not in rewrite and "complete new program" in rewrite and "minimized" in rewrite
    assert prompt.messages()[0]["role"] == "system" and "EVOLVE-BLOCK" in prompt.system


def test_feedback_is_cut_to_its_budget_keeping_head_and_tail() -> None:
    feedback = "Traceback (most recent call last):\n" + "  frame\n" * 500 + "ZeroDivisionError: division by zero"
    user = PromptBuilder([BUILTIN], feedback_chars=300).build(_request(feedback=feedback), "diff").user
    assert "Traceback" in user and "ZeroDivisionError" in user and "characters cut" in user
    assert user.count("  frame") < 50
    assert len(truncate("a" * 1000, 100)) < 150 and truncate("short", 100) == "short"


def test_a_problem_overrides_templates_with_its_own_files(tmp_path: Path) -> None:
    problem = tmp_path / "problem"
    (problem / "templates").mkdir(parents=True)
    (problem / "prompt.md").write_text("Statement.")
    (problem / "templates" / "system.md").write_text("You are a circle-packing expert. Cost: $$5.")
    cfg = compose_config([f"problem.prompt={problem / 'prompt.md'}"])
    assert template_dirs(cfg)[0] == problem / "templates"
    prompt = PromptBuilder.from_config(cfg).build(_request(), "diff")
    assert prompt.system == "You are a circle-packing expert. Cost: $5."
    assert "<<<<<<< SEARCH" in prompt.user  # the other templates are the built-in ones


def test_a_template_with_an_unknown_placeholder_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "user.md").write_text("$statement\n$parnet_code\n")
    with pytest.raises(TemplateError, match=r"user.md: unknown placeholder\(s\) \$parnet_code"):
        PromptBuilder([tmp_path, BUILTIN])


def test_held_out_cases_and_verifier_source_stay_out_of_the_prompt() -> None:
    cfg = compose_config(["problem=circle_packing"])
    problem = load_problem(cfg)
    heldout_ids = [case.id for case in problem.split("heldout")]
    verifier_lines = [line.strip() for line in problem.verifier_path.read_text().splitlines() if len(line.strip()) > 30]
    request = ProposalRequest(ProgramView(1, problem.seed_code, 2.08, "n26: 2.08"), (), problem.statement,
                              problem.maximize, 0, 0)
    user = PromptBuilder.from_config(cfg).build(request, "rewrite").user
    assert heldout_ids and not any(case_id in user for case_id in heldout_ids)
    assert verifier_lines and not any(line in user for line in verifier_lines)
    assert problem.seed_code.strip() in user
