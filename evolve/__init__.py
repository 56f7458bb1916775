"""evolve: LLM-driven program search against frozen verifiers.

Library use::

    import evolve

    result = evolve.run(["problem=circle_packing", "budget.evaluations=100"],
                        on_best=lambda program_id, score, code: print(score))
    print(result.best_score, result.run_dir)

    more = evolve.resume(result.run_dir, ["budget.evaluations=300"])

`run` takes hydra-style overrides or a composed config (`evolve.compose([...])`);
`on_best(program_id, score, code)` is called on each new best. Inside a running
event loop, await `evolve.run_async` / `evolve.resume_async` instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig

from evolve.config import ConfigError, compose_config as compose
from evolve.problem import ProblemError
from evolve.proposers.base import Proposer
from evolve.session import RunError, RunResult, resume_run, start_run

__all__ = ["run", "resume", "run_async", "resume_async", "compose", "RunResult", "ConfigError", "ProblemError",
           "RunError", "Proposer"]
__version__ = "0.1.0"

OnBest = Callable[[int, float, str], None]


async def run_async(config: DictConfig | Sequence[str] = (), on_best: OnBest | None = None,
                    proposer: Proposer | None = None) -> RunResult:
    cfg = config if isinstance(config, DictConfig) else compose(list(config))
    return await start_run(cfg, on_best=on_best, proposer=proposer)


async def resume_async(run_dir: str | Path, overrides: Sequence[str] = (), on_best: OnBest | None = None,
                       proposer: Proposer | None = None) -> RunResult:
    return await resume_run(Path(run_dir), list(overrides), on_best=on_best, proposer=proposer)


def run(config: DictConfig | Sequence[str] = (), on_best: OnBest | None = None,
        proposer: Proposer | None = None) -> RunResult:
    """Start a search and run it to the end of its budget.

    `proposer` replaces the configured one (any object with the Proposer protocol).
    """
    return asyncio.run(run_async(config, on_best, proposer))


def resume(run_dir: str | Path, overrides: Sequence[str] = (), on_best: OnBest | None = None,
           proposer: Proposer | None = None) -> RunResult:
    """Continue a stored search; overrides may raise budgets (budget.*)."""
    return asyncio.run(resume_async(run_dir, overrides, on_best, proposer))
