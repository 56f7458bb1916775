"""Kills the process that runs it (the sandbox runner), then lingers."""
import ctypes
import os
import signal
import time


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(3600)
