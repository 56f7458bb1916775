"""Tries to write files outside its scratch: given targets, the root, /tmp, its home's parent."""
import ctypes
import os


def main(marker, targets, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    paths = [*targets, f"/{marker}", f"/tmp/{marker}", os.path.join(os.path.dirname(os.getcwd()), "..", marker)]
    written, errors = [], []
    for path in paths:
        try:
            with open(path, "a") as handle:
                handle.write(f"written by {marker}\n")
            written.append(path)
        except OSError as error:
            errors.append(f"{path}: {error!r}")
    if not written:
        raise PermissionError("every write outside the scratch was refused: " + "; ".join(errors))
    return {"written": written}
