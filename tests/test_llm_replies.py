"""Model replies become edits, or failures with a reason; edits that cannot apply are rejected with one."""

from __future__ import annotations

import pytest

from evolve.edits import EditRejected, Rewrite, SearchReplace, apply_edit
from evolve.proposers.replies import DIFF, REWRITE, ReplyError, parse_reply

PARENT = """import math

# EVOLVE-BLOCK-START
def f(x):
    scale = 0.5
    return scale * x
# EVOLVE-BLOCK-END


def main(x):
    return f(x)
"""


def test_search_replace_blocks_apply_to_the_parent() -> None:
    reply = (
        "Raise the scale and add an offset.\n"
        "<<<<<<< SEARCH\n    scale = 0.5\n=======\n    scale = 0.75\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n    return scale * x\n=======\n    return scale * x + 1\n>>>>>>> REPLACE\n"
    )
    edit = parse_reply(reply, DIFF)
    assert isinstance(edit, SearchReplace) and len(edit.pairs) == 2
    child = apply_edit(PARENT, edit)
    assert "scale = 0.75" in child and "return scale * x + 1" in child


def test_a_block_may_delete_lines_and_may_sit_in_a_fence() -> None:
    reply = "```python\n<<<<<<< SEARCH\n    scale = 0.5\n    return scale * x\n=======\n    return x\n>>>>>>> REPLACE\n```"
    child = apply_edit(PARENT, parse_reply(reply, DIFF))
    assert "scale" not in child and "    return x\n" in child


def test_a_fenced_program_is_a_rewrite_whichever_format_was_asked() -> None:
    new = PARENT.replace("0.5", "0.9")
    for wanted in (DIFF, REWRITE):
        edit = parse_reply(f"Here you go:\n```python\n{new}```\nDone.", wanted)
        assert edit == Rewrite(new)


def test_the_fence_holding_the_markers_wins_over_a_snippet() -> None:
    new = PARENT.replace("0.5", "0.9")
    reply = f"Call it like this:\n```python\nmain(3)\n```\nProgram:\n```python\n{new}```\n"
    assert parse_reply(reply, REWRITE) == Rewrite(new)


@pytest.mark.parametrize(
    ("reply", "finish", "reason"),
    [
        ("", "stop", "empty reply"),
        ("   \n", "stop", "empty reply"),
        (None, "stop", "empty reply"),
        ("I would change the scale.", "stop", "garbled"),
        ("<<<<<<< SEARCH\n    scale = 0.5\n=======\n    scale = 0.6\n", "stop", "never closed"),
        ("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nc\n", "stop", "2 SEARCH markers"),
        ("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", "length", "truncated"),
    ],
)
def test_unusable_replies_fail_with_their_reason(reply: str | None, finish: str, reason: str) -> None:
    with pytest.raises(ReplyError, match=reason):
        parse_reply(reply, DIFF, finish)


def test_edits_that_cannot_be_used_are_rejected_with_the_reason() -> None:
    no_match = parse_reply("<<<<<<< SEARCH\n    scale = 0.4\n=======\n    scale = 1\n>>>>>>> REPLACE\n", DIFF)
    with pytest.raises(EditRejected, match="does not match"):
        apply_edit(PARENT, no_match)
    broken = parse_reply(f"```python\n{PARENT.replace('# EVOLVE-BLOCK-END', '')}```", REWRITE)
    with pytest.raises(EditRejected, match="markers"):
        apply_edit(PARENT, broken)
    same = parse_reply("<<<<<<< SEARCH\n    scale = 0.5\n=======\n    scale = 0.5\n>>>>>>> REPLACE\n", DIFF)
    with pytest.raises(EditRejected, match="unchanged"):
        apply_edit(PARENT, same)
    outside = parse_reply("<<<<<<< SEARCH\n    return f(x)\n=======\n    return 2\n>>>>>>> REPLACE\n", DIFF)
    with pytest.raises(EditRejected, match="outside"):
        apply_edit(PARENT, outside)


def test_windows_line_endings_are_understood() -> None:
    reply = "<<<<<<< SEARCH\r\n    scale = 0.5\r\n=======\r\n    scale = 0.7\r\n>>>>>>> REPLACE\r\n"
    assert "scale = 0.7" in apply_edit(PARENT, parse_reply(reply, DIFF))
