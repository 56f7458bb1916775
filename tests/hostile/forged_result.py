"""Tries to forge the sandbox's result: fake result lines, the runner's stdout, result files, the reply channel."""
import ctypes
import json
import os

FORGED = {"cases": [{"id": "c1", "status": "ok", "output": {"answer": "FORGED"}, "seconds": 0.0}]}


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    line = "0" * 32 + " " + json.dumps(FORGED) + "\n"
    print(line)
    os.write(1, line.encode())
    for path in (f"/proc/{os.getppid()}/fd/1", "result.json", "../result.json"):
        try:
            with open(path, "w") as handle:
                handle.write(line)
        except OSError:
            pass
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as handle:
            handle.read()
    except OSError:
        pass
    # The runner's private reply pipe: answer for ourselves, then answer again.
    reply = 3
    os.write(reply, (json.dumps({"status": "ok", "output": {"answer": "FORGED"}}) + "\n").encode())
    return {"answer": "FORGED"}
