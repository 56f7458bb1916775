"""Builds of compiled candidates, remembered so identical sources are not built twice.

Keyed by a hash of the sources and everything that decides the build (its command and
limits). A build that failed with an error is remembered by its message (the same sources
fail the same way; one out of time is tried again); a successful one by the files it made, sent into the next job instead of building.
Builds too large to send back are not remembered: those sources are built again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict

from evolve.sandbox.base import BuildResult, ProgramSpec

Built = tuple[tuple[str, bytes], ...]


class BuildCache:
    """In memory, per evaluator (one run); the oldest entries go past `max_bytes` of built files."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.entries: OrderedDict[str, str | Built] = OrderedDict()
        self.max_bytes = max_bytes
        self.size = 0
        self.builds = 0  # builds whose result was remembered (for tests and status)

    @staticmethod
    def key(code: str, program: ProgramSpec) -> str:
        recipe = json.dumps(dataclasses.asdict(program), sort_keys=True)
        return hashlib.sha256(recipe.encode() + b"\0" + code.encode()).hexdigest()

    def get(self, key: str) -> str | Built | None:
        """The failure message, the built files, or None (never built)."""
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def remember(self, key: str, build: BuildResult) -> None:
        if build.status == "cached" or key in self.entries:
            return
        if build.ok:
            if build.artifacts is None:
                return
            value: str | Built = build.artifacts
        elif build.status != "error":
            return  # out of time or memory may be the machine's load: such sources are built again
        else:
            value = f"build failed ({build.status}): {build.message}"
        self.builds += 1
        self.entries[key] = value
        self.size += _size(value)
        while self.size > self.max_bytes and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.size -= _size(old)


def _size(value: str | Built) -> int:
    return len(value) if isinstance(value, str) else sum(len(data) for _, data in value)
