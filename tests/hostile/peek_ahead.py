"""Works at import time and looks for later cases' inputs before they start.

At import it burns 0.5 s of CPU (time that must be charged to the job). In each
case it searches every object in its memory, its files and its environment for
a needle (every case's input carries one) it has not been given yet; it answers
honestly only when it finds none, i.e. when no later case's input is visible.
"""
import gc
import os
import re
import time

NEEDLE = re.compile(r"NEEDLE[0-9a-f]{12}")
started = time.process_time()
while time.process_time() - started < 0.5:
    pass
given: set[str] = set()


def visible() -> set[str]:
    found: set[str] = set()
    for thing in gc.get_objects():
        try:
            found.update(NEEDLE.findall(repr(thing)[:200000]))
        except Exception:
            pass
    for root, _, files in os.walk("."):
        for name in files:
            try:
                found.update(NEEDLE.findall(open(os.path.join(root, name), errors="replace").read()))
            except OSError:
                pass
    return found | set(NEEDLE.findall(str(os.environ)))


def main(x, needle, **_):
    given.add(needle)
    ahead = visible() - given
    return {"answer": 2 * x} if not ahead else {"answer": "SAW " + ",".join(sorted(ahead))}
