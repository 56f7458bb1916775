"""The four seams of the engine, as protocols: what the core needs of each part it does not own.

- `Proposer` (evolve/proposers/base.py): turns a parent and its context into an edit.
  The LLM proposer and the offline mutator implement it.
- `Sandbox` (evolve/sandbox/base.py): runs a candidate on case inputs, isolated, and
  says what its scores may depend on (`identity`). Process, bubblewrap and Docker implement it.
- `Evaluator` (below): scores a candidate on a split. `evolve.evaluation.Evaluator` runs it in
  a Sandbox and judges its outputs with the problem's verifier on the host.
- `Store` (below): keeps a run. `evolve.db.store.Store` (SQLite / PostgreSQL) is the one runs use;
  `evolve.db.memory.MemoryStore` keeps a run in dicts, for tests and embedding.

`evolve.run(...)` accepts an instance of each (evolve/__init__.py). The engine and recorder are
written against these protocols only; `evolve status`, `report` and `rescore` read a stored run and
use the SQL store's summaries (evolve/db/reads.py) directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol

from evolve.proposers.base import Proposer
from evolve.sandbox.base import Sandbox

if TYPE_CHECKING:
    from evolve.db import models
    from evolve.db.records import PendingChallenge
    from evolve.db.rows import Row
    from evolve.evaluation import Evaluation

__all__ = ["Evaluator", "Proposer", "Sandbox", "Store"]


class Evaluator(Protocol):
    """Scores candidates. Every Evaluation it returns carries `evaluator_hash`."""

    evaluator_hash: str  # the identity of what the scores depend on (a run's evaluations share one)

    async def evaluate(self, code: str, split: str) -> "Evaluation": ...

    def fault(self, split: str, reason: str) -> "Evaluation":
        """An invalid result for a program that could not be scored (the verifier failed)."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """What a run's engine and recorder need of its storage.

    Writes that belong together (a result and the run's counters, a duel and its decision,
    one certification step) are one call each, so an implementation can make each atomic.
    Rows are the dicts evolve/db/rows.py builds; reads return the models' rows or
    evolve/db/records.py's records. Calls come from one worker thread, in order.
    """

    url: str  # where the run is kept, for messages

    def close(self) -> None: ...

    # runs
    def create_run(self, run: "models.Run") -> "models.Run": ...
    def load_run(self, run_id: int | None = None) -> "models.Run": ...
    def save_run(self, run_id: int, **fields: Any) -> None: ...

    # results
    def store_result(self, run_state: "Row", program: "Row", evaluation: "Row", proposal: "Row | None",
                     calls: Iterable["Row"] = (), members: Iterable["Row"] = (), point_here: tuple[str, ...] = (),
                     challenge: "Row | None" = None) -> int: ...
    def store_proposal(self, run_state: "Row", proposal: "Row", calls: Iterable["Row"] = ()) -> None: ...
    def store_evaluation(self, evaluation: "Row") -> None: ...
    def store_duel(self, run_id: int, rows: list["Row"], run_fields: "Row", **decision: Any) -> None: ...
    def add_event(self, run_id: int, kind: str, **data: Any) -> None: ...

    # certification
    def certification_step(self, run_id: int, rows: Iterable["Row"], resolve: tuple[int, str] | None = None,
                           rescore: "Row | None" = None, run: "Row | None" = None) -> list[int]: ...
    def mark_unsound(self, certificate_id: int, run_id: int, **data: Any) -> None: ...
    def pending_challenges(self, run_id: int, epoch: int) -> list["PendingChallenge"]: ...
    def champion_certificate(self, run_id: int, program_id: int) -> "models.Certificate | None": ...
    def unsound_certificates(self, run_id: int) -> list["models.Certificate"]: ...

    # islands
    def add_members(self, members: list["Row"], event_kind: str, run_id: int, **data: Any) -> None: ...
    def reset_island(self, run_id: int, island: int, members: list["Row"], **data: Any) -> None: ...
    def active_members(self, run_id: int, island: int,
                       limit: int) -> list[tuple["models.IslandMember", "models.Program", str]]: ...

    # reads
    def program(self, program_id: int) -> "models.Program | None": ...
    def code_hashes(self, run_id: int) -> dict[str, int]: ...
    def events(self, run_id: int, kinds: tuple[str, ...]) -> list[tuple[str, dict]]: ...
    def evaluations(self, program_id: int, epoch: int) -> list["models.Evaluation"]: ...
    def search_evaluation(self, program_id: int, epoch: int) -> "models.Evaluation | None": ...
