"""`evolve status`: what a run has done, read from its database alone."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evolve.db.models import Run
from evolve.db.store import Store
from evolve.runlock import is_running, lock_holder
from evolve.session import is_database_url, open_target


# Events `evolve status` lists as alarms, each with what it compared and what to do.
ALARM_EVENTS = ("heldout_divergence", "heldout_failed", "nondeterministic", "drift", "drift_refused",
                "verifier_error", "certificate_unsound")


def run_status(target: Path | str, run_id: int | None = None) -> dict[str, Any]:
    """A run's status from its directory, or from its database's URL (`run_id`: which run of several)."""
    cfg, store, run = open_target(target, run_id)
    run_dir = None if is_database_url(target) else Path(target)
    try:
        islands: dict[int, dict[str, Any]] = {
            i: {"island": i, "size": 0, "best": None, "evaluations": 0, "valid": 0, "proposals": 0,
                "duplicates": 0, "improvements": 0}
            for i in range(cfg.search.islands)
        }
        maximize = cfg.problem.objective == "maximize"
        for island, archive in store.archive_summaries(run.id).items():
            islands[island].update(size=archive.size, best=archive.best_fitness if maximize else -archive.best_fitness,
                                   clusters=archive.clusters)
        for island, children in store.child_counts(run.id).items():
            islands[island].update(evaluations=children.programs, valid=children.valid)
        for island, proposed in store.proposal_counts(run.id).items():
            islands[island].update(proposals=proposed.proposals, duplicates=proposed.duplicates)
        for island, improved in store.improvements(run.id, maximize).items():
            islands[island]["improvements"] = improved
        for island in islands.values():
            island["valid_rate"] = _rate(island["valid"], island["evaluations"])
            island["duplicate_rate"] = _rate(island["duplicates"], island["proposals"])
            island["improvement_rate"] = _rate(island["improvements"], island["evaluations"])
            island.setdefault("clusters", 0)
        models = [asdict(usage) for usage in store.llm_usage(run.id)]
        heldout = store.latest_heldout(run.best_program_id, run.epoch) if run.best_program_id is not None else None
        alarms = [{"kind": kind, **data} for kind, data in store.events(run.id, ALARM_EVENTS)]
        notes = [data.get("message", "") for _, data in store.events(run.id, ("heldout_unavailable",))[:1]]
        events = store.event_counts(run.id)
        budget = cfg.budget
        certification = _certification(store, run)
        state, reason = _state(run_dir, run, store)
        return {
            "run_dir": str(run_dir) if run_dir is not None else cfg.run.dir,
            "problem": run.problem,
            "status": state,
            "reason": reason,
            "objective": cfg.problem.objective,
            "evaluations": run.evaluations,
            "proposals": run.proposals,
            "duplicates": run.duplicates,
            "rejected": run.rejected,
            "failures": run.failures,
            "seed_score": run.seed_score,
            "best": {"score": run.best_score, "program_id": run.best_program_id,
                     "heldout_score": heldout.score if heldout is not None else None,
                     "certified": certification is not None},
            "certification": certification,
            "budget": {
                "evaluations": {"spent": run.evaluations, "limit": budget.evaluations},
                "wall_time": {"spent": round(run.wall_seconds, 1), "limit": budget.wall_time},
                "llm_cost": {"spent": run.llm_cost, "limit": budget.llm_cost},
                "target_score": budget.target_score,
            },
            "islands": list(islands.values()),
            "llm": models,
            "events": events,
            "alarms": alarms,
            "notes": notes,
            "remeasurements": _duels(store, run),
            "epoch": run.epoch,
            "evaluator_hash": run.evaluator_hash,
        }
    finally:
        store.close()


def _state(run_dir: Path | None, run: Run, store: Store) -> tuple[str, str]:
    """(status, why). A run stored as running whose process is gone (kill -9, a crash) says it is stopped."""
    holder = store.run_holder(run.id) if run.status == "running" else None  # type: ignore[arg-type]
    if holder:  # a server's advisory lock says who drives the run, from any machine
        return "running", f"driven by {holder}"
    if run.status == "running" and run_dir is None and holder is None:  # SQLite read by URL
        return "running", "as stored: whether its process is alive shows on the machine of its run directory"
    if run.status == "running" and holder == "":
        return "stopped", ("not running: its process ended without finishing (killed or crashed); "
                           f"continue it with `evolve resume {run_dir or 'RUN_DIR'}`")
    if run.status == "running":
        if is_running(run_dir):
            holder = lock_holder(run_dir)
            return "running", f"in process {holder}" if holder else ""
        return "stopped", ("not running: its process ended without finishing (killed or crashed); "
                           f"continue it with `evolve resume {run_dir}`")
    end = store.last_event(run.id, "session_end")
    return run.status, end.get("reason", "") if end is not None else ""


def _certification(store: Store, run: Run) -> dict[str, Any] | None:
    """A certifying problem's two kinds of score, kept apart: the champion's proven bound, and the best
    search score (optimistic, uncertified); plus what the gate and certify calls answered. None otherwise."""
    counts = store.certificate_counts(run.id)
    if not counts:
        return None
    # Pending in this epoch only: an earlier epoch's challengers are never taken up again (see rescore).
    pending = len(store.pending_challenges(run.id, run.epoch))
    champion = None
    row = store.champion_certificate(run.id, run.best_program_id) if run.best_program_id is not None else None
    if row is not None:
        champion = {key: getattr(row, key) for key in ("program_id", "bound", "bound_float", "lower", "width",
                                                       "calls", "seconds", "solver", "unsound")}
        champion["unsound"] = bool(champion["unsound"])
    search = store.lowest_valid_program(run.id)  # certifying problems minimize
    unsound = [{"program_id": c.program_id, "bound": c.bound, "bound_float": c.bound_float}
               for c in store.unsound_certificates(run.id)]
    return {
        "champion": champion,
        "best_search": {"score": search.score, "program_id": search.program_id} if search is not None else None,
        "gates": {status: counts.get(("gate", status), 0) for status in ("witness", "proven", "unknown")}
        | {"pending": pending},
        "certify": {status: counts.get(("certify", status), 0) for status in ("proven", "uncertified")},
        "challengers": {status: n for (kind, status), n in counts.items() if kind == "challenge"},
        "unsound": unsound,
    }


def _duels(store: Store, run: Run) -> dict[str, Any] | None:
    """Measured scores: the re-measurements that decided (or refused) each champion. None if there were none."""
    duels = [data for _, data in store.events(run.id, ("duel",))]
    if not duels:
        return None
    rows = store.remeasurement_count(run.id)
    keep = ("contender_id", "champion_id", "crowned", "mean_gain", "lower_bound", "gains", "reason")
    return {"duels": len(duels), "crowned": sum(1 for d in duels if d["crowned"]), "evaluations": rows,
            "recent": [{key: d.get(key) for key in keep} for d in duels[-5:]]}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def render(status: dict[str, Any]) -> "list[Any]":
    """Rich renderables for the terminal."""
    from rich.table import Table
    from rich.text import Text

    best = status["best"]
    head = Table.grid(padding=(0, 2))
    for label, value in [
        ("run", status["run_dir"]), ("problem", f"{status['problem']} ({status['objective']})"),
        ("status", f"{status['status']} ({status['reason']})" if status.get("reason") else status["status"]),
        ("evaluations", f"{status['evaluations']} of {status['budget']['evaluations']['limit']}"),
        ("proposals", f"{status['proposals']} (duplicates {status['duplicates']}, rejected {status['rejected']}, "
                      f"failed {status['failures']})"),
        ("seed score", _fmt(status["seed_score"])),
        *(_certified_rows(status) if status.get("certification") else [
            ("best score", f"{_fmt(best['score'])} (program {best['program_id']}, "
                           f"held-out {_fmt(best['heldout_score'])})")]),
        ("wall time", f"{status['budget']['wall_time']['spent']} s"),
        ("evaluator", f"{status['evaluator_hash']} (epoch {status['epoch']})"),
        ("events", json.dumps(status["events"])),
        ("alarms", ", ".join(a["kind"] for a in status["alarms"]) or "none"),
        *_duel_rows(status.get("remeasurements")),
    ]:
        head.add_row(f"[bold]{label}[/]", str(value))
    islands = Table(title="islands")
    for column in ("island", "size", "best", "valid rate", "duplicate rate", "improvement rate", "clusters"):
        islands.add_column(column, justify="right")
    for i in status["islands"]:
        islands.add_row(str(i["island"]), str(i["size"]), _fmt(i["best"]), _fmt(i["valid_rate"]),
                        _fmt(i["duplicate_rate"]), _fmt(i["improvement_rate"]), str(i["clusters"]))
    out: list[Any] = [head, islands]
    for alarm in status["alarms"]:  # what each alarm compared, and what to do
        if alarm.get("message"):
            out.append(Text.assemble((f"{alarm['kind']}: ", "bold yellow"), alarm["message"]))
    out += [Text(f"note: {note}") for note in status.get("notes", [])]
    if status["llm"]:
        llm = Table(title="LLM calls")
        for column in ("model", "calls", "errors", "prompt tokens", "completion tokens", "cost"):
            llm.add_column(column, justify="right")
        for m in status["llm"]:
            llm.add_row(m["model"], str(m["calls"]), str(m["errors"]), str(m["prompt_tokens"]),
                        str(m["completion_tokens"]), f"{m['cost']:.4f}")
        out.append(llm)
    return out


def _duel_rows(duels: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not duels:
        return []
    rows = [("re-measurements", f"{duels['duels']} duel(s), {duels['crowned']} crowned, "
                                f"{duels['evaluations']} evaluations stored")]
    for d in duels["recent"]:
        outcome = "crowned" if d["crowned"] else "refused"
        gains = ", ".join(f"{g:+.1%}" for g in d["gains"] or [])
        rows.append(("", f"program {d['contender_id']} vs champion {d['champion_id']}: {outcome}; "
                         f"gains per repeat ({gains}); {d['reason']}"))
    return rows


def _certified_rows(status: dict[str, Any]) -> list[tuple[str, str]]:
    """The certified champion and the optimistic search best, on separate lines; unsound bounds in red."""
    cert, best = status["certification"], status["best"]
    champion = cert["champion"]
    if champion is None:
        certified = f"none yet ({cert['gates']['pending']} challenger(s) pending)"
    else:
        certified = (f"{champion['bound']} = {_fmt(champion['bound_float'])} (program {champion['program_id']}; "
                     f"width {_fmt(champion['width'])}, {champion['solver'] or 'solver ?'}, {champion['calls']} "
                     f"call(s), {_fmt(champion['seconds'])} s; held-out {_fmt(best['heldout_score'])})")
    search = cert["best_search"]
    gates, certify = cert["gates"], cert["certify"]
    rows = [
        ("certified best", certified),
        ("best search score", "-" if search is None else
         f"{_fmt(search['score'])} (program {search['program_id']}; uncertified, optimistic)"),
        ("gates", f"witness {gates['witness']}, proven {gates['proven']}, unknown {gates['unknown']}, "
                  f"pending {gates['pending']}"),
        ("certifications", f"proven {certify['proven']}, uncertified {certify['uncertified']}"),
    ]
    for bad in cert["unsound"]:
        rows.append(("[bold red]UNSOUND[/]", f"[bold red]program {bad['program_id']}: a held-out score exceeds its "
                                             f"certified bound {bad['bound']}; the verifier is wrong[/]"))
    return rows


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
