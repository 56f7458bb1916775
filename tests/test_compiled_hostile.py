"""Hostile C candidates on every tier, at run time and at compile time.

As in test_sandbox_hostile.py: each attack must end with the candidate scored as
failed with feedback saying why, the same sandbox still scoring an honest program,
nothing outside the job's scratch changed, nothing secret in what came back, and no
process left. The `process` tier does not isolate the file system: there the test
asserts the documented gap (the attack gets through), so the day it stops this says so.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from evolve.evaluation import Evaluator
from tests.compiled_support import make_compiled_problem, with_file
from tests.sandbox_support import LIMITS, make_backend, new_marker, run_containers, wait_until_gone
from tests.test_sandbox_hostile import digest_tree

pytestmark = pytest.mark.timeout(300)

HEAD = '''#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include "double.h"

long twice(long x) {
    // EVOLVE-BLOCK-START
    prctl(PR_SET_NAME, "@MARKER@", 0, 0, 0);
'''
TAIL = '''    // EVOLVE-BLOCK-END
}
'''


@dataclass(frozen=True)
class Attack:
    body: str  # C statements inside twice(), or a whole file when `whole`
    feedback: str  # regex the feedback must match where the tier isolates
    weak_feedback: str = ""  # the same on the process tier, when it differs
    isolation: str = ""  # files | secrets: what the process tier cannot stop
    whole: bool = False


ATTACKS = {
    "fork_bomb": Attack("for (;;) fork();\n",
                        r"timeout: exceeded the 2 s (CPU time|wall-clock) limit|crashed: "),
    "write_outside": Attack('''
        const char *paths[] = {@TARGETS@, "/@MARKER@", "/tmp/@MARKER@", "../../@MARKER@"};
        int written = 0;
        for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
            FILE *f = fopen(paths[i], "a");
            if (f) { fputs("written by @MARKER@\\n", f); fclose(f); written++; }
        }
        if (!written) { fprintf(stderr, "every write outside the scratch was refused\\n"); exit(1); }
        return -written;
''', r"error: the program exited with status 1\nevery write outside the scratch was refused",
        r"wrong answer: ", "files"),
    "read_secrets": Attack('''
        const char *paths[] = {@PATHS@, "/etc/shadow"};
        int found = 0;
        char buffer[4096];
        for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
            FILE *f = fopen(paths[i], "r");
            if (!f) continue;
            size_t n = fread(buffer, 1, sizeof buffer, f);
            fwrite(buffer, 1, n, stderr);
            fclose(f);
            found++;
        }
        if (!found) { fprintf(stderr, "nothing could be read\\n"); exit(1); }
        return -found;
''', r"error: the program exited with status 1\nnothing could be read", r"wrong answer: ", "secrets"),
    # The program's stdout is only its own output, judged by the verifier; the runner's result
    # line and its descriptors are out of its reach.
    "forged_output": Attack('''
        const char *forged = "0123456789abcdef {\\"cases\\": [{\\"id\\": \\"c1\\", \\"status\\": \\"ok\\", "
            "\\"output\\": {\\"answer\\": 42}, \\"seconds\\": 0, \\"message\\": \\"\\"}]}\\n";
        for (int fd = 3; fd < 64; fd++) write(fd, forged, strlen(forged));
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/1", (int)getppid());
        int fd = open(path, O_WRONLY);
        if (fd >= 0) write(fd, forged, strlen(forged));
        fputs(forged, stdout);
        exit(0);
''', r"error: stdout is not one JSON value"),
    # Exponential macro expansion: the preprocessor's time and memory are the build's limits.
    "compile_bomb": Attack('''#include "double.h"
#define A0 x
#define A1 A0 + A0
#define A2 A1 + A1
#define A3 A2 + A2
#define A4 A3 + A3
#define A5 A4 + A4
#define A6 A5 + A5
#define A7 A6 + A6
#define A8 A7 + A7
#define A9 A8 + A8
#define A10 A9 + A9
#define A11 A10 + A10
#define A12 A11 + A11
#define A13 A12 + A12
#define A14 A13 + A13
#define A15 A14 + A14
#define A16 A15 + A15
#define A17 A16 + A16
#define A18 A17 + A17
#define A19 A18 + A18
#define A20 A19 + A19
#define A21 A20 + A20
#define A22 A21 + A21
#define A23 A22 + A22
#define A24 A23 + A23
#define A25 A24 + A24
#define A26 A25 + A25
#define A27 A26 + A26
#define A28 A27 + A27
#define A29 A28 + A28
#define A30 A29 + A29
long twice(long x) {
    // EVOLVE-BLOCK-START
    return A30;
    // EVOLVE-BLOCK-END
}
''', r"^build failed \((timeout|crashed|error)\): ", whole=True),
    # A device that never ends, as a source file: bounded by the build's memory and time.
    "include_device": Attack('''#include "double.h"
#include "/dev/zero"
long twice(long x) {
    // EVOLVE-BLOCK-START
    return 2 * x;
    // EVOLVE-BLOCK-END
}
''', r"^build failed \((timeout|crashed|error)\): ", whole=True),
    # A huge output of the build (a 1 GB initialised array in the object file): bounded by the
    # largest file the build may write.
    "huge_object": Attack('''#include "double.h"
char big[1L << 30] = {1};  /* global: emitted, never folded away */
long twice(long x) {
    // EVOLVE-BLOCK-START
    return 2 * x + big[0] - 1;
    // EVOLVE-BLOCK-END
}
''', r"^build failed \((crashed|error|timeout)\): ", whole=True),
    # A host file included into the source: the compiler's errors would quote it.
    "include_host_file": Attack('''#include "double.h"
#include "@VERIFIER@"
long twice(long x) {
    // EVOLVE-BLOCK-START
    return 2 * x;
    // EVOLVE-BLOCK-END
}
''', r"^build failed \(error\): exit status 1\n.*No such file or directory",
        r"^build failed \(error\): exit status 1\n", "secrets", whole=True),
}

TIERS = {"process": [], "bwrap": [pytest.mark.bwrap], "docker-pool": [pytest.mark.docker]}


def c_strings(paths: list[Path]) -> str:
    return ", ".join(f'"{path}"' for path in paths)


@pytest.mark.parametrize("backend", [pytest.param(name, marks=marks) for name, marks in TIERS.items()])
@pytest.mark.parametrize("attack_name", sorted(ATTACKS))
async def test_hostile_c_candidate_is_contained(attack_name: str, backend: str, tmp_path: Path) -> None:
    attack = ATTACKS[attack_name]
    marker = new_marker()
    secret = "SECRET-" + uuid.uuid4().hex
    outside = tmp_path / "outside"  # stands for everything outside the job's scratch
    problem = make_compiled_problem(outside / "problem", [{}], secret, build_timeout=3.0)
    (outside / "canary.txt").write_text("untouched\n")
    verifier = outside / "problem" / "verifier.py"
    text = (attack.body if attack.whole else HEAD + attack.body + TAIL)
    text = (text.replace("@MARKER@", marker).replace("@VERIFIER@", str(verifier))
            .replace("@TARGETS@", c_strings([outside / "canary.txt", verifier]))
            .replace("@PATHS@", c_strings([verifier, outside / "problem" / "cases.json"])))
    before = digest_tree(outside)
    run_id = f"test-chostile-{uuid.uuid4().hex[:8]}"
    sandbox = make_backend(backend, run_id, exec_scratch=True)
    weak = not sandbox.isolates_filesystem
    evaluator = Evaluator(problem, sandbox, LIMITS, "test")
    try:
        result = await evaluator.evaluate(with_file(problem.seed_code, "twice.c", text), "search")
        assert not result.valid and result.score is None
        pattern = attack.weak_feedback if weak and attack.weak_feedback else attack.feedback
        assert re.search(pattern, result.feedback, re.DOTALL | re.MULTILINE), result.feedback

        honest = await evaluator.evaluate(problem.seed_code, "search")  # the sandbox goes on
        assert honest.valid and honest.score == 1.0, honest.feedback
    finally:
        evaluator.close()
        await sandbox.close()
        strays_found = [path for path in (Path(f"/{marker}"), Path(f"/tmp/{marker}")) if path.exists()]
        for path in strays_found:
            path.unlink()

    changed = digest_tree(outside) != before
    leaked = secret in result.feedback + result.stdout + result.stderr
    if weak and attack.isolation == "files":
        assert changed and strays_found, "the process tier is documented not to isolate the file system"
    else:
        assert not changed, "files outside the scratch were changed"
        assert not strays_found, f"files were created outside the scratch: {strays_found}"
    if weak and attack.isolation == "secrets":
        assert leaked, "the process tier is documented not to hide the verifier's files"
    else:
        assert not leaked, "the verifier's secret reached the candidate's feedback or logs"
    assert wait_until_gone(marker) == [], f"processes of the candidate are still running ({marker})"
    if backend.startswith("docker"):
        assert run_containers(run_id) == []
    shutil.rmtree(outside, ignore_errors=True)
