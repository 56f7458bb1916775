"""The store owns all SQL: no module outside evolve/db/ (and the report's read-only source) writes a statement,
raw or through SQLAlchemy's builders. A new one elsewhere fails here, naming the file and line."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import evolve

PACKAGE = Path(evolve.__file__).parent
# The report opens a run database read-only (its own engine, mode=ro) and keeps its queries there.
ALLOWED = ("db/", "report/source.py")

# Upper case, as statements are written; prose in docstrings and messages is lower case.
STATEMENT = re.compile(r"\b(SELECT\s.*\bFROM\b|SELECT\s+(COUNT|MAX|MIN|SUM)\(|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|"
                       r"DELETE\s+FROM\b|CREATE\s+(TABLE|INDEX)\b|ALTER\s+TABLE\b|DROP\s+TABLE\b|PRAGMA\s)", re.S)
BUILDERS = re.compile(r"^[ \t]*from\s+(sqlalchemy|sqlmodel)(\.\w+)*\s+import\s+[^\n]*\b(select|insert|update|delete|text|"
                      r"Session)\b", re.M)
FSTRING_START, FSTRING_END = (getattr(tokenize, name, None) for name in ("FSTRING_START", "FSTRING_END"))


def literals(source: str) -> list[tuple[int, str]]:
    """(first line, text) of each string literal; adjacent ones ("SELECT a " "FROM b") are one, as to Python."""
    found: list[tuple[int, str]] = []
    joining, depth = False, 0  # depth: inside an f-string (Python 3.12+ splits them into tokens)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == FSTRING_START:
            depth += 1
        if token.type == tokenize.STRING or depth:
            if joining:
                found[-1] = (found[-1][0], found[-1][1] + token.string)
            else:
                found.append((token.start[0], token.string))
            joining = True
        elif token.type not in (tokenize.NL, tokenize.COMMENT):
            joining = False
        if token.type == FSTRING_END:
            depth -= 1
    return found


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, text) of every SQL statement in a module's string literals and every import of a statement builder."""
    found = [(source.count("\n", 0, m.start()) + 1, m.group(0).strip()) for m in BUILDERS.finditer(source)]
    found += [(line, text[:80]) for line, text in literals(source) if STATEMENT.search(text)]
    return sorted(found)


def test_no_module_outside_the_store_writes_sql() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name.startswith(ALLOWED):
            continue
        offenders += [f"evolve/{name}:{line}: {text}" for line, text in sql_in(path.read_text())]
    assert offenders == [], "SQL outside evolve/db/ (add a store method instead):\n" + "\n".join(offenders)


def test_the_detector_finds_statements_in_every_form_they_take() -> None:
    source = '''
from sqlalchemy import text, update
rows = store.query("SELECT island, COUNT(*) "
                   "FROM island_members WHERE run_id=:run")
n = query(f"SELECT COUNT(*) FROM {table}")
connection.execute("UPDATE runs SET status='x'")
connection.execute("""DELETE
    FROM events""")
'''
    assert [line for line, _ in sql_in(source)] == [2, 3, 5, 6, 7]
    assert sql_in('"""Select the best program from each island; update the runs."""\nx = "selection"\n') == []


def test_the_store_itself_is_seen_by_the_detector() -> None:
    """The search covers the modules that do hold SQL (it would find a statement moved out of them)."""
    assert sql_in((PACKAGE / "db" / "reads.py").read_text())
    assert sql_in((PACKAGE / "db" / "store.py").read_text())
