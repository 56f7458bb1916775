"""Edits of multi-file programs: each names its file; fixed files and headers never change."""

from __future__ import annotations

import asyncio

import pytest

from evolve import bundle
from evolve.edits import EditRejected, apply_edit
from evolve.proposers.base import ProgramView, ProposalRequest
from evolve.proposers.offline import OfflineProposer
from evolve.proposers.replies import parse_reply
from evolve.prompts import BUILTIN, PromptBuilder
from omegaconf import OmegaConf

MAIN = '#include "tune.h"\nint main(void) { return step(3) > 0 ? 0 : 1; }\n'
STEP = "int step(int x) {\n    // EVOLVE-BLOCK-START\n    int scale = 4; /* 4 at first */\n    return x * scale;\n    // EVOLVE-BLOCK-END\n}\n"
TUNE = "int step(int x);\n#define LIMIT 10\n"
PROGRAM = bundle.join([bundle.SourceFile("main.c", MAIN), bundle.SourceFile("step.c", STEP),
                       bundle.SourceFile("tune.h", TUNE, whole=True)])


def test_a_search_replace_naming_its_file_changes_that_file_only() -> None:
    edit = parse_reply("Scale more.\n<<<<<<< SEARCH step.c\n    int scale = 4; /* 4 at first */\n=======\n"
                       "    int scale = 5;\n>>>>>>> REPLACE\n", "diff")
    child = {source.path: source.text for source in bundle.parse(apply_edit(PROGRAM, edit))}
    assert child["step.c"] == STEP.replace("    int scale = 4; /* 4 at first */", "    int scale = 5;")
    assert child["main.c"] == MAIN and child["tune.h"] == TUNE


@pytest.mark.parametrize("reply, reason", [
    ("<<<<<<< SEARCH main.c\nint main(void) { return step(3) > 0 ? 0 : 1; }\n=======\nint main(void) { return 0; }\n"
     ">>>>>>> REPLACE\n",
     "changes file main.c, which has no EVOLVE-BLOCK and is fixed"),
    ("<<<<<<< SEARCH step.c\nint step(int x) {\n=======\nint step(long x) {\n>>>>>>> REPLACE\n",
     "file step.c: the edit changes code outside the EVOLVE-BLOCKs"),
    ("<<<<<<< SEARCH nope.c\nx\n=======\ny\n>>>>>>> REPLACE\n", "names file 'nope.c', which the program does not have"),
    ("<<<<<<< SEARCH tune.h\n#define LIMIT 10\n=======\n#define LIMIT 10\n==> extra.c <==\n>>>>>>> REPLACE\n",
     "would split it in two"),
    ("```c step.c\nint step(int x) { return 0; }\n```\n", "file step.c: the edit breaks the EVOLVE-BLOCK markers"),
    ("```c\nint step(int x) { return 0; }\n```\n", "no ```python"),
])
def test_edits_that_touch_fixed_code_or_unknown_files_are_rejected_with_the_reason(reply: str, reason: str) -> None:
    with pytest.raises((EditRejected, ValueError), match=reason.replace("(", r"\(").replace(")", r"\)")):
        apply_edit(PROGRAM, parse_reply(reply, "diff"))


def test_a_rewrite_of_a_named_file_and_of_a_whole_file() -> None:
    new_tune = "int step(int x);\n#define LIMIT 20\n"
    edit = parse_reply(f"Raise the limit.\n```c tune.h\n{new_tune}```\n", "rewrite")
    child = {source.path: source.text for source in bundle.parse(apply_edit(PROGRAM, edit))}
    assert child == {"main.c": MAIN, "step.c": STEP, "tune.h": new_tune}


def test_the_offline_mutator_changes_a_number_inside_a_c_evolve_block_and_never_a_comment() -> None:
    proposer = OfflineProposer(OmegaConf.create({"numeric_rate": 1.0, "line_rate": 0.0, "crossover_rate": 0.0}))
    parent = ProgramView(1, PROGRAM, 1.0, "")
    for seed in range(20):
        request = ProposalRequest(parent=parent, inspirations=(), statement="", maximize=True, island=0, seed=seed)
        proposal = asyncio.run(proposer.propose(request))
        child = {source.path: source.text for source in bundle.parse(apply_edit(PROGRAM, proposal.edit))}
        assert child["main.c"] == MAIN and child["tune.h"] == TUNE
        assert "/* 4 at first */" in child["step.c"] and "int scale = 4;" not in child["step.c"]


def test_the_prompt_shows_each_file_with_what_may_change_and_asks_for_named_edits() -> None:
    request = ProposalRequest(parent=ProgramView(1, PROGRAM, 2.0, "ok"), inspirations=(), statement="Go fast.",
                              maximize=True, island=0, seed=0)
    prompt = PromptBuilder([BUILTIN]).build(request, "diff").user
    assert "### File `main.c` (fixed: shown for reference, never changed)\n\n```c main.c\n" + MAIN in prompt
    assert "### File `step.c` (editable: only between the EVOLVE-BLOCK markers)\n\n```c step.c\n" in prompt
    assert "### File `tune.h` (editable: the whole file)" in prompt
    assert "<<<<<<< SEARCH path/of/the/file.c" in prompt


def test_programs_differing_in_a_c_define_are_not_duplicates() -> None:
    from evolve.edits import normalized_hash

    other = PROGRAM.replace("#define LIMIT 10", "#define LIMIT 11")
    assert normalized_hash(other) != normalized_hash(PROGRAM)
    assert normalized_hash(PROGRAM.replace("int scale = 4;", "int  scale = 4;")) == normalized_hash(PROGRAM)
