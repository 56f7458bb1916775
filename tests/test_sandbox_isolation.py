"""Nothing one candidate does reaches a later one, and everything it does is measured.

Each hostile program runs through the project's own Evaluator on every tier that
claims isolation (and on the process tier as root, which runs each job in
namespaces of its own); then an honest program runs in the same sandbox (the same
warm container for Docker) and must get exactly the honest score.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import docker
import pytest

from evolve.config import compose_config
from evolve.sandbox.base import SandboxJob, SandboxLimits, decode_result, encode_job
from evolve.sandbox.factory import RootRefused, make_sandbox
from tests.sandbox_support import HONEST, HOSTILE, evaluator, make_backend, make_problem, new_marker, \
    run_containers, wait_until_gone

pytestmark = pytest.mark.timeout(180)
TIERS = [pytest.param("process", marks=pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")),
         pytest.param("bwrap", marks=pytest.mark.bwrap), pytest.param("docker-pool", marks=pytest.mark.docker)]


def honest_score(problem, backend: str) -> float:
    async def score() -> float:
        sandbox = make_backend(backend, f"test-honest-{uuid.uuid4().hex[:8]}")
        try:
            return (await evaluator(problem, sandbox).evaluate(HONEST, "search")).score
        finally:
            await sandbox.close()
    return asyncio.run(score())


@pytest.mark.slow
@pytest.mark.parametrize("backend", TIERS)
async def test_a_takeover_attempt_does_not_reach_the_next_candidate(backend: str, tmp_path: Path) -> None:
    marker = new_marker()
    problem = make_problem(tmp_path / "problem", [{"marker": marker}] * 2, "unused")
    run_id = f"test-takeover-{uuid.uuid4().hex[:8]}"
    sandbox = make_backend(backend, run_id, pool_size=1)
    try:
        hostile = await evaluator(problem, sandbox).evaluate((HOSTILE / "takeover.py").read_text(), "search")
        assert not hostile.valid
        scores = [(await evaluator(problem, sandbox).evaluate(HONEST, "search")).score for _ in range(3)]
        if backend == "docker-pool":
            (container,) = run_containers(run_id)  # the very container the hostile job ran in
            assert docker.from_env().api.inspect_container(container["Id"])["LogPath"] == ""
    finally:
        await sandbox.close()
    assert scores == [1.0, 1.0, 1.0]  # every later candidate got its own, honest score
    assert wait_until_gone(marker) == []


async def test_a_takeover_candidate_cannot_trace_or_log_in_docker(tmp_path: Path) -> None:
    marker = new_marker()
    sandbox = make_backend("docker-pool", f"test-takeover-{uuid.uuid4().hex[:8]}", pool_size=1)
    try:
        code = (HOSTILE / "takeover.py").read_text()
        result = await sandbox.run(SandboxJob(code, "main", (("c1", {"marker": marker}),), SandboxLimits()))
    finally:
        await sandbox.close()
    output = result.runs[0].output
    # Nothing outside its own processes can be attached to, and PID 1's output is out of reach.
    assert output["answer"] == "PWNED" and output["attached"] == 0 and output["logged"] == 0


@pytest.mark.parametrize("backend", TIERS)
async def test_ipc_objects_do_not_outlive_a_job(backend: str, tmp_path: Path) -> None:
    problem = make_problem(tmp_path / "problem", [{}], "unused")
    code = (HOSTILE / "leave_ipc.py").read_text()
    sandbox = make_backend(backend, f"test-ipc-{uuid.uuid4().hex[:8]}", pool_size=1)
    try:
        left = await sandbox.run(SandboxJob(code, "leave", (("c1", {}),), SandboxLimits()))
        # The attack itself worked (bubblewrap's /dev/shm is not even writable).
        assert left.runs[0].output["made"][:3] == ["shm", "msg", "mq"]
        probe = await evaluator(problem, sandbox).evaluate(code.replace("def probe(", "def main("), "search")
    finally:
        await sandbox.close()
    assert probe.valid and probe.score == 1.0, probe.feedback


@pytest.mark.slow
@pytest.mark.parametrize("backend", TIERS)
async def test_import_time_work_is_charged_and_later_inputs_are_invisible(backend: str, tmp_path: Path) -> None:
    needles = [{"needle": f"NEEDLE{uuid.uuid4().hex[:12]}"} for _ in range(3)]
    problem = make_problem(tmp_path / "problem", needles, "unused")
    sandbox = make_backend(backend, f"test-peek-{uuid.uuid4().hex[:8]}")
    try:
        result = await evaluator(problem, sandbox).evaluate((HOSTILE / "peek_ahead.py").read_text(), "search")
        job = SandboxJob((HOSTILE / "peek_ahead.py").read_text(), "main",
                         tuple((c.id, c.inputs) for c in problem.split("search")), SandboxLimits())
        runs = (await sandbox.run(job)).runs
    finally:
        await sandbox.close()
    assert result.valid and result.score == 1.0, result.feedback  # no later case's input was visible
    # The 0.5 s spent importing is charged to the first case, as CPU time of the candidate.
    assert runs[0].cpu_seconds >= 0.5 and runs[0].seconds >= 0.5
    assert all(run.cpu_seconds < 0.5 for run in runs[1:])


NESTED = textwrap.dedent('''
    def main(x, depth=0, digits=0, **_):
        if digits:
            return {"answer": 10 ** digits}
        value = 2 * x
        for _ in range(depth):
            value = [value]
        return {"answer": value}
''')


@pytest.mark.parametrize("backend", ["process", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                     pytest.param("docker-pool", marks=pytest.mark.docker)])
@pytest.mark.parametrize("inputs, reason", [({"depth": 900}, "nested deeper than 66 levels"),
                                            ({"digits": 400}, "an integer of 401 digits")])
@pytest.mark.slow
async def test_a_deep_or_huge_result_is_the_candidates_error(backend: str, inputs: dict, reason: str,
                                                              tmp_path: Path) -> None:
    problem = make_problem(tmp_path / "problem", [inputs, {}], "unused")
    sandbox = make_backend(backend, f"test-bounds-{uuid.uuid4().hex[:8]}")
    try:
        result = await evaluator(problem, sandbox).evaluate(NESTED, "search")
        honest = await evaluator(problem, sandbox).evaluate(HONEST, "search")
    finally:
        await sandbox.close()
    assert not result.valid and reason in result.verdicts["c1"].feedback
    assert result.verdicts["c2"].valid  # only the case with the absurd value failed
    assert honest.valid and honest.score == 1.0


def test_the_host_refuses_a_forged_deep_or_huge_result_line() -> None:
    job = SandboxJob("", "main", (("c1", {}),), SandboxLimits())
    nonce, _ = encode_job(job)
    for value in ("[" * 5000 + "]" * 5000, "1" + "0" * 400):
        line = f'{nonce} {{"cases": [{{"id": "c1", "status": "ok", "output": {value}, "seconds": 0}}]}}'
        result = decode_result(job, nonce, line.encode(), 0.1)
        assert result.failure.startswith("the sandbox runner's result was malformed")
        assert result.runs[0].status == "sandbox"


SECRET_PROBE = textwrap.dedent('''
    import os

    def main(secret, **_):
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if secret.encode() in open(f"/proc/{name}/environ", "rb").read():
                        found.append(int(name))
                except OSError:
                    pass
        return {"found": found, "pids": len([n for n in os.listdir("/proc") if n.isdigit()])}
''')

ENGINE = textwrap.dedent('''
    import asyncio, json, sys
    from evolve.sandbox.base import SandboxJob, SandboxLimits
    from evolve.sandbox.process import ProcessSandbox

    async def main():
        job = SandboxJob(sys.stdin.read(), "main", (("c1", {"secret": sys.argv[1]}),), SandboxLimits())
        print(json.dumps((await ProcessSandbox().run(job)).runs[0].output))

    asyncio.run(main())
''')


@pytest.mark.skipif(os.geteuid() != 0, reason="the process tier's namespaces are made as root")
def test_the_process_tier_hides_the_engines_environment_as_root() -> None:
    secret = f"sk-{uuid.uuid4().hex}"
    env = {**os.environ, "OPENAI_API_KEY": secret}
    done = subprocess.run([sys.executable, "-c", ENGINE, secret], input=SECRET_PROBE, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    output = eval(done.stdout)  # noqa: S307 - the JSON printed above, made of lists and numbers
    assert output["found"] == [] and output["pids"] <= 3  # it sees only its own job's processes


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
@pytest.mark.parametrize("group", ["process", "auto"])
def test_the_process_tier_is_refused_as_root_unless_allowed(group: str, monkeypatch, tmp_path: Path) -> None:
    if group == "auto":  # nothing isolating is available
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RootRefused, match=r"sandbox\.allow_root=true"):
        make_sandbox(compose_config([f"sandbox={group}"]), "test-refused")
    allowed = make_sandbox(compose_config([f"sandbox={group}", "sandbox.allow_root=true"]), "test-allowed")
    assert allowed.name == "process"


HAUNT = '''
import os as _os
if _os.fork() == 0:  # a daemon that outlives this job and rewrites whatever candidate comes next
    _os.setsid()
    if _os.fork() == 0:
        import glob as _glob, time as _time
        _end = _time.monotonic() + 60
        while _time.monotonic() < _end:
            for _path in _glob.glob("/scratch/job/candidate.py") + _glob.glob("/tmp/evolve-jobs/*/candidate.py"):
                try:
                    open(_path, "w").write("def construct(n):\\n    raise SystemExit('taken over')\\n")
                except OSError:
                    pass
            _time.sleep(0.002)
    _os._exit(0)
'''


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(300)
def test_a_real_run_stores_the_honest_score_of_every_program_after_a_takeover_attempt(tmp_path: Path) -> None:
    """Through `evolve run`, an LLM endpoint and the warm pool: the first proposal plants a daemon."""
    import evolve
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem
    from evolve.sandbox.factory import limits_from
    from evolve.sandbox.process import ProcessSandbox
    from tests.conftest import query
    from tests.fake_llm import FakeLLM, Reply, parent_code, tweak_author

    honest = tweak_author(seed=4)

    def script(index: int, body: dict) -> Reply:
        if index == 0:
            code = parent_code(body).replace("# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-START\n" + HAUNT, 1)
            return Reply(f"A new idea.\n```python\n{code}```\n")
        return Reply(honest(index, body))

    run_dir = tmp_path / "run"
    overrides = [f"run.dir={run_dir}", "sandbox=docker", "sandbox.pool_size=1", "run.progress=false",
                 "budget.evaluations=8", "search.proposers=1", "search.evaluators=1", "llm=openai",
                 "llm.api_key_env=EVOLVE_FAKE_KEY", "llm.backoff_base=0.01", "verification.recheck_champion=false"]
    os.environ["EVOLVE_FAKE_KEY"] = "sk-test"
    with FakeLLM(script) as fake:
        evolve.run([*overrides, f"llm.base_url={fake.url}"])
    stored = query(run_dir, "SELECT p.code, e.valid, e.score FROM programs p JOIN evaluations e "
                            "ON e.program_id = p.id WHERE e.split = 'search'")
    assert any("setsid" in code for code, _, _ in stored)  # the attack was evaluated ...
    cfg = compose_config(["problem=circle_packing", "sandbox=process", "sandbox.allow_root=true"])
    judge = Evaluator(load_problem(cfg), ProcessSandbox(), limits_from(cfg), "honest")
    others = [(code, valid, score) for code, valid, score in stored if "setsid" not in code]
    assert len(others) >= 6
    for code, valid, score in others:  # ... and every other program kept its own, honest score
        again = asyncio.run(judge.evaluate(code, "search"))
        assert bool(valid) == again.valid and (score is None or score == pytest.approx(again.score, rel=1e-9))
