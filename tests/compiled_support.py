"""A tiny compiled problem for the sandbox tests: a C program answers {"answer": 2 * x}.

The problem folder is written like a user's: problem.yaml, the C files, a verifier. The
build stamps the program with the time it was built, and the program prints that stamp,
so a test can tell whether two evaluations ran the same build.
"""

from __future__ import annotations

import json
from pathlib import Path

from evolve.config import compose_config
from evolve.problem import Problem, load_problem
from tests.sandbox_support import LIMITS

# The fixed harness: reads {"x": N, ...} (one JSON line) and prints the answer; main() is fixed.
MAIN_C = r'''#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "double.h"

int main(void) {
    char line[65536];
    if (!fgets(line, sizeof line, stdin)) return 2;
    char *x = strstr(line, "\"x\":");
    if (!x) return 3;
    long value = strtol(x + 4, NULL, 10);
    printf("{\"answer\": %ld, \"build\": \"%s\"}\n", twice(value), STAMP);
    return 0;
}
'''

DOUBLE_H = "long twice(long x);\n"

# The candidate's file: only its EVOLVE-BLOCK may change.
HONEST_C = '''#include "double.h"

long twice(long x) {
    // EVOLVE-BLOCK-START
    long factor = 2;
    return factor * x;
    // EVOLVE-BLOCK-END
}
'''

PROBLEM_YAML = '''name: twice_c
cases: cases.json
verifier: verifier.py
objective: maximize
case_timeout: {timeout}
files:
  - main.c
  - double.h
  - twice.c
build:
  command: cc -O1 -DSTAMP=\\"$(date +%s%N)\\" -o twice main.c twice.c
  timeout: {build_timeout}
  memory_mb: 512
  max_file_mb: 8
run:
  command: ./twice
'''

VERIFIER = '''
from evolve.problem import Verdict

SECRET = "{secret}"  # a candidate that can read this file would find it


def verify(case, run, settings):
    if run.status != "ok":
        return Verdict(False, feedback=f"{{run.status}}: {{run.message}}")
    output = run.output
    if not isinstance(output, dict) or output.get("answer") != case.private["answer"]:
        return Verdict(False, feedback=f"wrong answer: {{str(output)[:300]}}")
    return Verdict(True, 1.0, {{"build": str(output.get("build"))}}, feedback="right")
'''


def make_compiled_problem(directory: Path, case_inputs: list[dict], secret: str = "none",
                          build_timeout: float = 20.0) -> Problem:
    """The problem folder under `directory`, loaded as `problem=<directory>/problem.yaml`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.c").write_text(MAIN_C)
    (directory / "double.h").write_text(DOUBLE_H)
    (directory / "twice.c").write_text(HONEST_C)
    (directory / "verifier.py").write_text(VERIFIER.format(secret=secret))
    (directory / "problem.yaml").write_text(PROBLEM_YAML.format(timeout=LIMITS.case_timeout,
                                                                build_timeout=build_timeout))
    search = [{"id": f"c{i + 1}", "inputs": {"x": 21 + i, **inputs}, "private": {"answer": 2 * (21 + i)}}
              for i, inputs in enumerate(case_inputs)]
    heldout = [{"id": "h1", "inputs": {"x": 7}, "private": {"answer": 14, "label": secret}}]
    (directory / "cases.json").write_text(json.dumps({"search": search, "heldout": heldout}))
    return load_problem(compose_config([f"problem={directory / 'problem.yaml'}"]))


def with_file(code: str, path: str, text: str) -> str:
    """The bundle `code` with file `path` replaced (a hostile or broken candidate)."""
    from evolve.bundle import replace_file

    return replace_file(code, path, text)
