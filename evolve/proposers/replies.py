"""Turn a model's reply text into an Edit, or say exactly why it cannot be one.

Two formats are understood, whichever was asked for:
- SEARCH/REPLACE blocks (`<<<<<<< SEARCH`, `=======`, `>>>>>>> REPLACE`);
- a whole program in a ```python fence (a rewrite).
For a multi-file program (evolve/bundle.py) each names its file: `<<<<<<< SEARCH center.c`,
and a rewritten file is a fence whose info string ends with its name: ```c center.c.
Whether the edit applies to the parent is not decided here: `evolve.edits.apply_edit`
does that, so a SEARCH text that does not match is rejected by the engine with
its own reason. Here only the reply's form is judged: empty, cut off at the
token limit, or garbled replies raise ReplyError.
"""

from __future__ import annotations

import re

from evolve.edits import END, START, Edit, Rewrite, SearchReplace
from evolve.errors import EvolveError

DIFF = "diff"
REWRITE = "rewrite"

_BLOCK = re.compile(
    r"^[ \t]*<{5,9}[ \t]*SEARCH(?:[ \t]+(?P<path>[^\s`]+))?[ \t]*\n(?P<search>.*?)^[ \t]*={5,9}[ \t]*\n"
    r"(?P<replace>.*?)^[ \t]*>{5,9}[ \t]*REPLACE[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_SEARCH_MARK = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH", re.MULTILINE)
# A fence's info string: a language, then (multi-file programs) the file it holds: ```c center.c
_FENCE = re.compile(r"^```[ \t]*([\w+-]*)(?:[ \t]+([^\s`]+))?[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_PYTHON = ("python", "py", "python3", "")


class ReplyError(EvolveError, ValueError):
    """The reply holds no usable edit; str(error) is the failure recorded."""


def parse_reply(text: str | None, wanted: str, finish_reason: str | None = "stop") -> Edit:
    """The edit a reply proposes. `wanted` is the format the prompt asked for."""
    if finish_reason == "length":
        raise ReplyError("reply truncated: the model hit max_tokens (finish_reason=length)")
    if text is None or not text.strip():
        raise ReplyError("empty reply")
    text = text.replace("\r\n", "\n")
    if _SEARCH_MARK.search(text):
        return _parse_diff(text)
    named = _named_files(text)
    if named:
        return Rewrite(named[0][1], files=named)
    rewrite = _find_program(text)
    if rewrite is not None:
        return Rewrite(rewrite)
    if wanted == DIFF:
        raise ReplyError("garbled reply: no SEARCH/REPLACE block and no ```python program")
    raise ReplyError("garbled reply: no ```python block holding the whole program")


def _parse_diff(text: str) -> SearchReplace:
    blocks = list(_BLOCK.finditer(text))
    opened = len(_SEARCH_MARK.findall(text))
    if not blocks:
        raise ReplyError("garbled reply: a SEARCH block is opened but never closed with ======= and >>>>>>> REPLACE")
    if len(blocks) < opened:
        raise ReplyError(f"garbled reply: {opened} SEARCH markers but only {len(blocks)} complete SEARCH/REPLACE blocks")
    pairs = tuple((_strip_fence_lines(m.group("search")), _strip_fence_lines(m.group("replace"))) for m in blocks)
    paths = tuple(m.group("path") for m in blocks)
    return SearchReplace(pairs, paths=paths if any(paths) else ())


def _strip_fence_lines(part: str) -> str:
    """Models sometimes put ``` lines inside a block; they are never program text."""
    return "".join(line for line in part.splitlines(keepends=True) if not line.lstrip().startswith("```"))


def _named_files(text: str) -> tuple[tuple[str, str], ...]:
    """Fences that name their file (```c center.c): the files a multi-file rewrite replaces."""
    return tuple((path, body) for _lang, path, body in _FENCE.findall(text) if path)


def _find_program(text: str) -> str | None:
    """The fenced program: the python fence holding the markers, else the longest python fence;
    a fence of another language only when it holds the markers."""
    fences = [(lang.lower(), body) for lang, _path, body in _FENCE.findall(text)]
    code = [body for lang, body in fences if lang in _PYTHON]
    if not code:
        code = [body for _lang, body in fences if START in body and END in body]
    if not code:
        if START in text and END in text and "```" not in text:
            return text if text.endswith("\n") else text + "\n"  # a bare program, no fence
        return None
    marked = [body for body in code if START in body and END in body]
    return max(marked or code, key=len)
