"""A result, or a proposal, as one SQL statement on PostgreSQL: one round trip to the server.

As separate statements a result costs the writer 6 to 8 round trips (BEGIN, the program and its
id, the evaluation, the proposal and its id, the calls, the archive entries, the run's state,
COMMIT): on a server, the writer's time goes into waiting for them, not into work. PostgreSQL
runs data-modifying CTEs as one statement, atomic even in autocommit, so a result becomes

    WITH new_program AS (INSERT INTO programs ... RETURNING id),
         new_evaluation AS (INSERT INTO evaluations ... (SELECT id FROM new_program) ...), ...,
         run_state AS (UPDATE runs SET ...)
    SELECT id FROM new_program

Foreign keys between these rows hold: PostgreSQL checks them at the end of the statement.
SQLite runs no INSERT inside WITH: the store keeps separate statements in one transaction there.

Every column is given a value here (its Python default when the row leaves it out): an INSERT
inside WITH cannot have SQLAlchemy fill defaults in on its own. A statement is built once per
shape (which rows, which columns), with named parameters, and kept: SQLAlchemy then compiles it
once, and each result only fills in the values.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import CTE, Select, Table, bindparam, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from evolve.db.models import Certificate, Evaluation, IslandMember, LLMCall, Program, Proposal, Run
from evolve.db.rows import Row

_TABLES: dict[str, Table] = {model.__name__: model.__table__  # type: ignore[attr-defined]
                             for model in (Program, Evaluation, Proposal, LLMCall, IslandMember, Certificate, Run)}

# One part of a statement: (model, parameter prefix, the row's columns in order); a shape is a tuple of parts.
Part = tuple[str, str, tuple[str, ...]]


def _complete(table: Table, row: Row) -> Row:
    """The row's values for the table's columns, and each missing column's default."""
    full: Row = {}
    for column in table.c:
        if column.name in row:
            full[column.name] = row[column.name]
        elif column.default is not None:
            default = column.default.arg  # type: ignore[attr-defined]
            full[column.name] = default(None) if column.default.is_callable else default  # type: ignore[operator]
    return full


class OneStatement:
    """Builds (once per shape) and fills in the single statement of a result or a proposal."""

    def __init__(self) -> None:
        self._built: dict[tuple[Any, ...], Select[Any]] = {}

    def result(self, run_state: Row, program: Row, evaluation: Row, proposal: Row | None, calls: Iterable[Row],
               members: Iterable[Row], point_here: tuple[str, ...], challenge: Row | None
               ) -> tuple[Select[Any], Row]:
        """Store.store_result's writes as one statement and its parameters; it returns the new program's id."""
        parts: list[tuple[str, str, Row]] = [("Program", "program", program), ("Evaluation", "evaluation", evaluation)]
        if proposal is not None:
            parts.append(("Proposal", "proposal", proposal))
            parts += [("LLMCall", f"call{index}", call) for index, call in enumerate(calls)]
        parts += [("IslandMember", f"member{index}", member) for index, member in enumerate(members)]
        if challenge is not None:
            parts.append(("Certificate", "challenge", challenge))
        return self._filled(("result", point_here), parts, program["run_id"], run_state)

    def proposal(self, run_state: Row, proposal: Row, calls: Iterable[Row]) -> tuple[Select[Any], Row]:
        """Store.store_proposal's writes (a proposal with no new program) as one statement and its parameters."""
        parts = [("Proposal", "proposal", proposal)]
        parts += [("LLMCall", f"call{index}", call) for index, call in enumerate(calls)]
        return self._filled(("proposal", ()), parts, proposal["run_id"], run_state)

    def _filled(self, kind: tuple[str, tuple[str, ...]], parts: list[tuple[str, str, Row]], run_id: int,
                run_state: Row) -> tuple[Select[Any], Row]:
        rows = [(model, prefix, _complete(_TABLES[model], row)) for model, prefix, row in parts]
        shape = (*kind, tuple(run_state), *((model, prefix, tuple(row)) for model, prefix, row in rows))
        statement = self._built.get(shape)
        if statement is None:
            statement = self._built[shape] = _build(kind, [(m, p, tuple(r)) for m, p, r in rows], tuple(run_state))
        parameters = {f"{prefix}_{name}": value for _, prefix, row in rows for name, value in row.items()}
        parameters.update({f"state_{name}": value for name, value in run_state.items()}, run_id_=run_id)
        return statement, parameters


def _build(kind: tuple[str, tuple[str, ...]], parts: list[Part], state: tuple[str, ...]) -> Select[Any]:
    """The statement of one shape: the first part's INSERT returns the id its followers refer to."""
    (what, point_here) = kind
    ctes: list[CTE] = []
    program_id: ColumnElement[Any] | None = None
    proposal_id: ColumnElement[Any] | None = None
    for model, prefix, columns in parts:
        table = _TABLES[model]
        values: dict[str, Any] = {name: bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in columns}
        if model != "Program" and model != "LLMCall" and program_id is not None:
            values["program_id"] = program_id  # the new program's id, which the store fills in
        if model == "LLMCall":
            values["proposal_id"] = proposal_id
        statement = insert(table).values(values)
        if model in ("Program", "Proposal"):
            cte = statement.returning(table.c.id).cte(f"new_{prefix}")
            if model == "Program":
                program_id = select(cte.c.id).scalar_subquery()
            else:
                proposal_id = select(cte.c.id).scalar_subquery()
        else:
            cte = statement.cte(f"new_{prefix}")
        ctes.append(cte)
    runs = _TABLES["Run"]
    new_state: dict[str, Any] = {name: bindparam(f"state_{name}", type_=runs.c[name].type) for name in state}
    new_state.update({name: program_id for name in point_here})
    ctes.append(update(runs).where(runs.c.id == bindparam("run_id_")).values(new_state).cte("run_state"))
    return select(ctes[0].c.id).add_cte(*ctes[1:])
