"""Sleeps far past the time limit, in itself and in a child process."""
import ctypes
import subprocess
import sys
import time


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", marker])
    time.sleep(3600)
