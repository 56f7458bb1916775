"""`evolve report`, `evolve ui` and `evolve export` on real short searches, the pages checked in a real browser.

Two runs share one SQLite database (as `database.url` allows): one driven by a scripted
OpenAI-compatible endpoint on 127.0.0.1 with two models (so LLM calls, tokens and costs
exist), one offline. Chromium is Debian's (/usr/bin/chromium), driven by Playwright.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from sqlalchemy.exc import OperationalError

import evolve
from evolve.report.export import parquet_available
from evolve.report.source import open_source
from tests.fake_llm import FakeLLM, author_script, tweak_author

EVOLVE = [sys.executable, "-m", "evolve"]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
PLOTS = {"best", "champions", "proposals", "evaluations", "throughput", "model-choice", "llm-cost", "lineage"}
MODELS = "llm.models=[{name:fake-large,price_in:3.0,price_out:15.0},{name:fake-small,price_in:0.1,price_out:0.4}]"


class Runs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "shared.db"
        self.url = f"sqlite:///{self.db}"
        self.llm = root / "llm-run"
        self.offline = root / "offline-run"

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql, params).fetchall()

    def run_id(self, run_dir: Path) -> int:
        return int((run_dir / "run-id").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Two real short searches stored in one database."""
    runs = Runs(tmp_path_factory.mktemp("report"))
    common = ["sandbox=process", "sandbox.allow_root=true", "run.progress=false", f"database.url={runs.url}"]
    os.environ["EVOLVE_REPORT_KEY"] = "sk-test"
    try:
        with FakeLLM(author_script(tweak_author(seed=5))) as fake:
            evolve.run([*common, f"run.dir={runs.llm}", "budget.evaluations=16", "search.migration_interval=4",
                        "search.reset_interval=8", "llm=openai", f"llm.base_url={fake.url}",
                        "llm.api_key_env=EVOLVE_REPORT_KEY", MODELS])
        evolve.run([*common, f"run.dir={runs.offline}", "budget.evaluations=6"])
    finally:
        del os.environ["EVOLVE_REPORT_KEY"]
    yield runs


def evolve_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVOLVE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------- without a browser

@pytest.mark.slow
def test_report_file_export_and_bad_targets(runs: Runs, tmp_path: Path) -> None:
    done = evolve_cmd("report", str(runs.llm), "-o", "out.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "out.html").read_text()
    # self-contained: no script, no external reference, and a policy that forbids fetching anything
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "default-src 'none'" in html

    run_id = runs.run_id(runs.llm)
    done = evolve_cmd("export", str(runs.llm), "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = {
        "programs": runs.query("SELECT COUNT(*) FROM programs WHERE run_id=?", run_id)[0][0],
        "evaluations": runs.query("SELECT COUNT(*) FROM evaluations e JOIN programs p ON p.id=e.program_id "
                                  "WHERE p.run_id=?", run_id)[0][0],
        "proposals": runs.query("SELECT COUNT(*) FROM proposals WHERE run_id=?", run_id)[0][0],
        "llm_calls": runs.query("SELECT COUNT(*) FROM llm_calls WHERE run_id=?", run_id)[0][0],
    }
    assert all(expected.values())  # every table has rows of this run (and the other run's are left out)
    for table, count in expected.items():
        records = [json.loads(line) for line in (tmp_path / "out" / f"{table}.jsonl").read_text().splitlines()]
        with (tmp_path / "out" / f"{table}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(records) == len(rows) == count, table
        assert [r["id"] for r in records] == [int(r["id"]) for r in rows]
        if table != "evaluations":
            assert {r["run_id"] for r in records} == {run_id}
        if parquet_available():
            import pyarrow.parquet as pq

            assert pq.read_table(tmp_path / "out" / f"{table}.parquet").num_rows == count
        else:
            assert not (tmp_path / "out" / f"{table}.parquet").exists() and "pip install pyarrow" in done.stdout
    best = runs.query("SELECT best_program_id, best_score FROM runs WHERE id=?", run_id)[0]
    program = next(json.loads(line) for line in (tmp_path / "out" / "programs.jsonl").read_text().splitlines()
                   if json.loads(line)["id"] == best[0])
    assert program["score"] == best[1]

    # the source cannot write, whatever is asked of it
    source = open_source(runs.url)
    try:
        with pytest.raises(OperationalError, match="readonly"):
            source.query("UPDATE runs SET status='tampered'")
    finally:
        source.close()
    assert "tampered" not in {s for (s,) in runs.query("SELECT status FROM runs")}

    for args, message in [(["report", "nowhere"], "is not a run directory"),
                          (["export", "sqlite:///nope/evolve.db"], "no database at"),
                          (["report", runs.url, "--run", "99"], "holds no run with id 99"),
                          (["ui", str(runs.llm), "--interval", "0.01"], "too short")]:
        failed = evolve_cmd(*args, cwd=tmp_path)
        assert failed.returncode == 2 and message in failed.stderr, (args, failed.stderr)
        assert len(failed.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- in the browser

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():  # a failure, not a skip: CI installs it (.ci/run)
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose every request and console error is recorded."""

    def __init__(self, browser) -> None:  # type: ignore[no-untyped-def]
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def assert_clean(self, allowed: str) -> None:
        assert not self.errors, self.errors
        assert self.requests and all(url.startswith(allowed) for url in self.requests), self.requests

    def field(self, name: str) -> str:
        return self.page.get_attribute(f'dd[data-field="{name}"]', "data-value") or ""

    def plots(self) -> dict[str, int]:
        return self.page.eval_on_selector_all(
            "svg.plot", "svgs => Object.fromEntries(svgs.map(s => [s.dataset.plot, s.querySelectorAll('.mark').length]))")


def assert_shows_the_database(view: Watched, runs: Runs, run_id: int) -> None:
    page = view.page
    evaluations, best_id, best_score = runs.query(
        "SELECT evaluations, best_program_id, best_score FROM runs WHERE id=?", run_id)[0]
    assert int(view.field("evaluations")) == evaluations
    assert int(view.field("best program")) == best_id and float(view.field("best score")) == best_score
    # LLM calls, tokens and cost per model
    for model, calls, prompt, completion, cost in runs.query(
            "SELECT model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost) FROM llm_calls "
            "WHERE run_id=? GROUP BY model", run_id):
        row = f'tr[data-model="{model}"]'
        assert int(page.inner_text(f'{row} td[data-col="calls"]')) == calls
        assert int(page.inner_text(f'{row} td[data-col="prompt_tokens"]')) == prompt
        assert int(page.inner_text(f'{row} td[data-col="completion_tokens"]')) == completion
        assert float(page.get_attribute(f'{row} td[data-col="cost"]', "data-value")) == pytest.approx(cost)
    # proposal outcomes
    for outcome, count in runs.query("SELECT outcome, COUNT(*) FROM proposals WHERE run_id=? GROUP BY outcome", run_id):
        assert int(page.inner_text(f'#outcomes b[data-total="{outcome}"]')) == count
    # one table row per champion, and the lineage is the stored chain from the seed to the best program
    champions = runs.query("SELECT COUNT(*) FROM events WHERE run_id=? AND kind='champion'", run_id)[0][0]
    assert page.locator("table.champions tr[data-program]").count() == champions
    chain, head = [], best_id
    while head is not None:
        chain.append(head)
        head = runs.query("SELECT parent_id FROM programs WHERE id=?", head)[0][0]
    shown = page.eval_on_selector_all("table.lineage tr[data-program]", "rows => rows.map(r => +r.dataset.program)")
    assert shown == chain[::-1]
    code = runs.query("SELECT code FROM programs WHERE id=?", best_id)[0][0]
    assert page.inner_text("pre.code").strip() == code.strip()


@pytest.mark.slow
def test_report_in_the_browser(runs: Runs, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert evolve_cmd("report", str(runs.llm), "-o", "report.html", cwd=tmp_path).returncode == 0
    view = Watched(browser)
    view.page.goto((tmp_path / "report.html").as_uri())
    plots = view.plots()
    assert PLOTS <= set(plots) and all(marks > 0 for marks in plots.values()), plots
    # migrations and resets of the run are marked on the best-score plot
    markers = view.page.locator('svg[data-plot="best"] line.rule title').all_text_contents()
    assert any(t.startswith("migration") for t in markers) and any(" reset " in t for t in markers)
    assert_shows_the_database(view, runs, runs.run_id(runs.llm))
    view.assert_clean("file://")
    view.page.close()


@pytest.mark.slow
def test_live_view_picks_a_run_and_shows_what_is_stored_after_it_opened(runs: Runs, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server = subprocess.Popen([*EVOLVE, "ui", runs.url, "--port", "0", "--interval", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url is not None, line + server.stderr.read()  # type: ignore[union-attr]
        view = Watched(browser)
        view.page.goto(url.group(0))
        # two runs in the database: pick one from the list
        assert view.page.locator("ul.runs li").count() == 2
        run_id = runs.run_id(runs.llm)
        view.page.click(f'a[href="/run/{run_id}"]')
        view.page.wait_for_selector("#live-status")
        plots = view.plots()
        assert PLOTS <= set(plots) and all(marks > 0 for marks in plots.values()), plots
        assert_shows_the_database(view, runs, run_id)

        new_id = store_a_better_program(runs, run_id)
        expect(view.page.locator('dd[data-field="best program"]')).to_have_attribute("data-value", str(new_id),
                                                                                    timeout=15000)
        assert_shows_the_database(view, runs, run_id)
        assert view.page.locator(f'table.lineage tr[data-program="{new_id}"]').count() == 1
        assert "live, updated" in view.page.inner_text("#live-status")
        view.page.click("header >> text=all runs")  # back to the list, to pick the other run
        view.page.click(f'a[href="/run/{runs.run_id(runs.offline)}"]')
        assert int(view.field("evaluations")) == runs.query(
            "SELECT evaluations FROM runs WHERE id=?", runs.run_id(runs.offline))[0][0]
        view.assert_clean(url.group(0))
        view.page.close()
        # GET only, and only for pages addressed to 127.0.0.1 (another Host name: DNS rebinding)
        for request, code in [(Request(url.group(0) + f"run/{run_id}", headers={"Host": "evil.example"}), 403),
                              (Request(url.group(0) + f"run/{run_id}", data=b"x", method="POST"), 501)]:
            with pytest.raises(HTTPError) as refused:
                urlopen(request, timeout=10)
            assert refused.value.code == code
    finally:
        server.terminate()
        server.wait(timeout=10)


# Stored text is shown, never interpreted: this line must appear as code, fetch nothing and run nothing.
HOSTILE_LINE = ('# stored after the page opened </pre><script>console.error("ran")</script>'
                '<img src="http://192.0.2.1/x.png">\n')


def store_a_better_program(runs: Runs, run_id: int) -> int:
    """What the engine writes for a new champion: program, evaluation, proposal, run counters, event."""
    with sqlite3.connect(runs.db) as connection:
        best_id, best_score, hash_ = connection.execute(
            "SELECT best_program_id, best_score, evaluator_hash FROM runs WHERE id=?", (run_id,)).fetchone()
        code = connection.execute("SELECT code FROM programs WHERE id=?", (best_id,)).fetchone()[0]
        now = "2030-01-01 00:00:00.000000"
        cursor = connection.execute(
            "INSERT INTO programs (run_id, parent_id, island, code, code_hash, edit_kind, edit, proposer, status, score, "
            "signature, created) VALUES (?, ?, 0, ?, 'stored-after-opening', 'rewrite', '', 'test', 'valid', ?, '', ?)",
            (run_id, best_id, code + HOSTILE_LINE, best_score + 1.0, now))
        new_id = cursor.lastrowid
        connection.execute("INSERT INTO evaluations (program_id, split, valid, score, metrics, feedback, seconds, "
                           "evaluator_hash, epoch, created) VALUES (?, 'search', 1, ?, '{}', '', 0.1, ?, 0, ?)",
                           (new_id, best_score + 1.0, hash_, now))
        connection.execute("INSERT INTO proposals (run_id, island, parent_id, proposer, outcome, reason, edit, "
                           "program_id, created) VALUES (?, 0, ?, 'test', 'new', '', '', ?, ?)", (run_id, best_id, new_id, now))
        connection.execute("INSERT INTO events (run_id, kind, data, created) VALUES (?, 'champion', ?, ?)",
                           (run_id, json.dumps({"program_id": new_id, "search": best_score + 1.0, "heldout": None,
                                                "epoch": 0}), now))
        connection.execute("UPDATE runs SET evaluations=evaluations+1, proposals=proposals+1, best_program_id=?, "
                           "best_score=? WHERE id=?", (new_id, best_score + 1.0, run_id))
    return int(new_id)


@pytest.mark.slow
def test_a_certifying_run_shows_its_certification_timeline(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The short nash_guarantee run of tests/test_nash_run.py: the seed certified, then a better challenger.
    done = evolve_cmd("run", "problem=nash_guarantee", "llm=offline", "sandbox=process", "sandbox.allow_root=true",
                      "run.progress=false", "seed=5", "budget.evaluations=4", "search.islands=1", "search.proposers=1",
                      "search.evaluators=1", "run.dir=r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert evolve_cmd("report", "r", "-o", "report.html", cwd=tmp_path).returncode == 0
    view = Watched(browser)
    view.page.goto((tmp_path / "report.html").as_uri())
    plots = view.plots()
    assert plots.get("certification", 0) > 0 and all(marks > 0 for marks in plots.values()), plots
    with sqlite3.connect(tmp_path / "r" / "evolve.db") as connection:
        stored = connection.execute("SELECT id, kind, status, bound_float FROM certificates ORDER BY id").fetchall()
    assert any(kind == "certify" and status == "proven" for _, kind, status, _ in stored)
    for cid, kind, status, bound in stored:
        row = f'#certification tr[data-certificate="{cid}"]'
        assert view.page.inner_text(f"{row} td:nth-child(3)") == kind
        assert view.page.inner_text(f"{row} td:nth-child(4)") == status
        if bound is not None:
            assert float(view.page.get_attribute(f"{row} td:nth-child(6)", "data-value")) == bound
    view.assert_clean("file://")
    view.page.close()


@pytest.mark.slow
def test_a_long_run_is_downsampled_not_truncated(tmp_path: Path) -> None:
    from bench.report_size import build
    from evolve.report.data import LINEAGE_ROWS, MAX_DOTS, collect
    from evolve.report.report import write_report

    build(tmp_path / "run", 6000)  # the benchmark's synthetic run, smaller
    with sqlite3.connect(tmp_path / "run" / "evolve.db") as connection:
        best_id, best_score, evaluations = connection.execute(
            "SELECT best_program_id, best_score, evaluations FROM runs").fetchone()
        champions = connection.execute("SELECT COUNT(*) FROM events WHERE kind='champion'").fetchone()[0]
        parents = dict(connection.execute("SELECT id, parent_id FROM programs").fetchall())
    chain, head = [], best_id
    while head is not None:
        chain.append(head)
        head = parents[head]
    assert champions > MAX_DOTS and len(chain) > LINEAGE_ROWS  # both limits are exercised

    source = open_source(tmp_path / "run")
    try:
        data = collect(source, 1)
    finally:
        source.close()
    # the best-score line reaches the run's end and its best; the champion series spans all of them
    assert data["best"]["overall"][-1][1] == best_score and data["best"]["x_max"] == evaluations
    assert data["champions"]["champions"][-1]["program_id"] == best_id
    # the lineage chart has every step; the table the seed, the champion and at most LINEAGE_ROWS steps
    lineage = data["lineage"]
    assert lineage["length"] == len(chain) and lineage["scores"][-1][0] == len(chain) - 1
    shown = [s["program_id"] for s in lineage["steps"]]
    assert len(shown) == LINEAGE_ROWS and shown[0] == chain[-1] and shown[-1] == best_id

    html = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    champion_plot = re.search(r'<svg class="plot" data-plot="champions".*?</svg>', html).group(0)  # type: ignore[union-attr]
    assert MAX_DOTS < champion_plot.count('<circle class="mark"') <= 2 * MAX_DOTS  # search and held-out, thinned
    assert f'data-value="{best_score!r}"' in html
