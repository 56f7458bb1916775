"""The HTML of the report and the live view: one section per question a user asks of a run.

`sections(data)` gives each section's inner HTML by id (the live view swaps the ones that
changed); `page(...)` wraps them into a whole document. Everything stored is escaped:
program code and LLM replies are untrusted text.
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from evolve.report.data import MAX_DOTS, spread
from evolve.report.svg import Chart, color, number

OUTCOME_COLORS = {"new": "#59a14f", "duplicate": "#bab0ac", "rejected": "#edc948", "failed": "#e15759"}
VERDICT_COLORS = {"valid": "#59a14f", "invalid": "#e15759", "timed out": "#b07aa1"}
GATE_COLORS = {"witness": "#e15759", "proven": "#59a14f", "unknown": "#bab0ac"}
TABLE_ROWS = 200  # longest table shown; the export holds every row

Data = dict[str, Any]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header a{color:#b3e5fc}header .live{margin-left:auto;font-size:12px;color:#cfd8dc}
nav{padding:6px 20px;background:#eceff1;font-size:13px}nav a{margin-right:14px;color:#37474f}
main{padding:8px 20px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 16px;margin:14px 0}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;margin:12px 0 4px}
dl.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:4px 16px;margin:0}
dl.summary div{display:flex;gap:8px}dt{color:#666;min-width:90px}dd{margin:0;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #eee;padding:3px 8px;
text-align:right}th{background:#f5f5f5}td.l,th.l{text-align:left}
pre{background:#f6f8fa;border:1px solid #eee;padding:8px;overflow:auto;max-height:480px;font-size:12px}
pre.diff span{display:block}.add{background:#e6ffed}.del{background:#ffeef0}.hunk{color:#6f42c1}
.note{color:#777;font-size:13px}.alarm{color:#c62828;font-weight:600}.up{color:#2e7d32}.down{color:#c62828}
svg.plot{max-width:900px;display:block;margin:4px 0 10px}div.scroll{max-height:420px;overflow:auto;display:inline-block}ul.runs li{margin:4px 0}
"""


# ---------------------------------------------------------------------------- sections

def sections(data: Data) -> dict[str, str]:
    builders: list[tuple[str, str, Callable[[Data], str]]] = [
        ("summary", "Run", _summary), ("best", "Best score", _best), ("champions", "Champions: search and held-out", _champions),
        ("outcomes", "Outcomes and throughput", _outcomes), ("llm", "LLM calls", _llm),
        ("lineage", "The champion's lineage", _lineage), ("certification", "Certification", _certification),
        ("config", "Config and evaluator identity", _config),
    ]
    return {key: f"<h2>{escape(title)}</h2>{build(data)}" for key, title, build in builders}


def _summary(data: Data) -> str:
    run = data["run"]
    champion = next((c for c in reversed(data["champions"]["champions"])
                     if c["program_id"] == run["best_program_id"]), None)
    fields = [
        ("problem", run["problem"], None), ("status", run["status"], None), ("objective", run["objective"], None),
        ("evaluations", run["evaluations"], run["evaluations"]), ("proposals", run["proposals"], run["proposals"]),
        ("duplicates", run["duplicates"], run["duplicates"]), ("rejected", run["rejected"], run["rejected"]),
        ("failures", run["failures"], run["failures"]), ("seed score", number(run["seed_score"]), run["seed_score"]),
        ("best score", number(run["best_score"]), run["best_score"]),
        ("best program", run["best_program_id"], run["best_program_id"]),
        ("held-out", number(champion["heldout"]) if champion else "-", champion["heldout"] if champion else None),
        ("wall time", f"{run['wall_seconds']:.1f} s", run["wall_seconds"]),
        ("LLM cost", f"${run['llm_cost']:.4f}", run["llm_cost"]), ("epoch", run["epoch"], run["epoch"]),
        ("started", run["created"], None),
    ]
    items = "".join(f'<div><dt>{escape(label)}</dt><dd data-field="{escape(label)}"'
                    f'{_value_attr(value)}>{escape(str(shown if shown is not None else "-"))}</dd></div>'
                    for label, shown, value in fields)
    alarms = data["champions"]["alarms"]
    warning = (f'<p class="alarm">{len(alarms)} alarm(s): '
               f'{escape(", ".join(sorted({a["kind"] for a in alarms})))}</p>' if alarms else "")
    return f'<dl class="summary">{items}</dl>{warning}'


def _best(data: Data) -> str:
    best = data["best"]
    if not best["overall"]:
        return '<p class="note">No valid program yet.</p>'
    chart = Chart("best", "evaluations", "best score")
    for index, (island, line) in enumerate(best["islands"].items()):
        chart.line(line, f"island {island}", color(index + 1), extend_to=best["x_max"], width=1.2)
    chart.line(best["overall"], "overall", "#263238", extend_to=best["x_max"], width=2.6)
    markers = best["markers"]
    chart.rules(markers["migration"], "migration", "#90a4ae",
                [f"migration at evaluation {x}" for x in markers["migration"]], dash="2 3")
    chart.rules([x for x, _ in markers["reset"]], "island reset", "#ef6c00",
                [f"island {i} reset at evaluation {x}" for x, i in markers["reset"]])
    chart.rules([x for x, _ in markers["rescore"]], "rescore (epoch)", "#6a1b9a",
                [f"epoch {e} starts at evaluation {x}" for x, e in markers["rescore"]], dash="8 3")
    counts = (f'{len(markers["migration"])} migration(s), {len(markers["reset"])} reset(s), '
              f'{len(markers["rescore"])} rescore(s)')
    return chart.svg() + f'<p class="note">{counts}. Each island\'s line is the best its own proposals found.</p>'


def _champions(data: Data) -> str:
    champions, alarms = data["champions"]["champions"], data["champions"]["alarms"]
    if not champions:
        return '<p class="note">No champion yet.</p>'
    table = champions[-TABLE_ROWS:]
    champions = spread(champions, MAX_DOTS)
    chart = Chart("champions", "evaluation at which it became champion", "score")
    titles = [f"program {c['program_id']}" for c in champions]
    chart.x_pad = 0.03
    chart.line([(c["x"], c["search"]) for c in champions if c["search"] is not None], "search", color(0),
               step=False, width=1, legend=False)
    chart.dots([(c["x"], c["search"]) for c in champions], "search", color(0), titles)
    held = [c for c in champions if c["heldout"] is not None]
    chart.dots([(c["x"], c["heldout"]) for c in held], "held-out", color(1),
               [f"program {c['program_id']} held-out" for c in held], hollow=True)
    certified = [c for c in champions if c["certified"] is not None]
    chart.dots([(c["x"], c["certified"]) for c in certified], "certified bound", "#2e7d32",
               [f"program {c['program_id']} certified" for c in certified], radius=3)
    chart.rules([a["x"] for a in alarms], "alarm", "#c62828", [f"{a['kind']}: {a['detail']}" for a in alarms])
    rows = "".join(
        f'<tr data-program="{c["program_id"]}"><td>{c["program_id"]}</td><td>{c["x"]}</td>'
        f'<td{_value_attr(c["search"])}>{number(c["search"])}</td><td{_value_attr(c["heldout"])}>'
        f'{number(c["heldout"])}</td><td>{number(c["certified"])}</td><td>{c["epoch"]}</td></tr>'
        for c in table)
    alarm_rows = "".join(f'<li class="alarm">{escape(a["kind"])} at evaluation {a["x"]}: {escape(a["detail"])}</li>'
                         for a in alarms[-TABLE_ROWS:])
    return (chart.svg() + '<div class="scroll"><table class="champions"><tr><th>program</th><th>evaluation</th>'
            f'<th>search</th><th>held-out</th><th>certified</th><th>epoch</th></tr>{rows}</table></div>'
            + (f"<h3>Alarms</h3><ul>{alarm_rows}</ul>" if alarms else '<p class="note">No alarms.</p>'))


def _outcomes(data: Data) -> str:
    outcomes = data["outcomes"]
    out = []
    for key, title, colors, x_label in (("proposals", "proposal outcomes", OUTCOME_COLORS, "proposals"),
                                        ("evaluations", "evaluation verdicts", VERDICT_COLORS, "evaluations")):
        binned = outcomes[key]
        chart = Chart(key, x_label, "share of each slice", height=220)
        chart.stacked(binned["edges"], binned["series"], {k: colors.get(k, "#999") for k in binned["series"]})
        totals = ", ".join(f"{escape(k)} <b data-total=\"{escape(k)}\">{v}</b>"
                           for k, v in sorted(outcomes["totals"][key].items()))
        out.append(f"<h3>{title}</h3>" + (chart.svg() if not chart.empty else "") +
                   f'<p class="note">{totals or "none yet"}</p>')
    throughput = outcomes["throughput"]
    if throughput["minutes"]:
        chart = Chart("throughput", "minutes since the first evaluation", "evaluations / minute", height=200)
        chart.y_floor, chart.integer_x = 0.0, False
        chart.line(list(zip(throughput["minutes"], throughput["rate"])), "throughput", color(0), step=False)
        out.append("<h3>throughput</h3>" + chart.svg())
    return "".join(out)


def _llm(data: Data) -> str:
    llm = data["llm"]
    if not llm["models"]:
        return '<p class="note">No LLM calls (an offline proposer, or none made yet).</p>'
    rows = "".join(
        f'<tr data-model="{escape(m["model"])}"><td class="l">{escape(m["model"])}</td><td data-col="calls">'
        f'{m["calls"]}</td><td data-col="errors">{m["errors"]}</td><td data-col="prompt_tokens">{m["prompt_tokens"]}'
        f'</td><td data-col="completion_tokens">{m["completion_tokens"]}</td><td data-col="cost"'
        f'{_value_attr(m["cost"])}>${m["cost"]:.6f}</td><td>{m["latency"]:.3f}</td></tr>' for m in llm["models"])
    table = ('<table class="llm"><tr><th class="l">model</th><th>calls</th><th>errors</th><th>prompt tokens</th>'
             f'<th>completion tokens</th><th>cost</th><th>mean latency (s)</th></tr>{rows}</table>')
    colors = {m["model"]: color(i) for i, m in enumerate(llm["models"])}
    choice = Chart("model-choice", "LLM calls", "share of each slice", height=200)
    choice.stacked(llm["choice"]["edges"], llm["choice"]["series"], colors)
    cost = Chart("llm-cost", "LLM calls", "cumulative cost ($)", height=200)
    for model, line in llm["cost"].items():
        cost.line(line, model, colors[model])
    return table + "<h3>model choice over time</h3>" + choice.svg() + "<h3>cost</h3>" + cost.svg()


def _lineage(data: Data) -> str:
    lineage = data["lineage"]
    steps = lineage["steps"]
    if not steps:
        return '<p class="note">No program yet.</p>'
    sign = 1 if data["run"]["objective"] == "maximize" else -1
    chart = Chart("lineage", "step from the seed", "score", height=200)
    chart.x_pad = 0.03
    chart.line(lineage["scores"], "score", color(0), step=False, width=1.2)
    shown = [s for s in steps if s["score"] is not None]
    chart.dots([(s["step"], s["score"]) for s in shown], "step shown below", color(0),
               [f"step {s['step']}: program {s['program_id']}" for s in shown], radius=3)
    folded = lineage["length"] - len(steps)
    note = (f'<p class="note">{lineage["length"]} steps; the table shows {len(steps)} of them (the seed, the last '
            'steps and the biggest score changes); `evolve export` has every program.</p>' if folded else "")
    rows = []
    for step in steps:
        i = step["step"]
        delta = step["delta"]
        trend = "" if delta is None or delta == 0 else " class=\"up\"" if sign * delta > 0 else " class=\"down\""
        diff = (f"<details><summary>diff</summary>{_diff(step['diff'])}</details>" if step["diff"] else
                '<span class="note">diff left out (size)</span>' if step.get("diff_dropped") else "")
        rows.append(f'<tr data-program="{step["program_id"]}"><td>{i}</td><td>{step["program_id"]}</td>'
                    f'<td>{step["island"]}</td><td class="l">{escape(step["edit_kind"])}</td>'
                    f'<td class="l">{escape(step["proposer"])}</td><td{_value_attr(step["score"])}>'
                    f'{number(step["score"])}</td><td{trend}>{"" if delta is None else f"{delta:+.6g}"}</td>'
                    f'<td class="l">{diff}</td></tr>')
    return (chart.svg() + note + '<div class="scroll"><table class="lineage"><tr><th>step</th><th>program</th><th>island</th>'
            '<th class="l">edit</th><th class="l">proposer</th><th>score</th><th>change</th><th class="l">diff</th>'
            f'</tr>{"".join(rows)}</table></div><h3>the champion\'s code (program {lineage["program_id"]})</h3>'
            f'<pre class="code">{escape(lineage["code"])}</pre>')


def _certification(data: Data) -> str:
    cert = data["certification"]
    if cert is None:
        return '<p class="note">Not a certifying problem (no gate or certify results).</p>'
    rows = cert["rows"]
    chart = Chart("certification", "certification step", "bound / score", height=240)
    lower = [(i, r["lower"]) for i, r in enumerate(rows) if r["kind"] == "challenge" and r["lower"] is not None]
    chart.dots(lower, "challenger (search)", "#90a4ae",
               [f"program {rows[i]['program_id']} queued" for i, _ in lower], radius=3)
    for status, paint in GATE_COLORS.items():
        gates = [(i, r["bound_float"]) for i, r in enumerate(rows)
                 if r["kind"] == "gate" and r["status"] == status and r["bound_float"] is not None]
        chart.dots(gates, f"gate {status}", paint, [f"program {rows[i]['program_id']} gate {status}" for i, _ in gates])
    proven = [(i, r["bound_float"]) for i, r in enumerate(rows)
              if r["kind"] == "certify" and r["status"] == "proven" and r["bound_float"] is not None]
    chart.x_pad = 0.03
    chart.line(proven, "certified bound", "#2e7d32", step=False, legend=False)
    chart.dots(proven, "certified", "#2e7d32", [f"program {rows[i]['program_id']} certified" for i, _ in proven],
               radius=5, hollow=True)
    chart.rules([i for i, r in enumerate(rows) if r["unsound"]], "UNSOUND", "#c62828")
    counts = ", ".join(f"{escape(k)} <b>{v}</b>" for k, v in sorted(cert["counts"].items()))
    table = "".join(
        f'<tr data-certificate="{r["id"]}"><td>{r["created"]}</td><td>{r["program_id"]}</td>'
        f'<td class="l">{escape(r["kind"])}</td><td class="l">{escape(r["status"])}</td>'
        f'<td class="l">{escape(r["bound"] or "")}</td><td{_value_attr(r["bound_float"])}>{number(r["bound_float"])}</td><td>{number(r["lower"])}</td><td>{r["calls"]}</td>'
        f'<td>{r["seconds"]:.2f}</td><td class="l">{escape(r["solver"] or "")}</td>'
        f'<td class="l">{"<span class=alarm>UNSOUND</span>" if r["unsound"] else ""}</td></tr>'
        for r in rows[-TABLE_ROWS:])
    shown = "" if cert["total"] == len(rows) else f" (the last {len(rows)} of {cert['total']} drawn)"
    return (f'<p>{counts}{shown}</p>' + (chart.svg() if not chart.empty else "") +
            '<div class="scroll"><table><tr><th>time</th><th>program</th><th class="l">kind</th><th class="l">status</th>'
            '<th class="l">bound</th><th>bound (float)</th><th>search score</th><th>calls</th><th>seconds</th>'
            f'<th class="l">solver</th><th></th></tr>{table}</table></div>')


def _config(data: Data) -> str:
    run = data["run"]
    parts = "".join(f'<tr><td class="l">{escape(k)}</td><td class="l"><code>{escape(str(v))}</code></td></tr>'
                    for k, v in run["evaluator_parts"].items())
    return (f'<p>evaluator <code data-field="evaluator_hash">{escape(run["evaluator_hash"])}</code>, '
            f'epoch {run["epoch"]}</p><table><tr><th class="l">part</th><th class="l">hash</th></tr>{parts}</table>'
            f'<h3>config</h3><pre class="config">{escape(run["config_yaml"])}</pre>')


# ---------------------------------------------------------------------------- helpers

def _diff(text: str) -> str:
    lines = []
    for line in text.splitlines():
        kind = ("hunk" if line.startswith("@@") else "add" if line.startswith("+") and not line.startswith("+++")
                else "del" if line.startswith("-") and not line.startswith("---") else "")
        lines.append(f'<span class="{kind}">{escape(line) or " "}</span>')
    return f'<pre class="diff">{"".join(lines)}</pre>'


def _value_attr(value: Any) -> str:
    """The exact stored number, for tests and scrapers (the text shows it rounded)."""
    return "" if value is None else f' data-value="{escape(repr(value))}"'


# ---------------------------------------------------------------------------- documents

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
LIVE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'unsafe-inline'; connect-src 'self'"

LIVE_SCRIPT = """
(function () {
  const shown = {};
  document.querySelectorAll('main > section').forEach(s => { shown[s.id] = s.innerHTML; });
  let stamp = document.body.dataset.stamp;
  const status = document.getElementById('live-status');
  async function poll() {
    try {
      const reply = await fetch(document.body.dataset.feed + '?since=' + encodeURIComponent(stamp),
                                {cache: 'no-store'});
      if (!reply.ok) throw new Error('HTTP ' + reply.status);
      const update = await reply.json();
      if (update.sections) {
        for (const [id, html] of Object.entries(update.sections)) {
          const section = document.getElementById(id);
          if (section && shown[id] !== html) {  // untouched sections keep their open diffs
            section.innerHTML = html;
            shown[id] = html;
          }
        }
        stamp = update.stamp;
      }
      status.textContent = 'live, updated ' + new Date().toLocaleTimeString();
    } catch (error) {
      status.textContent = 'live view paused: ' + error.message;
    }
    setTimeout(poll, INTERVAL);
  }
  setTimeout(poll, INTERVAL);
})();
"""


def page(data: Data, live: dict[str, Any] | None = None) -> str:
    """A whole document. `live`: {"feed": url, "interval": seconds, "stamp": str, "runs_url": url} for the live view."""
    run = data["run"]
    parts = sections(data)
    nav = "".join(f'<a href="#{key}">{escape(key)}</a>' for key in parts)
    body = "".join(f'<section id="{key}">{html}</section>' for key, html in parts.items())
    title = f"evolve · {run['problem']} · run {run['id']}"
    if live is None:
        csp, script, attrs, extra = REPORT_CSP, "", "", ""
    else:
        csp = LIVE_CSP
        script = f"<script>const INTERVAL = {int(live['interval'] * 1000)};{LIVE_SCRIPT}</script>"
        attrs = (f' data-feed="{escape(live["feed"])}" data-stamp="{escape(live["stamp"])}"')
        others = f'<a href="{escape(live["runs_url"])}">all runs ({len(data["runs"])})</a>' if len(data["runs"]) > 1 else ""
        extra = f'{others}<span class="live" id="live-status">live</span>'
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body{attrs}>"
            f"<header><h1>{escape(title)}</h1>{extra}</header>"
            f"<nav>{nav}</nav><main>{body}</main>{script}</body></html>")


def run_list(runs: list[Data], link: Callable[[int], str], label: str) -> str:
    items = "".join(f'<li><a href="{escape(link(r["id"]))}">run {r["id"]}: {escape(r["problem"])}</a> '
                    f'<span class="note">{escape(r["status"])}, {r["evaluations"]} evaluations, started '
                    f'{escape(r["created"])}</span></li>' for r in runs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}"><title>evolve runs</title>'
            f'<style>{CSS}</style></head><body><header><h1>evolve · runs in {escape(label)}</h1></header>'
            f'<main><section><ul class="runs">{items}</ul></section></main></body></html>')

