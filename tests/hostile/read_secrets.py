"""Tries to read the verifier, the held-out cases and the host's private files."""
import ctypes
import glob


def main(marker, paths, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    found, errors = {}, []
    for path in [*paths, "/etc/shadow", *glob.glob("/work/*/evaluators/*.py"),
                 *glob.glob("/work/*/problems/*/verifier.py")]:
        try:
            with open(path) as handle:
                found[path] = handle.read()
        except OSError as error:
            errors.append(f"{path}: {error!r}")
    if not found:
        raise PermissionError("nothing could be read: " + "; ".join(errors))
    return {"stolen": found}
