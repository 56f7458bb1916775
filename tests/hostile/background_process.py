"""Leaves daemons behind (a new session and a double fork), then returns at once."""
import ctypes
import os
import subprocess
import sys
import time


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", marker],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3600)
        os._exit(0)
    return {"answer": "left something running"}
