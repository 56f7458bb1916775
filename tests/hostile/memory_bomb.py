"""Allocates (and touches) memory until something stops it."""
import ctypes


def main(marker, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    hoard = []
    while True:
        hoard.append(b"x" * (64 << 20))
