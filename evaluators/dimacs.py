"""DIMACS CNF: a strict parser for real-world files, a writer, and a canonical hash.

Accepted: comment lines (`c ...`), blank lines, any whitespace (tabs, runs of
spaces, CRLF), clauses that span lines or share one, and SATLIB's trailer (a
line `%` after which everything is ignored). Rejected with a `DimacsError`
that names the line: a missing, repeated or malformed `p cnf` header, clauses
before the header, tokens that are not integers, literals outside
1..num_vars, a last clause without its terminating 0, and a clause count that
differs from the header's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence


class DimacsError(ValueError):
    """A malformed DIMACS file; the message says where and what."""


@dataclass(frozen=True)
class Cnf:
    num_vars: int
    clauses: tuple[tuple[int, ...], ...]
    comments: tuple[str, ...] = ()


def parse_dimacs(text: str, source: str = "<text>") -> Cnf:
    """Parse DIMACS CNF text; `source` names the file in error messages."""
    header: tuple[int, int] | None = None
    clauses: list[tuple[int, ...]] = []
    comments: list[str] = []
    current: list[int] = []
    current_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("%"):  # SATLIB trailer: '%' then a stray '0'
            break
        if line.startswith("c"):
            comments.append(line[1:].strip())
            continue
        if line.startswith("p"):
            if header is not None:
                raise DimacsError(f"{source}:{number}: a second 'p cnf' header; a file has exactly one")
            header = _header(line, source, number)
            continue
        if header is None:
            raise DimacsError(f"{source}:{number}: clause data before the 'p cnf <vars> <clauses>' header")
        for token in line.split():
            try:
                literal = int(token)
            except ValueError:
                raise DimacsError(f"{source}:{number}: {token[:20]!r} is not an integer literal") from None
            if literal == 0:
                clauses.append(tuple(current))
                current = []
                continue
            if abs(literal) > header[0]:
                raise DimacsError(
                    f"{source}:{number}: literal {literal} is outside 1..{header[0]} (the header's variable count)"
                )
            if not current:
                current_line = number
            current.append(literal)
    if header is None:
        raise DimacsError(f"{source}: no 'p cnf <vars> <clauses>' header found")
    if current:
        raise DimacsError(f"{source}:{current_line}: the last clause is not terminated by 0")
    if len(clauses) != header[1]:
        raise DimacsError(f"{source}: the header declares {header[1]} clauses but the file has {len(clauses)}")
    return Cnf(header[0], tuple(clauses), tuple(comments))


def read_dimacs(path: str | Path) -> Cnf:
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as error:
        raise DimacsError(f"{path}: not an ASCII text file (byte {error.start})") from None
    return parse_dimacs(text, str(path))


def _header(line: str, source: str, number: int) -> tuple[int, int]:
    fields = line.split()
    if len(fields) != 4 or fields[0] != "p" or fields[1] != "cnf":
        raise DimacsError(f"{source}:{number}: expected 'p cnf <vars> <clauses>', got {line[:60]!r}")
    try:
        num_vars, num_clauses = int(fields[2]), int(fields[3])
    except ValueError:
        raise DimacsError(f"{source}:{number}: header counts must be integers, got {line[:60]!r}") from None
    if num_vars < 0 or num_clauses < 0:
        raise DimacsError(f"{source}:{number}: header counts must not be negative, got {line[:60]!r}")
    return num_vars, num_clauses


def to_dimacs(num_vars: int, clauses: Iterable[Sequence[int]], comments: Iterable[str] = ()) -> str:
    """DIMACS text in one canonical layout: comments, header, one clause per line."""
    body = [" ".join(str(literal) for literal in clause) + (" 0" if clause else "0") for clause in clauses]
    head = [f"c {comment}".rstrip() for comment in comments]
    return "\n".join([*head, f"p cnf {num_vars} {len(body)}", *body]) + "\n"


def instance_hash(num_vars: int, clauses: Iterable[Sequence[int]]) -> str:
    """sha256 of the canonical text (no comments): ties a label to exactly one formula."""
    return hashlib.sha256(to_dimacs(num_vars, clauses).encode()).hexdigest()
