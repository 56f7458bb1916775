import pytest

from evolve.edits import EditRejected, Rewrite, SearchReplace, apply_edit, normalized_hash, split_blocks

PARENT = """import math

# EVOLVE-BLOCK-START
def f(x):
    return x * 2
# EVOLVE-BLOCK-END

def main(x):
    return f(x) + 1
"""


def test_rewrite_inside_the_block_is_applied() -> None:
    child = apply_edit(PARENT, Rewrite(PARENT.replace("x * 2", "x * 3")))
    assert "x * 3" in child and child.endswith("return f(x) + 1\n")


def test_search_replace_inside_the_block_is_applied() -> None:
    child = apply_edit(PARENT, SearchReplace((("return x * 2", "return x ** 2"),)))
    assert "x ** 2" in child


@pytest.mark.parametrize("edit, reason", [
    (Rewrite(PARENT.replace("f(x) + 1", "f(x) + 2")), "outside the EVOLVE-BLOCKs"),
    (Rewrite(PARENT.replace("import math", "import os")), "outside the EVOLVE-BLOCKs"),
    (SearchReplace((("return f(x) + 1", "return 10**9"),)), "outside the EVOLVE-BLOCKs"),
    (Rewrite(PARENT.replace("# EVOLVE-BLOCK-END\n", "")), "markers"),
    (Rewrite(PARENT.replace("# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START")), "markers"),
    (SearchReplace((("return x * 3", "return x"),)), "does not match"),
    (SearchReplace((("", "x"),)), "empty"),
    (SearchReplace(()), "no SEARCH/REPLACE"),
    (Rewrite(PARENT), "unchanged"),
])
def test_edits_that_break_the_rules_are_rejected_with_a_reason(edit, reason: str) -> None:
    with pytest.raises(EditRejected, match=reason):
        apply_edit(PARENT, edit)


def test_markers_belong_to_the_fixed_part() -> None:
    fixed, blocks = split_blocks(PARENT)
    assert blocks == ["def f(x):\n    return x * 2\n"]
    assert fixed[0].endswith("# EVOLVE-BLOCK-START\n") and fixed[1].startswith("# EVOLVE-BLOCK-END")


def test_a_program_without_markers_cannot_be_edited() -> None:
    with pytest.raises(EditRejected, match="no '# EVOLVE-BLOCK-START'"):
        apply_edit("x = 1\n", Rewrite("x = 2\n"))


def test_normalized_hash_ignores_comments_and_layout_but_not_code() -> None:
    spaced = PARENT.replace("return x * 2", "return x*2  # doubled").replace("\n\n", "\n\n\n")
    assert normalized_hash(spaced) == normalized_hash(PARENT)
    assert normalized_hash(PARENT.replace("x * 2", "x * 3")) != normalized_hash(PARENT)
    assert normalized_hash("def broken(:\n") != normalized_hash("def broken(:\n  pass\n")
