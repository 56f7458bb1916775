"""Regenerate docs/report.png and docs/live-view.png from a real short search.

The search proposes through the tests' scripted OpenAI-compatible endpoint on 127.0.0.1 (two
models, so the LLM views have something to show); the live view is taken while it runs.
Needs Debian's chromium and Playwright (the `test` extra).

    python docs/screenshots.py
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.fake_llm import FakeLLM, author_script, tweak_author  # noqa: E402

EVOLVE = [sys.executable, "-m", "evolve"]
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
MODELS = "llm.models=[{name:large-model,price_in:3.0,price_out:15.0},{name:small-model,price_in:0.1,price_out:0.4}]"


def evaluations(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            rows = connection.execute("SELECT evaluations FROM runs").fetchall()
        return rows[0][0] if rows else 0
    except sqlite3.OperationalError:
        return 0


def main() -> None:
    env = {**os.environ, "DOCS_KEY": "sk-docs", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as scratch, FakeLLM(author_script(tweak_author(seed=11), latency=0.15)) as llm:
        run_dir = Path(scratch) / "run"
        search = subprocess.Popen([*EVOLVE, "run", f"run.dir={run_dir}", "sandbox=process", "sandbox.allow_root=true",
                                   "run.progress=false",
                                   "budget.evaluations=80", "search.migration_interval=15", "search.reset_interval=40",
                                   "llm=openai", f"llm.base_url={llm.url}", "llm.api_key_env=DOCS_KEY",
                                   "llm.selection=ucb", MODELS], env=env, stdout=subprocess.DEVNULL)
        while evaluations(run_dir / "evolve.db") < 45:
            time.sleep(0.5)
        ui = subprocess.Popen([*EVOLVE, "ui", str(run_dir), "--port", "0", "--interval", "1"], env=env,
                              stdout=subprocess.PIPE, text=True)
        url = re.search(r"http://\S+/", ui.stdout.readline()).group(0)  # type: ignore[union-attr]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1500})
            page.goto(url)
            page.wait_for_timeout(2500)  # a few live updates
            page.screenshot(path=str(ROOT / "docs" / "live-view.png"))
            ui.terminate()
            search.wait()
            subprocess.run([*EVOLVE, "report", str(run_dir), "-o", str(run_dir / "report.html")], env=env, check=True)
            page.goto((run_dir / "report.html").as_uri())
            page.locator("#lineage details").last.evaluate("d => d.open = true")
            page.screenshot(path=str(ROOT / "docs" / "report.png"), full_page=True)
            browser.close()
    print("wrote docs/live-view.png and docs/report.png")


if __name__ == "__main__":
    main()
