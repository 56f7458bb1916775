"""A multi-file candidate as one text: how it is stored, edited and written out.

A bundle is the files of a candidate, in order, each introduced by a header line

    ==> path <==            the file's EVOLVE-BLOCKs may change (or nothing, if it has none)
    ==> path <== whole      the whole file may change

(the header `head` prints between files). The store keeps a bundle in the same
code column as a single Python program; `evolve best -o DIR` writes its files.
A text whose first line is not a header is a single-file program, not a bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evolve.errors import EvolveError

WHOLE = "whole"
_HEADER = re.compile(r"^==> (?P<path>\S(?:.*\S)?) <==(?: (?P<flag>whole))?[ \t]*$", re.MULTILINE)


class BundleError(EvolveError, ValueError):
    """A text that claims to be a bundle but cannot be read as one; the message says why."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative, '/'-separated
    text: str
    whole: bool = False  # editable as a whole, not only inside EVOLVE-BLOCKs

    def header(self) -> str:
        return f"==> {self.path} <==" + (f" {WHOLE}" if self.whole else "")


def is_bundle(code: str) -> bool:
    return _HEADER.match(code) is not None


def check_path(path: str) -> str:
    """A file name a candidate may have: relative, inside its folder, no odd characters."""
    pure = PurePosixPath(path)
    if (not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or "\0" in path
            or path != str(pure) or any(part.startswith("-") for part in pure.parts)):
        raise BundleError(f"file name {path!r} is not a plain relative path inside the problem's folder")
    return path


def parse(code: str) -> tuple[SourceFile, ...]:
    """The files of a bundle, in order; BundleError if it is not one."""
    headers = list(_HEADER.finditer(code))
    if not headers or headers[0].start() != 0:
        raise BundleError("a multi-file program must start with a '==> path <==' header line")
    files, seen = [], set()
    for header, following in zip(headers, headers[1:] + [None]):
        path = check_path(header.group("path"))
        if path in seen:
            raise BundleError(f"file {path} appears twice in the program")
        seen.add(path)
        body = code[header.end() + 1 : following.start() if following else len(code)]
        files.append(SourceFile(path, body, header.group("flag") == WHOLE))
    return tuple(files)


def join(files: tuple[SourceFile, ...] | list[SourceFile]) -> str:
    """The bundle text of `files`: every file ends with a newline, so headers stay on lines of their own."""
    parts = []
    for source in files:
        text = source.text if source.text.endswith("\n") or not source.text else source.text + "\n"
        if _HEADER.search(text):
            raise BundleError(f"file {source.path} holds a '==> path <==' line, which would split it in two")
        parts.append(source.header() + "\n" + text)
    return "".join(parts)


def replace_file(code: str, path: str, text: str) -> str:
    """The bundle with file `path` holding `text`; BundleError if it has no such file."""
    files = list(parse(code))
    for index, source in enumerate(files):
        if source.path == path:
            files[index] = SourceFile(path, text, source.whole)
            return join(files)
    raise BundleError(f"the program has no file {path}; its files are {', '.join(f.path for f in files)}")


def write_out(code: str, folder: Path) -> list[Path]:
    """Write a bundle's files under `folder` (created); the paths written."""
    written = []
    for source in parse(code):
        target = folder / source.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.text)
        written.append(target)
    return written


LANGUAGES = {".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".py": "python", ".rs": "rust",
             ".go": "go", ".java": "java", ".js": "javascript", ".sh": "sh", ".mk": "make"}


def language(path: str) -> str:
    """The fence language of a file, from its suffix ('' when unknown)."""
    name = PurePosixPath(path)
    return "make" if name.name == "Makefile" else LANGUAGES.get(name.suffix.lower(), "")
