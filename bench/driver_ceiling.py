"""The driver's ceiling and its CPU cost per candidate.

Two measurements, each a whole `evolve.run` through its seams (evolve/seams.py), nothing patched:

`ceiling`: candidates per second the engine schedules, verifies and stores when evaluation
is instant. Stubbed: only the sandbox. `InstantSandbox` runs nothing; it answers each case at
once with status "ok" and a number derived from the candidate's hash (so scores vary and the
islands evolve). Everything else is real: the configured proposer (the offline mutator, or the
real `openai` client against the scripted endpoint of tests/fake_llm.py, served from a process
of its own on 127.0.0.1 and answering at once), the engine, the real Evaluator with the
problem's verifier in its worker process (evolve/verifier_process.py), held-out and re-check
evaluations of champions, and the store (SQLite in the run directory, or a real PostgreSQL 15
started like tests/postgres_support.py does).

`docker`: the engine process's CPU per candidate with the Docker tier (warm pool, real
containers) and the real `openai` client against the stub endpoint, on SQLite: HTTP client,
prompt, edit, hash, Docker API round trips, database. The candidate runs in its container and
the verifier in its worker process: neither is counted (both are other processes).

Figures are steady state: from the 10th stored candidate to the last, wall clock, this
process's CPU time (all its threads; `resource.getrusage`) and the CPU time of the thread that
runs the event loop (what blocks the loop; the rest is the database and sandbox threads). `--profile` runs once more under
yappi (CPU clock, every thread) and prints where the engine's CPU goes, per phase: each
function's own time, with the C functions it calls, is given to the phase of its module.
Profiling slows the run; its shares, not its totals, are the figure.

    python bench/driver_ceiling.py ceiling [--store sqlite postgres] [--proposer offline openai] [--runs 3]
    python bench/driver_ceiling.py docker [--candidates 200] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evolve  # noqa: E402
from evolve.db.store import Store, sqlite_url  # noqa: E402
from evolve.sandbox.base import CaseRun, SandboxJob, SandboxResult  # noqa: E402
from tests.fake_llm import author_in_process, tiny_problem  # noqa: E402

WARMUP = 10  # stored candidates left out of the steady state (start-up, first containers)


class InstantSandbox:
    """Runs nothing: every case answers at once, "ok", with a number the candidate's hash decides."""

    name = "instant"
    identity = "instant:bench"
    isolates_filesystem = False
    isolates_network = False

    async def run(self, job: SandboxJob) -> SandboxResult:
        digest = int(hashlib.blake2b(job.code.encode(), digest_size=8).hexdigest(), 16)
        output = 2.0 + (digest % 20_000) / 10_000  # 2.0 .. 4.0; the tiny problem's target is 3.0
        return SandboxResult(tuple(CaseRun(case_id, "ok", output, 0.0) for case_id, _ in job.cases))

    async def close(self) -> None:
        return None


def loop_cpu_seconds() -> float:
    """CPU time of the main thread, the one running the event loop."""
    return time.clock_gettime(time.pthread_getcpuclockid(threading.main_thread().ident))  # type: ignore[arg-type]


def cpu_seconds() -> float:
    """This process's CPU time, every thread (not its children: the verifier workers, the endpoint)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedStore(Store):
    """The SQL store, noting when (wall, CPU) each evaluated candidate was stored."""

    def __init__(self, url: str, profile: bool = False) -> None:
        super().__init__(url, create=True)
        self.stamps: list[tuple[float, float, float]] = []
        self.profile = profile  # start the profiler once past the warm-up (imports, first containers)

    def store_result(self, *args: Any, **kwargs: Any) -> int:
        program_id = super().store_result(*args, **kwargs)
        self.stamps.append((time.perf_counter(), cpu_seconds(), loop_cpu_seconds()))
        if self.profile and len(self.stamps) == WARMUP + 1:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start(builtins=True, profile_threads=True)
        return program_id


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    from tests.postgres_support import PostgresServer

    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


def one_run(workdir: Path, name: str, candidates: int, sandbox: str, proposer: str, store_url: str | None,
            extra: list[str], profile: bool = False) -> dict[str, float]:
    run_dir = workdir / name
    problem = tiny_problem(workdir / "problem", sleep=0.0)
    overrides = [f"run.dir={run_dir}", "run.progress=false", f"budget.evaluations={candidates}", *problem, *extra]
    store = TimedStore(store_url or sqlite_url(_made(run_dir)), profile)
    with contextlib.ExitStack() as stack:
        if proposer == "openai":
            url = stack.enter_context(author_in_process(seed=1))
            overrides += ["llm=openai", f"llm.base_url={url}", "llm.api_key_env=", "llm.models=[{name:fake}]",
                          "llm.timeout=30"]
        if sandbox == "docker":
            overrides += ["sandbox=docker", "sandbox.allow_root=true"]
        seams = {"sandbox": InstantSandbox()} if sandbox == "instant" else {}
        try:
            evolve.run(overrides, store=store, **seams)
        finally:
            if profile:
                import yappi

                yappi.stop()
    stamps = store.stamps
    if len(stamps) <= WARMUP + 1:
        raise SystemExit(f"only {len(stamps)} candidates stored; raise --candidates")
    (wall0, cpu0, loop0), (wall1, cpu1, loop1) = stamps[WARMUP], stamps[-1]
    count = len(stamps) - 1 - WARMUP
    return {"rate": count / (wall1 - wall0), "cpu_ms": (cpu1 - cpu0) / count * 1000,
            "loop_ms": (loop1 - loop0) / count * 1000, "stored": count}


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------- profile

PHASES = [  # (phase, module path fragments), first match wins
    # typing's runtime checks come from the openai client's request transform
    ("HTTP client (openai, httpx)", ("/openai/", "/httpx", "/httpcore", "/h11", "/anyio/", "/sniffio/",
                                     "/ssl.py", "/pydantic", "/distro/", "/typing.py", "/typing_extensions.py")),
    ("prompt", ("evolve/prompts.py", "/string.py")),
    ("reply parsing", ("evolve/proposers/replies.py",)),
    ("proposer (offline mutator, model choice)", ("evolve/proposers/",)),
    ("edit, hash, diff", ("evolve/edits.py", "/difflib.py", "/ast.py", "/tokenize.py", "evolve/bundle.py")),
    # http.client and email parse the daemon's replies (requests); httpx does not use them
    ("Docker API round trips", ("/docker/", "/requests/", "/urllib3/", "evolve/sandbox/docker.py", "/http/",
                                "/email/", "/socket.py", "/charset_normalizer/", "/idna/", "/urllib/")),
    ("sandbox job encode/decode", ("evolve/sandbox/", "sandbox/runner.py", "/base64.py", "/secrets.py")),
    ("verifier round trip (engine side)", ("evolve/verifier_process.py", "evolve/evaluation.py",
                                           "/subprocess.py")),
    ("database (SQLAlchemy, driver, rows)", ("/sqlalchemy/", "/sqlmodel/", "/sqlite3/", "/psycopg",
                                             "evolve/db/", "evolve/recorder.py")),
    ("engine, islands, policy", ("evolve/engine.py", "evolve/islands.py", "evolve/policy.py",
                                 "evolve/champions.py", "evolve/alarms.py", "/random.py")),
    ("JSON", ("/json/",)),
    ("event loop, threads, queues", ("/asyncio/", "/selectors.py", "/threading.py", "/concurrent/",
                                     "/queue.py", "/contextvars", "/weakref.py")),
]


def phase_of(path: str) -> str:
    for phase, fragments in PHASES:
        if any(fragment in path for fragment in fragments):
            return phase
    return "other"


def print_profile(count: int) -> None:
    """CPU per candidate by phase, from yappi's stats of the last run."""
    import yappi

    stats = yappi.get_func_stats()
    totals: dict[str, float] = {}
    for stat in stats:
        if stat.builtin:
            continue  # counted with its caller below
        own = stat.tsub + sum(child.tsub for child in stat.children if child.builtin)
        totals[phase_of(stat.module)] = totals.get(phase_of(stat.module), 0.0) + own
    orphan = sum(s.tsub for s in stats if s.builtin) - sum(
        c.tsub for s in stats if not s.builtin for c in s.children if c.builtin)
    if orphan > 0:
        totals["C functions called from C (unattributed)"] = orphan
    whole = sum(totals.values())
    print(f"\nCPU by phase under the profiler ({count} candidates; shares of {whole / count * 1000:.1f} ms "
          "per candidate as profiled):")
    for phase, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {phase:<44} {seconds / count * 1000:>7.2f} ms  {seconds / whole:>5.0%}")
    if os.environ.get("EVOLVE_BENCH_TOP"):  # the functions behind the phases, for the one profiling
        own = sorted(((s.tsub + sum(c.tsub for c in s.children if c.builtin), s) for s in stats if not s.builtin),
                     key=lambda item: -item[0])
        for seconds, stat in own[:int(os.environ["EVOLVE_BENCH_TOP"])]:
            print(f"    {seconds / count * 1000:>7.2f} ms  {stat.module}:{stat.lineno} {stat.name}")
    yappi.clear_stats()


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["ceiling", "docker"])
    parser.add_argument("--store", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--proposer", nargs="+", choices=["offline", "openai"], default=["offline", "openai"])
    parser.add_argument("--candidates", type=int, default=None, help="evaluations per run (600 ceiling, 200 docker)")
    parser.add_argument("--runs", type=int, default=3, help="runs per setting; the median is printed")
    parser.add_argument("--profile", action="store_true", help="then one more run under yappi, by phase")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides (e.g. search.proposers=4 search.evaluators=4)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; tiny problem "
          f"(tests/fake_llm.py), {args.runs} runs per setting; extra overrides: {args.set or 'none'}")
    print(f"{'setting':<28} {'cand/s':>9} {'CPU ms/cand':>12} {'loop ms/cand':>13}   (medians; then each run)")
    if args.mode == "ceiling":
        candidates = args.candidates or 600
        for store in args.store:
            with postgres() if store == "postgres" else contextlib.nullcontext() as server:
                for proposer in args.proposer:
                    results = []
                    label = f"instant, {proposer}, {store}"
                    with tempfile.TemporaryDirectory(prefix="evolve-ceiling-") as tmp:
                        for index in range(args.runs):
                            url = server.database() if server is not None else None
                            results.append(one_run(Path(tmp), f"run-{proposer}-{index}", candidates, "instant",
                                                   proposer, url, args.set))
                    _print(label, results)
                    if args.profile:
                        with tempfile.TemporaryDirectory(prefix="evolve-ceiling-") as tmp:
                            url = server.database() if server is not None else None
                            done = one_run(Path(tmp), "profiled", candidates, "instant", proposer, url, args.set,
                                           profile=True)
                        print_profile(int(done["stored"]))
    else:
        candidates = args.candidates or 200
        results = []
        with tempfile.TemporaryDirectory(prefix="evolve-docker-") as tmp:
            for index in range(args.runs):
                results.append(one_run(Path(tmp), f"run-{index}", candidates, "docker", "openai", None, args.set))
        _print("docker, openai, sqlite", results)
        if args.profile:
            with tempfile.TemporaryDirectory(prefix="evolve-docker-") as tmp:
                done = one_run(Path(tmp), "profiled", candidates, "docker", "openai", None, args.set, profile=True)
            print_profile(int(done["stored"]))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def _print(label: str, results: list[dict[str, float]]) -> None:
    if not results:  # --runs 0: only the profile
        return
    rates = [r["rate"] for r in results]
    cpus = [r["cpu_ms"] for r in results]
    loops = [r["loop_ms"] for r in results]
    print(f"{label:<28} {statistics.median(rates):>9.1f} {statistics.median(cpus):>12.2f} "
          f"{statistics.median(loops):>13.2f}   "
          f"runs: {', '.join(f'{r:.0f}/s {c:.1f} ms' for r, c in zip(rates, cpus))}", flush=True)


if __name__ == "__main__":
    main()
