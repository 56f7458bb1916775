"""Everything the report and the live view show, read from a run's database into plain data.

Series over a long run are downsampled here (best-so-far keeps only its steps, counts are
binned, long lines are thinned evenly), so the page stays small whatever the run's length.
"""

from __future__ import annotations

import bisect
import difflib
import json
from datetime import datetime, timezone
from typing import Any

from omegaconf import OmegaConf

from evolve.report.source import RunSource

MAX_POINTS = 1500  # per drawn line
BINS = 60  # bars in a count-over-time chart
DIFF_BUDGET = 1_500_000  # characters of lineage diffs shown; the biggest score changes keep theirs first
LINEAGE_ROWS = 300  # lineage steps shown in detail (the chart shows every step)
MAX_DOTS = 600  # per dotted series (champions)
ALARMS = ("heldout_divergence", "heldout_failed", "nondeterministic", "drift", "drift_refused", "verifier_error",
          "certificate_unsound")
OUTCOMES = ("new", "duplicate", "rejected", "failed", "cancelled")
VERDICTS = ("valid", "invalid", "timed out")

Data = dict[str, Any]


def collect(source: RunSource, run_id: int) -> Data:
    run = _run(source, run_id)
    programs = source.programs(run_id)
    axis = _Axis(programs)
    events = [(kind, json.loads(data or "{}"), _stamp(created)) for kind, data, created in source.events(run_id)]
    sign = 1.0 if run["objective"] == "maximize" else -1.0
    return {
        "run": run,
        "runs": [r.__dict__ for r in source.runs()],
        "best": _best(source, run, programs, axis, events, sign),
        "champions": _champions(axis, events),
        "outcomes": _outcomes(source, run_id, programs),
        "llm": _llm(source, run_id),
        "lineage": _lineage(source, run, programs, sign),
        "certification": _certification(source, run_id),
        "events": _count(kind for kind, _, _ in events),
    }


def stamp(source: RunSource, run_id: int) -> str:
    """Changes whenever anything shown changes: the live view recomputes only then."""
    return "-".join(str(value) for value in source.change_counts(run_id))


# ---------------------------------------------------------------------------- the run itself

def _run(source: RunSource, run_id: int) -> Data:
    run = source.run_fields(run_id)
    run["created"] = str(run["created"])[:19]
    run["evaluator_parts"] = json.loads(run["evaluator_parts"] or "{}")
    try:
        cfg = OmegaConf.create(run["config_yaml"])
        objective, islands = str(cfg.problem.objective), int(cfg.search.islands)
    except Exception:  # noqa: BLE001 - an unreadable config still shows: the defaults
        objective, islands = "maximize", 1
    run["objective"], run["islands"] = objective, islands
    return run


class _Axis:
    """The x axis of the search charts: evaluation number, 0 for seeds, 1.. for candidates in storage order."""

    def __init__(self, programs: list[Any]) -> None:
        self.x: dict[int, int] = {}
        self.times: list[float] = []
        n = 0
        for pid, parent, _island, _status, _score, created in programs:
            if parent is not None:
                n += 1
            self.x[pid] = n
            self.times.append(_stamp(created))
        self.count = n
        self._x_in_order = [self.x[p[0]] for p in programs]

    def at_time(self, when: float) -> int:
        """The evaluation number reached at a moment (for events that carry no `at`)."""
        index = bisect.bisect_right(self.times, when)
        return self._x_in_order[index - 1] if index else 0


# ---------------------------------------------------------------------------- best score

def _best(source: RunSource, run: Data, programs: list[Any], axis: _Axis, events: list[Any], sign: float) -> Data:
    epochs = _epochs(source, run["id"]) if run["epoch"] else {}
    rescores = [(axis.at_time(when), int(data.get("epoch") or 0)) for kind, data, when in events if kind == "rescore"]
    restart = {epoch: x for x, epoch in rescores}
    rescored = _rescored_scores(source, run["id"], restart, sign) if restart else {}
    overall: list[tuple[int, float]] = []
    islands: dict[int, list[tuple[int, float]]] = {}
    best: dict[Any, float | None] = {}
    epoch = 0
    for pid, parent, island, status, score, _created in programs:
        x = axis.x[pid]
        program_epoch = epochs.get(pid, 0)
        if program_epoch > epoch:  # a rescore: the new epoch's scores start from the rescored archive
            epoch = program_epoch
            best = {}
            for key, value in rescored.get(epoch, {}).items():
                best[key] = value
                (overall if key == "all" else islands.setdefault(key, [])).append((restart.get(epoch, x), value))
        if status != "valid" or score is None:
            continue
        # A seed starts every island; a candidate belongs to the island that proposed it.
        homes = range(run["islands"]) if parent is None else (island,)
        for key, line in (("all", overall), *((i, islands.setdefault(i, [])) for i in homes)):
            if best.get(key) is None or sign * score > sign * best[key]:  # type: ignore[operator]
                best[key] = score
                line.append((x, score))
    markers = {
        "migration": sorted({int(d["at"]) for k, d, _ in events if k == "migration" and "at" in d}),
        "reset": [[int(d["at"]), d.get("island")] for k, d, _ in events if k == "reset" and "at" in d],
        "rescore": [[x, e] for x, e in rescores],
    }
    return {"overall": _thin(overall), "islands": {str(i): _thin(line) for i, line in sorted(islands.items())},
            "markers": markers, "x_max": axis.count}


def _epochs(source: RunSource, run_id: int) -> dict[int, int]:
    """Each program's first epoch (the one it was proposed in)."""
    return source.first_epochs(run_id)


def _rescored_scores(source: RunSource, run_id: int, epochs: dict[int, int],
                     sign: float) -> dict[int, dict[Any, float]]:
    """Per epoch started by a rescore: the best rescored score overall and per island."""
    found: dict[int, dict[Any, float]] = {}
    for epoch in epochs:
        rows = source.valid_search_scores(run_id, epoch)
        found[epoch] = {}
        for island, score in rows:
            for key in ("all", island):
                if key not in found[epoch] or sign * score > sign * found[epoch][key]:
                    found[epoch][key] = score
    return found


# ---------------------------------------------------------------------------- champions and alarms

def _champions(axis: _Axis, events: list[Any]) -> Data:
    champions = [{"x": axis.x.get(int(d["program_id"]), 0), "program_id": int(d["program_id"]),
                  "search": d.get("search"), "heldout": d.get("heldout"), "certified": d.get("certified"),
                  "epoch": d.get("epoch", 0)}
                 for kind, d, _ in events if kind == "champion" and "program_id" in d]
    alarms = []
    for kind, data, when in events:
        if kind not in ALARMS:
            continue
        program = data.get("program_id") or (data.get("champions") or [None])[-1]
        x = axis.x.get(int(program), 0) if program is not None else axis.at_time(when)
        alarms.append({"x": x, "kind": kind, "program_id": program, "detail": _short(data)})
    return {"champions": champions, "alarms": alarms}


# ---------------------------------------------------------------------------- outcomes and throughput

def _outcomes(source: RunSource, run_id: int, programs: list[Any]) -> Data:
    proposals = source.proposal_outcomes(run_id)
    verdicts = [("valid" if status == "valid" else "timed out" if timed_out else "invalid")
                for status, timed_out in source.candidate_verdicts(run_id)]
    times = [_stamp(created) for pid, parent, *_rest, created in programs if parent is not None]
    return {"proposals": _binned(proposals, OUTCOMES), "evaluations": _binned(verdicts, VERDICTS),
            "throughput": _throughput(times),
            "totals": {"proposals": _count(proposals), "evaluations": _count(verdicts)}}


def _binned(labels: list[str], order: tuple[str, ...]) -> Data:
    """Counts of each label in (at most BINS) equal slices of the sequence."""
    n = len(labels)
    bins = min(BINS, max(n // 4, 1)) if n else 0  # a few items per slice, or a mix means nothing
    edges = [round(i * n / bins) for i in range(bins + 1)] if bins else [0]
    names = list(order) + sorted(set(labels) - set(order))
    series = {name: [0] * bins for name in names}
    for b in range(bins):
        for label in labels[edges[b]:edges[b + 1]]:
            series[label][b] += 1
    return {"edges": edges, "series": {k: v for k, v in series.items() if any(v) or k in order}}


def _throughput(times: list[float]) -> Data:
    """Evaluations per minute in equal slices of wall-clock time (a paused run shows as zero)."""
    if len(times) < 2:
        return {"start": times[0] if times else 0.0, "minutes": [], "rate": []}
    start, end = min(times), max(times)
    bins = min(BINS, max(len(times) // 8, 1))
    width = max((end - start) / bins, 1e-6)
    counts = [0] * bins
    for t in times:
        counts[min(int((t - start) / width), bins - 1)] += 1
    return {"start": start, "minutes": [round((i + 0.5) * width / 60, 3) for i in range(bins)],
            "rate": [round(c / (width / 60), 2) for c in counts]}


# ---------------------------------------------------------------------------- LLM calls

def _llm(source: RunSource, run_id: int) -> Data:
    models = [{"model": model, "calls": calls, "errors": errors or 0, "prompt_tokens": int(p or 0),
               "completion_tokens": int(c or 0), "cost": float(cost or 0.0),
               "latency": round(float(latency or 0.0), 3)}
              for model, calls, errors, p, c, cost, latency in source.llm_by_model(run_id)]
    calls = source.llm_costs(run_id)
    spent: dict[str, float] = {}
    cumulative: dict[str, list[tuple[int, float]]] = {m["model"]: [] for m in models}
    for index, (model, cost) in enumerate(calls, start=1):
        spent[model] = spent.get(model, 0.0) + float(cost or 0.0)
        cumulative[model].append((index, round(spent[model], 8)))
    return {"models": models, "choice": _binned([m for m, _ in calls], tuple(m["model"] for m in models)),
            "cost": {m: _thin(line) for m, line in cumulative.items()}}


# ---------------------------------------------------------------------------- lineage

def _lineage(source: RunSource, run: Data, programs: list[Any], sign: float) -> Data:
    """The champion's ancestry from the seed: every step's score (the chart), and for the steps shown in
    detail their edit, score change and diff; plus the champion's code.

    A long lineage shows in detail the seed, the last steps and the steps that moved the score most
    (at most LINEAGE_ROWS), and diffs up to DIFF_BUDGET characters; the export holds everything."""
    head = run["best_program_id"]
    if head is None:  # a certifying problem with no certified champion yet: follow the best search score
        valid = [p for p in programs if p[3] == "valid" and p[4] is not None]
        head = max(valid, key=lambda p: (sign * p[4], -p[0]))[0] if valid else None
    parents = {p[0]: p[1] for p in programs}
    scores = {p[0]: p[4] for p in programs}
    chain: list[int] = []
    seen: set[int] = set()
    while head is not None and head not in seen:
        chain.append(head)
        seen.add(head)
        head = parents.get(head)
    chain.reverse()
    deltas = [None if i == 0 or scores[pid] is None or scores[chain[i - 1]] is None
              else scores[pid] - scores[chain[i - 1]] for i, pid in enumerate(chain)]
    detail = _detail_steps(deltas)
    rows = {}
    for pid in {chain[i] for i in detail} | {chain[i - 1] for i in detail if i}:
        rows[pid] = source.program_detail(pid)
    steps, budget = [], DIFF_BUDGET
    by_change = sorted(detail, key=lambda i: -abs(deltas[i] or 0.0))  # the biggest changes keep their diffs first
    diffs: dict[int, str] = {}
    for i in by_change:
        if i == 0:
            continue
        before, after = rows[chain[i - 1]], rows[chain[i]]
        text = "".join(difflib.unified_diff(before[5].splitlines(True), after[5].splitlines(True),
                                            f"program {before[0]}", f"program {after[0]}", n=2))
        if len(text) <= budget:
            diffs[i], budget = text, budget - len(text)
    for i in sorted(detail):
        pid, row = chain[i], rows[chain[i]]
        steps.append({"step": i, "program_id": pid, "parent_id": parents[pid], "island": row[1],
                      "edit_kind": row[2] or "", "proposer": row[3] or "", "status": row[4], "score": scores[pid],
                      "delta": deltas[i], "diff": diffs.get(i, ""), "diff_dropped": i > 0 and i not in diffs})
    return {"steps": steps, "length": len(chain), "scores": _thin([(i, scores[p]) for i, p in enumerate(chain)
                                                                    if scores[p] is not None]),
            "code": rows[chain[-1]][5] if chain else "", "program_id": chain[-1] if chain else None}


def _detail_steps(deltas: list[float | None]) -> list[int]:
    """Which steps of a lineage get a row: all of a short one; else the seed, the last ones, the biggest moves."""
    n = len(deltas)
    if n <= LINEAGE_ROWS:
        return list(range(n))
    keep = {0, *range(n - LINEAGE_ROWS // 4, n)}
    for i in sorted(range(1, n), key=lambda i: -abs(deltas[i] or 0.0)):
        if len(keep) >= LINEAGE_ROWS:
            break
        keep.add(i)
    return sorted(keep)


# ---------------------------------------------------------------------------- certification

def _certification(source: RunSource, run_id: int) -> Data | None:
    rows = source.certificates(run_id)
    if not rows:
        return None
    for row in rows:
        row["created"] = str(row["created"])[:19]
        row["unsound"] = bool(row["unsound"])
    counts = _count(f"{r['kind']}:{r['status']}" for r in rows)
    return {"rows": rows[-MAX_POINTS:] if len(rows) > MAX_POINTS else rows, "total": len(rows), "counts": counts}


# ---------------------------------------------------------------------------- helpers

def spread(items: list[Any], limit: int) -> list[Any]:
    """At most `limit` items, evenly spaced in index, always keeping the first and the last."""
    if len(items) <= limit:
        return list(items)
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def _thin(line: list[tuple[int, float]], limit: int = MAX_POINTS) -> list[list[float]]:
    return [list(p) for p in spread(line, limit)]


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _stamp(value: Any) -> float:
    """Seconds since the epoch from a stored time (SQLite gives text, PostgreSQL a datetime)."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _short(data: dict[str, Any]) -> str:
    if isinstance(data.get("message"), str):  # an alarm that says what it compared and what to do, in full
        return data["message"]
    text = json.dumps(data, default=str)
    return text if len(text) <= 300 else text[:297] + "..."
