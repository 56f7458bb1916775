"""Raises every kind of exception, including ones that fight back when printed."""
import os


class Nasty(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception raises too")


def main(marker, kind, **_):
    if kind == "value":
        raise ValueError("plain failure")
    if kind == "system_exit":
        raise SystemExit(0)
    if kind == "keyboard":
        raise KeyboardInterrupt
    if kind == "nasty":
        raise Nasty()
    if kind == "recursion":
        return main(marker, kind)
    if kind == "exit":
        os._exit(0)
    raise AssertionError(kind)
