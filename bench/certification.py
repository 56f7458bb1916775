"""What certification costs, on the nash_guarantee baselines.

    python bench/certification.py [--repeat 5]

Prints, per baseline:
- the search score: the numeric adversary, 8 starts (what every candidate pays),
- a held-out verify: the adversary with 24 starts, plus real games when the blocks can run,
- one gate through the engine's worker process (python -m evolve.certify_worker), against the
  same gate called in this process: the difference is the worker's start-up overhead,
- the worker's peak memory (max RSS of the children).
DFM's gate at 1/3 is a minute-long proof; it is left out unless named (`--with-dfm`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evolve.certification import Certifier  # noqa: E402
from evolve.problem import Case, load_verifier  # noqa: E402
from evolve.sandbox.base import CaseRun  # noqa: E402
from evolve.verifier_source import VerifierSource  # noqa: E402

BASELINES = ROOT / "problems" / "nash_guarantee" / "baselines"
VERIFIER = ROOT / "problems" / "nash_guarantee" / "verifier.py"
verifier = load_verifier(VERIFIER)
SETTINGS = {"search_starts": 8, "gate_margin": "1/1000000", "width": "1/1000000", "call_timeout": 300}
# Gate bounds: just above each baseline's certified value, so every gate is a proof (unsat).
BOUNDS = {"dmp": "0.51", "kps": "0.76", "bbm": "0.39", "ts": "0.35", "dfm": "0.3333343"}


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-dfm", action="store_true")
    args = parser.parse_args()
    names = ["dmp", "kps", "bbm", "ts"] + (["dfm"] if args.with_dfm else [])
    certifier = Certifier(VerifierSource.read(VERIFIER), SETTINGS, 600, 900, 10)
    print(f"{'baseline':10s} {'search':>8s} {'held-out':>9s} {'gate in-process':>16s} {'gate via worker':>16s} "
          f"{'overhead':>9s}")
    for name in names:
        algorithm = json.loads((BASELINES / f"{name}.json").read_text())["algorithm"]
        search, search_s = timed(verifier.verify, Case("c", "search", {}, {"seed": 1}),
                                 CaseRun("c", "ok", algorithm, 0.0, ""), SETTINGS)
        _, heldout_s = timed(verifier.verify, Case("h", "heldout", {}, {"seeds": [1001], "starts": 24,
                                                                         "games": {"seed": 7}}),
                             CaseRun("h", "ok", algorithm, 0.0, ""), SETTINGS)
        subject = search.metrics["subject"]
        local, worker = [], []
        for _ in range(args.repeat):
            answer, seconds = timed(verifier.gate, subject, BOUNDS[name], SETTINGS, 600)
            assert answer["status"] == "proven", answer
            local.append(seconds)
            started = time.perf_counter()
            result = asyncio.run(certifier.gate(subject, BOUNDS[name]))
            worker.append(time.perf_counter() - started)
            assert result.status == "proven", result
        lm, wm = statistics.median(local), statistics.median(worker)
        print(f"{name:10s} {search_s:7.2f}s {heldout_s:8.2f}s {lm:15.3f}s {wm:15.3f}s {wm - lm:8.3f}s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory of a worker process: {peak:.0f} MB (max RSS over all calls)")


if __name__ == "__main__":
    main()
