"""evolve: LLM-driven program search against frozen verifiers.

Library use::

    import evolve

    result = evolve.run(["problem=circle_packing", "budget.evaluations=100"],
                        on_best=lambda program_id, score, code: print(score))
    print(result.best_score, result.run_dir)

    more = evolve.resume(result.run_dir, ["budget.evaluations=300"])

`run` takes hydra-style overrides, a composed config (`evolve.compose([...])`), or an
`evolve.Settings` built in Python (evolve/settings.py; no hydra involved);
`on_best(program_id, score, code)` is called on each new best. Inside a running
event loop, await `evolve.run_async` / `evolve.resume_async` instead.

Each of the engine's seams (evolve/seams.py) can be handed in as an instance in place
of the one the config makes::

    from evolve.db.memory import MemoryStore

    result = evolve.run(["problem=circle_packing"], proposer=my_proposer, sandbox=my_sandbox,
                        evaluator=my_evaluator, store=MemoryStore())

Bad input raises a subclass of `evolve.EvolveError` whose message says what to fix.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from evolve.proposers.base import Proposer
    from evolve.seams import Evaluator, Sandbox, Store
    from evolve.session import RunResult
    from evolve.settings import Settings

__all__ = ["run", "resume", "run_async", "resume_async", "compose", "RunResult", "EvolveError", "ConfigError",
           "ProblemError", "RunError", "Proposer", "Settings", "settings_from"]
__version__ = "0.1.0"

# Loaded on first use: verifiers and the certification worker import evolve.problem,
# and should not pay for the database, hydra and the engine at every start.
_LAZY = {
    "compose": ("evolve.config", "compose_config"),
    "EvolveError": ("evolve.errors", "EvolveError"),  # the base of every user error (see evolve/errors.py)
    "ConfigError": ("evolve.config", "ConfigError"),
    "ProblemError": ("evolve.problem", "ProblemError"),
    "Proposer": ("evolve.proposers.base", "Proposer"),
    "RunError": ("evolve.session", "RunError"),
    "RunResult": ("evolve.session", "RunResult"),
    "Settings": ("evolve.settings", "Settings"),
    "settings_from": ("evolve.settings", "settings_from"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'evolve' has no attribute {name!r}")


OnBest = Callable[[int, float, str], None]


async def run_async(config: DictConfig | Settings | Sequence[str] = (), on_best: OnBest | None = None,
                    proposer: Proposer | None = None, *, sandbox: Sandbox | None = None,
                    evaluator: Evaluator | None = None, store: Store | None = None) -> RunResult:
    from omegaconf import DictConfig

    from evolve.config import compose_config
    from evolve.session import start_run
    from evolve.settings import Settings, check

    if isinstance(config, Settings):
        cfg: DictConfig | Settings = check(config)  # built in Python: its types and values are checked here
    else:
        cfg = config if isinstance(config, DictConfig) else compose_config(list(config))
    return await start_run(cfg, on_best=on_best, proposer=proposer, sandbox=sandbox, evaluator=evaluator, store=store)


async def resume_async(run_dir: str | Path, overrides: Sequence[str] = (), on_best: OnBest | None = None,
                       proposer: Proposer | None = None) -> RunResult:
    from evolve.session import resume_run

    return await resume_run(Path(run_dir), list(overrides), on_best=on_best, proposer=proposer)


def run(config: DictConfig | Settings | Sequence[str] = (), on_best: OnBest | None = None,
        proposer: Proposer | None = None, *, sandbox: Sandbox | None = None,
        evaluator: Evaluator | None = None, store: Store | None = None) -> RunResult:
    """Start a search and run it to the end of its budget.

    Each seam given replaces the one the config would make (protocols in evolve/seams.py):
    - `proposer`: writes the edits (the configured LLM or offline mutator otherwise).
    - `sandbox`: runs the candidates; its `identity` is part of the run's evaluator identity.
    - `evaluator`: scores the candidates (otherwise the problem's verifier behind the sandbox);
      the run records its `evaluator_hash`, which every Evaluation it returns must carry.
    - `store`: keeps the run (otherwise the database the config names, `evolve.db` in the run
      directory). `evolve.db.memory.MemoryStore()` keeps it in memory: the run directory then
      holds only its config, and the run cannot be resumed, reported or rescored.
    The run closes each seam when it ends (a MemoryStore keeps its tables for reading).
    """
    return asyncio.run(run_async(config, on_best, proposer, sandbox=sandbox, evaluator=evaluator, store=store))


def resume(run_dir: str | Path, overrides: Sequence[str] = (), on_best: OnBest | None = None,
           proposer: Proposer | None = None) -> RunResult:
    """Continue a stored search; overrides may raise budgets (budget.*)."""
    return asyncio.run(resume_async(run_dir, overrides, on_best, proposer))
