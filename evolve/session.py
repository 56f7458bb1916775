"""Wiring: turn a config into a running search, new or resumed.

This is the one place that knows every part; each part knows only its own job.
`start_run` refuses to reuse a run directory; `resume_run` refuses a directory
that is not a run, a database of another version, or an evaluator that changed.
Nothing is written before every check has passed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig
from sqlalchemy.exc import DBAPIError

from evolve import seams
from evolve.config import ConfigError, load_saved, moved_problem, stored_config, to_yaml
from evolve.db import models
from evolve.db.store import Store, StoreError, database_error, open_store, sqlite_url
from evolve.db.urls import check_url
from evolve.engine import Engine
from evolve.errors import EvolveError
from evolve.evaluation import Evaluator
from evolve.paths import resolve
from evolve.problem import SANDBOX_PART, IdentityDiff, check_evolvable, compare_identity, identity_hash, load_problem
from evolve.problem_source import current_problem, locate
from evolve.proposers.base import Proposer
from evolve.proposers.factory import make_proposer
from evolve.recorder import BestCallback, Recorder
from evolve.runlock import RunDirUnwritable, RunLocked, run_lock
from evolve.sandbox.base import EventSource
from evolve.sandbox.factory import limits_from, make_sandbox
from evolve.settings import Settings, settings_from, to_config

log = logging.getLogger("evolve")
CONFIG_FILE = "config.yaml"
RUN_ID_FILE = "run-id"  # which run of the database is this directory's (a shared database holds several)


class RunError(EvolveError, RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str  # finished | interrupted
    reason: str
    evaluations: int
    seed_score: float | None
    best_score: float | None
    best_program_id: int | None
    notices: tuple[str, ...] = ()  # alarms in words (held-out, ...), for the summary
    alarms: int = 0  # held-out divergence alarms (and unsound certificates) raised so far


def default_run_dir(cfg: DictConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{cfg.problem.name}-{stamp}"


def sandbox_label(run_dir: Path) -> str:
    """The label a run's sandbox puts on what it starts (containers), unique to this run directory.

    The folder name alone is not: `A/same` and `B/same` would clean up each other's containers.
    """
    digest = hashlib.sha256(str(run_dir.expanduser().resolve()).encode()).hexdigest()[:12]
    return f"{run_dir.name}-{digest}"


def build_sandbox(cfg: Settings, run_dir: Path, used: str | None = None) -> seams.Sandbox:
    """This machine's sandbox tier, or the Ray cluster's nodes when `cluster.address` names one
    (`used`: the sandbox identity the run had, so a resumed run keeps its nodes' tier). The cluster
    sandbox owns the run's watcher of the cluster's nodes (`RaySandbox.registry`), which
    `_verify_on_nodes` lends to the node verifiers."""
    if not cfg.cluster.address:
        return make_sandbox(cfg, sandbox_label(run_dir))
    from evolve.cluster.sandbox import RaySandbox

    prefer = used.removeprefix("ray:") if used and used.startswith("ray:") else None
    return RaySandbox(cfg, sandbox_label(run_dir), prefer)


def stored_run_id(run_dir: Path) -> int | None:
    """The id the run directory's database gives its run; None without the file (the database's first run)."""
    path = run_dir / RUN_ID_FILE
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if not text.isdigit():
        raise RunError(f"{path} holds {text[:40]!r}, not a run id: write the run's number into it, or delete it "
                       "to use the database's first run")
    return int(text)


def saved_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config a run directory saved (with resumable overrides), or RunError if it is not one."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); start one with `evolve run`")
    return load_saved(path, overrides)


def open_run(run_dir: Path, cfg: DictConfig | Settings) -> tuple[Store, models.Run]:
    """The run's database and its run row; RunError if either is missing or of another version."""
    run_id = stored_run_id(run_dir)
    try:
        store = open_store(database_url(cfg, run_dir))
    except StoreError as error:
        raise RunError(str(error)) from None
    try:
        return store, store.load_run(run_id)
    except (StoreError, DBAPIError) as error:
        store.close()
        message = str(database_error(error, store.url)) if isinstance(error, DBAPIError) else str(error)
        raise RunError(message) from None


def is_database_url(target: str | Path) -> bool:
    return "://" in str(target)


def open_target(target: str | Path, run_id: int | None = None) -> tuple[DictConfig, Store, models.Run]:
    """A run named by its directory, or by its database's URL (from any machine; `run_id` picks one of
    several, else the first). Without the directory, the config is the one stored with the run."""
    if not is_database_url(target):
        run_dir = Path(target)
        cfg = saved_config(run_dir)
        return (cfg, *open_run(run_dir, cfg))
    url = str(target)
    try:
        store = open_store(url)
    except StoreError as error:
        raise RunError(str(error)) from None
    try:
        run = store.load_run(run_id)
        return stored_config(run.config_yaml, f"run {run.id}"), store, run
    except (StoreError, ConfigError, DBAPIError) as error:
        store.close()
        raise RunError(str(database_error(error, url)) if isinstance(error, DBAPIError) else str(error)) from None


def database_url(cfg: DictConfig | Settings, run_dir: Path) -> str:
    return cfg.database.url or sqlite_url(run_dir)


async def start_run(config: DictConfig | Settings, on_best: BestCallback | None = None,
                    on_progress: Callable[[Recorder], None] | None = None,
                    proposer: Proposer | None = None, sandbox: seams.Sandbox | None = None,
                    evaluator: seams.Evaluator | None = None, store: seams.Store | None = None) -> RunResult:
    """A new run. Each seam given replaces the one the config makes (see `evolve.run`).

    The hydra form of the config is what the run directory stores; the core gets the frozen
    Settings made from it here, once.
    """
    cfg = to_config(config) if isinstance(config, Settings) else config
    run_dir = Path(cfg.run.dir) if cfg.run.dir else default_run_dir(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"run.dir={run_dir} is a file, not a folder; choose another place with run.dir=PATH")
    if (run_dir / CONFIG_FILE).exists():
        raise RunError(f"{run_dir} already holds a run; continue it with `evolve resume {run_dir}`")
    if cfg.problem.file:
        locate(cfg.problem, resolve(cfg.problem.file), run_dir)  # so that resume finds a folder that moved
    cfg.run.dir = str(run_dir)
    settings = settings_from(cfg)
    problem = load_problem(settings)
    check_evolvable(problem, problem.seed_path or cfg.problem.seed_program)
    check_url(database_url(cfg, run_dir))  # a bad database.url fails here, before anything is written
    proposer = proposer or make_proposer(settings)  # a missing API key fails here, before anything is written
    await _preflight(proposer)
    if sandbox is None:  # an unavailable sandbox (or cluster) fails here, before anything is written
        sandbox = build_sandbox(settings, run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        await sandbox.close()
        raise RunError(f"cannot create the run directory {run_dir}: {error.strerror or error}; choose a "
                       "writable place with run.dir=PATH") from None
    try:
        return await _start_locked(cfg, settings, run_dir, problem, sandbox, on_best, on_progress, proposer,
                                   evaluator, store)
    except RunDirUnwritable:
        await sandbox.close()
        raise


async def _start_locked(cfg: DictConfig, settings: Settings, run_dir: Path, problem, sandbox: seams.Sandbox,
                        on_best: BestCallback | None,
                        on_progress: Callable[[Recorder], None] | None, proposer: Proposer,
                        evaluator: seams.Evaluator | None, store: seams.Store | None) -> RunResult:
    with run_lock(run_dir):
        if store is None:  # before the config is saved: a database that cannot be used leaves no run behind
            try:
                store = Store(database_url(cfg, run_dir), create=True)
            except StoreError as error:
                await sandbox.close()
                raise RunError(str(error)) from None
        (run_dir / CONFIG_FILE).write_text(to_yaml(cfg))
        parts = problem.identity_parts(sandbox.identity)
        # An evaluator given by the caller scores under its own hash: the run's evaluations must share one.
        evaluator_hash = evaluator.evaluator_hash if evaluator is not None else identity_hash(parts)
        run = store.create_run(models.Run(problem=problem.name, config_yaml=to_yaml(cfg),
                                          evaluator_hash=evaluator_hash, evaluator_parts=json.dumps(parts)))
        if isinstance(store, Store):
            store.hold_run(run.id)  # type: ignore[arg-type]
        (run_dir / RUN_ID_FILE).write_text(str(run.id))
        return await _drive(settings, run_dir, problem, store, run, sandbox, on_best, on_progress, proposer,
                            evaluator)


async def resume_run(run_dir: Path, overrides: list[str] | tuple[str, ...] = (),
                     on_best: BestCallback | None = None,
                     on_progress: Callable[[Recorder], None] | None = None,
                     proposer: Proposer | None = None) -> RunResult:
    cfg = saved_config(run_dir, overrides)
    cfg.run.dir = str(run_dir)
    cfg.problem = current_problem(cfg.problem, run_dir, moved_problem(overrides)[0])  # edited? moved?
    settings = settings_from(cfg)
    problem = load_problem(settings)
    proposer = proposer or make_proposer(settings)
    with run_lock(run_dir):
        await _preflight(proposer)
        store, run = open_run(run_dir, cfg)
        try:  # a copy of this directory on another machine may drive the run from the same server
            store.hold_run(run.id)  # type: ignore[arg-type]
        except RunLocked:
            store.close()
            raise
        try:
            sandbox = build_sandbox(settings, run_dir, json.loads(run.evaluator_parts).get(SANDBOX_PART))
        except BaseException:  # no sandbox or cluster: the database is let go (and its run lock with it)
            store.close()
            raise
        parts = problem.identity_parts(sandbox.identity)
        diff = compare_identity(json.loads(run.evaluator_parts), parts)
        if diff.changes:
            await sandbox.close()
            store.add_event(run.id, "drift_refused", changes=diff.changes)  # type: ignore[arg-type]
            store.close()
            raise RunError(f"the evaluator changed since this run started ({diff.changes}); its scores would not "
                           "be comparable. Restore the original files and resume, adopt the change on purpose with "
                           f"`evolve rescore {run_dir}` (a new epoch), or start a new run")
        _adopt_identity(store, run, diff, parts)
        (run_dir / CONFIG_FILE).write_text(to_yaml(cfg))  # budgets, sandbox or the problem's place may have changed
        return await _drive(settings, run_dir, problem, store, run, sandbox, on_best, on_progress, proposer)


def _adopt_identity(store: Store, run: models.Run, diff: IdentityDiff, parts: dict[str, str]) -> None:
    """What may differ between sessions without changing the scores, recorded.

    The sandbox (sandbox=auto finding Docker up or down, a rebuilt image): the verifier, its data
    and settings decide the scores, the sandbox only runs the candidate. File names (a moved
    problem folder, same contents). Parts a newer evolve covers that the run's identity predates.
    The run keeps its evaluator hash: its evaluations stay one epoch.
    """
    if diff.sandbox is not None:
        log.warning("the sandbox changed since the last session: %s -> %s (recorded as an event)", *diff.sandbox)
        store.add_event(run.id, "sandbox_changed", old=diff.sandbox[0], new=diff.sandbox[1])  # type: ignore[arg-type]
    if diff.adopted:
        adopted = {key: parts[key] for key in diff.adopted}
        store.add_event(run.id, "identity_extended", parts=adopted)  # type: ignore[arg-type]
    if diff.sandbox is not None or diff.adopted or diff.relabelled:
        run.evaluator_parts = json.dumps(parts)
        store.save_run(run.id, evaluator_parts=run.evaluator_parts)  # type: ignore[arg-type]


async def _drive(cfg: Settings, run_dir: Path, problem, store: seams.Store, run: models.Run, sandbox: seams.Sandbox,
                 on_best: BestCallback | None, on_progress: Callable[[Recorder], None] | None,
                 proposer: Proposer, evaluator: seams.Evaluator | None = None) -> RunResult:
    if run.proposer_state:
        proposer.restore(json.loads(run.proposer_state))
    recorder = Recorder(cfg, problem, store, run, proposer.state, on_best)
    sandbox_identity = sandbox.identity
    if evaluator is None:
        evaluator = Evaluator(problem, sandbox, limits_from(cfg), run.evaluator_hash,
                              cfg.verification.verifier_timeout)
        if cfg.cluster.address:  # judged on the nodes if the problem opts in (checked here, before any work)
            await _verify_on_nodes(cfg, problem, evaluator, sandbox_identity, sandbox, store, recorder)
    engine = Engine(cfg, problem, proposer, evaluator, recorder, on_progress,
                    identity=lambda: problem.identity_parts(sandbox_identity, on_disk=True))
    if cfg.cluster.address:
        from evolve.cluster.certify import cluster_certifier

        engine.certifier = await cluster_certifier(cfg, engine.certifier, recorder.event)  # Z3 calls as tasks
    interrupted = _on_signals(engine)
    await recorder.event("session_start", evaluations=recorder.evaluations)
    if isinstance(sandbox, EventSource):  # a cluster reports its nodes joining, refused or lost
        await sandbox.listen(recorder.event)
    status, reason, writable = "failed", "", True
    try:
        reason = await engine.run()
        status = "interrupted" if interrupted() else "finished"
        reason = "interrupted" if interrupted() else reason
    except DBAPIError as error:  # the database refused a write: say so in one line; what is stored stays
        writable = False
        recorder.executor.shutdown(wait=False, cancel_futures=True)  # queued writes would each wait out the lock
        raise RunError(f"{database_error(error, store.url)}; the run stopped with everything stored up to "
                       f"then; continue it with `evolve resume {run_dir}`") from None
    except BaseException as error:
        reason = _first_line(error)  # `evolve status` shows why the session failed
        raise
    finally:
        _restore_signals()
        evaluator.close()
        await asyncio.gather(sandbox.close(), proposer.close(), return_exceptions=True)
        if writable:
            await recorder.event("session_end", status=status, reason=reason, evaluations=recorder.evaluations)
            await recorder.finish(status)
        store.close()
    return RunResult(run_dir, status, reason, recorder.evaluations, recorder.seed_score, recorder.best_score,
                     recorder.best_id, tuple(recorder.notices), recorder.alarms)


async def _verify_on_nodes(cfg: Settings, problem, evaluator: Evaluator, sandbox_identity: str,
                           sandbox: seams.Sandbox, store: seams.Store, recorder: Recorder) -> None:
    """Swap the evaluator's judge for the nodes' verifiers when this run verifies on nodes.

    Swapped, not passed in: evaluation.py's code is part of every run's evaluator identity.
    The verifiers hear of nodes joining from the cluster sandbox's registry: one watcher of the
    cluster per run (a sandbox given by the caller has none; the verifiers then watch on their own).
    """
    from evolve.cluster.sandbox import RaySandbox
    from evolve.cluster.verify import node_verifiers

    registry = sandbox.registry if isinstance(sandbox, RaySandbox) else None
    try:
        judge = await node_verifiers(cfg, problem, sandbox_identity, recorder.event, registry)
    except BaseException:
        await sandbox.close()
        store.close()
        raise
    if judge is not None:
        evaluator.verifier = judge  # type: ignore[assignment]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def _preflight(proposer: Proposer) -> None:
    """Proposers that talk to a server check it answers before the run begins (optional)."""
    check = getattr(proposer, "preflight", None)
    if check is not None:
        await check()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signals(engine: Engine) -> Callable[[], bool]:
    """Ctrl-C / SIGTERM stop the engine cleanly; what was complete is already stored."""
    seen: list[int] = []

    def handler(signum: int) -> None:
        seen.append(signum)
        engine.stop()

    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the embedding application handles signals
    return lambda: bool(seen)


def _restore_signals() -> None:
    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        try:
            loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


__all__ = ["RunLocked", "RunError", "RunResult", "start_run", "resume_run", "ConfigError"]
