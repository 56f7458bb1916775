"""Edits to programs, and the EVOLVE-BLOCK rule that bounds them.

Only the text between `EVOLVE-BLOCK-START` and `EVOLVE-BLOCK-END` comment
lines may change. An edit is applied to the parent, then the result's text
outside the blocks is compared with the parent's: any difference, a missing or
extra marker, a SEARCH text that does not match, or a result identical to the
parent raises EditRejected with the reason. Nothing is ever silently dropped.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import re
import tokenize
import types
from dataclasses import dataclass

from evolve import bundle
from evolve.errors import EvolveError

START = "EVOLVE-BLOCK-START"
END = "EVOLVE-BLOCK-END"
# A marker is a line holding only a comment with it: `#` (Python, shell), `//` or `/* */` (C family), `--`, `;`.
_MARKER = re.compile(rf"^[ \t]*(?:#|//|--|;|/\*)[ \t]*({START}|{END})[ \t]*(?:\*/)?[ \t]*$", re.MULTILINE)


class EditRejected(EvolveError, ValueError):
    """The edit was not applied; str(error) is the reason recorded."""


@dataclass(frozen=True)
class Rewrite:
    """A whole new program; or, for a multi-file program, new texts of the files named in `files`."""

    code: str
    kind: str = "rewrite"
    files: tuple[tuple[str, str], ...] = ()  # (path, new text): only these files change


@dataclass(frozen=True)
class SearchReplace:
    """Exact SEARCH texts, each replaced once by its REPLACE text, in order."""

    pairs: tuple[tuple[str, str], ...]
    kind: str = "diff"
    # The file each pair applies to (multi-file programs); None: the first match anywhere.
    paths: tuple[str | None, ...] = ()


Edit = Rewrite | SearchReplace


def split_blocks(code: str) -> tuple[list[str], list[str]]:
    """(fixed parts, block bodies): fixed[0] block[0] fixed[1] block[1] ... fixed[-1].

    Marker lines belong to the fixed parts, so they cannot be moved or removed.
    """
    markers = list(_MARKER.finditer(code))
    if not markers:
        raise EditRejected(f"the program has no '# {START}' / '# {END}' markers")
    kinds = [m.group(1) for m in markers]
    if kinds != [START, END] * (len(kinds) // 2) or len(kinds) % 2:
        raise EditRejected(f"the '# {START}' / '# {END}' markers are missing, unpaired or nested")
    fixed, blocks, position = [], [], 0
    for start, end in zip(markers[::2], markers[1::2]):
        start_line_end = code.index("\n", start.end()) + 1 if "\n" in code[start.end():] else len(code)
        fixed.append(code[position:start_line_end])
        blocks.append(code[start_line_end:end.start()])
        position = end.start()
    fixed.append(code[position:])
    return fixed, blocks


def join_blocks(fixed: list[str], blocks: list[str]) -> str:
    parts = [fixed[0]]
    for body, tail in zip(blocks, fixed[1:]):
        parts += [body if body.endswith("\n") or not body else body + "\n", tail]
    return "".join(parts)


def apply_edit(parent: str, edit: Edit) -> str:
    """The child program, or EditRejected saying why the edit cannot be used."""
    if bundle.is_bundle(parent):
        return _apply_to_bundle(parent, edit)
    if isinstance(edit, Rewrite):
        child = edit.code if not edit.files else edit.files[-1][1]
    elif isinstance(edit, SearchReplace):
        child = _apply_pairs(parent, edit.pairs)
    else:  # pragma: no cover - type checkers catch this
        raise EditRejected(f"unknown edit type {type(edit).__name__}")
    check_fixed_parts(parent, child)
    if child == parent:
        raise EditRejected("the edit leaves the program unchanged")
    return child


def _apply_to_bundle(parent: str, edit: Edit) -> str:
    """An edit of a multi-file program: each SEARCH/REPLACE and each rewritten file names its file."""
    files = {source.path: source for source in bundle.parse(parent)}
    editable = [source.path for source in files.values() if source.whole or START in source.text]
    try:
        if isinstance(edit, Rewrite):
            if edit.files:
                child = parent
                for path, text in edit.files:
                    child = bundle.replace_file(child, _known(path, files), text)
            elif bundle.is_bundle(edit.code):
                child = edit.code
            elif len(editable) == 1:
                child = bundle.replace_file(parent, editable[0], edit.code)
            else:
                raise EditRejected(f"the rewrite does not say which file it is; this program has several editable "
                                   f"files ({', '.join(editable)}): put the file name after the fence's language")
        elif isinstance(edit, SearchReplace):
            paths = edit.paths or (None,) * len(edit.pairs)
            if not edit.pairs:
                raise EditRejected("the diff has no SEARCH/REPLACE blocks")
            child = parent
            for number, (pair, path) in enumerate(zip(edit.pairs, paths), 1):
                if path is None:
                    child = _apply_pairs(child, (pair,), number)
                else:
                    current = {source.path: source for source in bundle.parse(child)}[_known(path, files)]
                    child = bundle.replace_file(child, path, _apply_pairs(current.text, (pair,), number, path))
        else:  # pragma: no cover - type checkers catch this
            raise EditRejected(f"unknown edit type {type(edit).__name__}")
    except bundle.BundleError as error:
        raise EditRejected(str(error)) from None
    check_fixed_parts(parent, child)
    if child == parent:
        raise EditRejected("the edit leaves the program unchanged")
    return child


def _known(path: str, files: dict) -> str:
    if path not in files:
        raise EditRejected(f"the edit names file {path!r}, which the program does not have "
                           f"(its files: {', '.join(files)})")
    return path


def _apply_pairs(parent: str, pairs: tuple[tuple[str, str], ...], first: int = 1, path: str | None = None) -> str:
    if not pairs:
        raise EditRejected("the diff has no SEARCH/REPLACE blocks")
    child = parent
    where = f"file {path}" if path else "the program"
    for number, (search, replace) in enumerate(pairs, first):
        if not search.strip():
            raise EditRejected(f"SEARCH block {number} is empty")
        if search not in child:
            raise EditRejected(f"SEARCH block {number} does not match {where} exactly: {search[:80]!r}")
        child = child.replace(search, replace, 1)
    return child


def check_fixed_parts(parent: str, child: str) -> None:
    if bundle.is_bundle(parent):
        _check_bundle(parent, child)
        return
    _check_one_file(parent, child, python=True)


def _check_bundle(parent: str, child: str) -> None:
    """Same files with the same headers; fixed files unchanged; marked files only inside their blocks."""
    try:
        after = bundle.parse(child)
    except bundle.BundleError as error:
        raise EditRejected(f"the edit breaks the program's file headers: {error}") from None
    before = bundle.parse(parent)
    if [f.header() for f in before] != [f.header() for f in after]:
        raise EditRejected("the edit adds, removes, renames or reorders files (the program's files are "
                           f"{', '.join(f.path for f in before)}); change only their editable parts")
    for old, new in zip(before, after):
        if old.whole:
            continue
        if START in old.text or END in old.text:
            try:
                _check_one_file(old.text, new.text, python=old.path.endswith(".py"))
            except EditRejected as error:
                raise EditRejected(f"file {old.path}: {error}") from None
        elif old.text != new.text:
            raise EditRejected(f"the edit changes file {old.path}, which has no EVOLVE-BLOCK and is fixed")


def _check_one_file(parent: str, child: str, python: bool) -> None:
    parent_fixed, parent_blocks = split_blocks(parent)
    try:
        child_fixed, child_blocks = split_blocks(child)
    except EditRejected as error:
        raise EditRejected(f"the edit breaks the EVOLVE-BLOCK markers: {error}") from None
    if len(child_blocks) != len(parent_blocks):
        raise EditRejected(f"the edit changes the number of EVOLVE-BLOCKs ({len(parent_blocks)} -> {len(child_blocks)})")
    for index, (before, after) in enumerate(zip(parent_fixed, child_fixed)):
        if before.strip() != after.strip():
            raise EditRejected(f"the edit changes code outside the EVOLVE-BLOCKs (fixed part {index + 1}): "
                               f"{_first_difference(before, after)}")
    rebound = _fixed_names_rebound(child) - _fixed_names_rebound(parent) if python else set()
    if rebound:
        raise EditRejected(f"the edit rebinds {', '.join(sorted(rebound))} inside an EVOLVE-BLOCK; "
                           "names the fixed code defines (the entry function among them) stay as they are")


@functools.lru_cache(maxsize=256)  # a parent is checked against each of its children: parse it once
def _fixed_names_rebound(code: str) -> frozenset[str]:
    """Module-level names the fixed parts bind that a block binds again (def, class, assignment, import, global).

    A block that redefines the fixed entry function, or anything else the fixed
    code defines, would replace fixed code without touching its text.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return frozenset()  # the sandbox reports the syntax error
    fixed, blocks = split_blocks(code)
    ranges, line = [], 1
    for head, body in zip(fixed, blocks):
        line += head.count("\n")
        ranges.append((line, line + body.count("\n") - 1))
        line += body.count("\n")
    in_block: set[str] = set()
    in_fixed: set[str] = set()
    for node in tree.body:
        inside = any(start <= node.lineno <= end for start, end in ranges)
        (in_block if inside else in_fixed).update(_bound_names(node, module_level=True))
    return frozenset(in_fixed & in_block)


def _bound_names(node: ast.AST, module_level: bool) -> set[str]:
    names: set[str] = set()
    if module_level:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.With,
                               ast.AsyncWith, ast.Delete, ast.NamedExpr)):
            names.update(target.id for target in ast.walk(node) if isinstance(target, ast.Name)
                         and isinstance(target.ctx, (ast.Store, ast.Del)))
    for child in ast.walk(node):
        if isinstance(child, (ast.Global, ast.Nonlocal)):
            names.update(child.names)  # a function that rebinds a module-level name
        elif module_level and isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store) \
                and isinstance(node, (ast.If, ast.Try, ast.While)):
            names.add(child.id)
    return names


def _first_difference(before: str, after: str) -> str:
    for line_before, line_after in zip(before.splitlines(), after.splitlines()):
        if line_before != line_after:
            return f"{line_before.strip()[:60]!r} became {line_after.strip()[:60]!r}"
    return "lines were added or removed"


def normalized_hash(code: str) -> str:
    """Same hash for programs that differ only in comments, blank lines or spacing.

    The program is compiled (C speed) and the hash covers its bytecode, names and
    constants but not its line numbers; code that does not compile falls back to
    its tokens without comments. A multi-file program: its text with spacing normalised.
    """
    if bundle.is_bundle(code):  # other languages: Python's tokenizer would take `#define` for a comment
        return hashlib.sha256(" ".join(code.split()).encode()).hexdigest()
    try:
        compiled = compile(code, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return hashlib.sha256(_strip_comments(code).encode()).hexdigest()
    digest = hashlib.sha256()
    _fingerprint(compiled, digest)
    return digest.hexdigest()


def _fingerprint(code: types.CodeType, digest: "hashlib._Hash") -> None:
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                        code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _fingerprint(const, digest)
        elif isinstance(const, frozenset):  # iteration order varies with the hash seed
            digest.update(repr(sorted(map(repr, const))).encode())
        else:
            digest.update(repr(const).encode())


def _strip_comments(code: str) -> str:
    try:
        tokens = [
            t.string for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)
        ]
        return " ".join(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return " ".join(code.split())
