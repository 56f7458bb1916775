"""A stop must reach every task: no `asyncio.wait_for` in the engine's code.

On Python 3.11 `asyncio.wait_for` returns its awaitable's result when a cancellation (Ctrl-C,
`evolve` stopping its tasks) arrives just as that awaitable finishes, and drops the cancellation.
A sandbox job finishing at the moment of a Ctrl-C then left its evaluation task waiting for
work that never came, and `evolve run` never exited (seen under load in
tests/test_cli.py::test_a_run_in_use_by_another_process_is_not_touched). `asyncio.timeout`
has no such gap.

evolve/certification.py still has one: it is part of every certifying run's evaluator identity,
so changing it makes those runs' resume refuse until rescored; it changes with the next change
that moves that identity anyway.
"""

from __future__ import annotations

import ast
from pathlib import Path

import evolve

PACKAGE = Path(evolve.__file__).parent
ALLOWED = {PACKAGE / "certification.py"}


def wait_for_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "wait_for"
            and isinstance(node.value, ast.Name) and node.value.id == "asyncio"]


def test_the_engine_bounds_its_waits_with_asyncio_timeout_not_wait_for() -> None:
    found = {str(path.relative_to(PACKAGE.parent)): lines for path in sorted(PACKAGE.rglob("*.py"))
             if path not in ALLOWED and (lines := wait_for_calls(path))}
    assert found == {}


def test_the_check_sees_a_wait_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\n\nasync def f(x):\n    return await asyncio.wait_for(x, 1)\n")
    assert wait_for_calls(sample) == [4]
