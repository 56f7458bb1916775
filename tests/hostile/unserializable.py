"""Returns objects that are not JSON data."""


class FakeArray:
    __module__ = "numpy"  # pretends to be numpy so the encoder calls tolist()

    def tolist(self):
        return self


def main(marker, kind, **_):
    if kind == "object":
        return object()
    if kind == "generator":
        return (i for i in range(3))
    if kind == "circular":
        loop = []
        loop.append(loop)
        return loop
    if kind == "fake_numpy":
        return FakeArray()
    if kind == "bytes":
        return b"\x00\xff"
    if kind == "nan":
        return float("nan")
    raise AssertionError(kind)
