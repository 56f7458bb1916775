"""The verifier's code, frozen: the exact bytes read (and hashed) when the problem was loaded.

Evaluators are frozen for the life of a run. The verification and certification workers
are fresh processes started at any time during the run; if they read the verifier from
disk, a candidate on a tier that does not isolate the file system (the process tier)
could rewrite the verifier, or a helper module it imports, and so change how every later
candidate is judged. So the engine reads the verifier file and its local helper modules
once, hashes those bytes into the evaluator identity, and sends the same bytes to each
worker, which runs them from memory (`serve()`); tracebacks still name the original files.
"""

from __future__ import annotations

import ast
import base64
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from evolve.paths import EVALUATORS, expose_evaluators


@dataclass(frozen=True)
class LocalModule:
    """A helper module the verifier imports from its own folder tree or the shared evaluators/, as read at load time."""

    name: str  # the dotted name the verifier imports it by
    path: Path
    source: bytes

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@dataclass(frozen=True)
class VerifierSource:
    path: Path
    source: bytes
    modules: tuple[LocalModule, ...] = ()

    @classmethod
    def read(cls, path: Path) -> VerifierSource:
        """Read the verifier and its local helper modules (those importable on the current sys.path) once."""
        source = path.read_bytes()
        found = _local_modules(path, source)
        contents = {file: file.read_bytes() for file in set(found.values())}  # each file read once
        return cls(path, source, tuple(LocalModule(name, file, contents[file]) for name, file in sorted(found.items())))

    def files(self) -> dict[Path, bytes]:
        """Every file's bytes, the verifier first: what the evaluator identity hashes."""
        return {self.path: self.source, **{m.path: m.source for m in sorted(self.modules, key=lambda m: m.path)}}

    def to_json(self) -> dict[str, Any]:
        """For a worker's stdin: the bytes, exactly (base64), with their paths and module names."""
        return {"path": str(self.path), "source": _encode(self.source),
                "modules": [{"name": m.name, "path": str(m.path), "source": _encode(m.source)} for m in self.modules]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifierSource:
        return cls(Path(data["path"]), base64.b64decode(data["source"]),
                   tuple(LocalModule(m["name"], Path(m["path"]), base64.b64decode(m["source"]))
                         for m in data["modules"]))

    def serve(self) -> None:
        """In this (worker) process: import the helper modules from these bytes, never from disk."""
        sys.meta_path.insert(0, _FrozenModules(self.modules))
        remember_lines(self.path, self.source)


def remember_lines(path: Path, source: bytes) -> None:
    """Tracebacks show the lines that ran, not whatever the file on disk says now."""
    text = importlib.util.decode_source(source)
    linecache.cache[str(path)] = (len(text), None, text.splitlines(keepends=True), str(path))  # mtime None: kept


class _FrozenModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the snapshotted modules; every other import goes on to the usual finders."""

    def __init__(self, modules: Sequence[LocalModule]) -> None:
        self.modules = {module.name: module for module in modules}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        module = self.modules.get(fullname)
        if module is None:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=str(module.path), is_package=module.is_package)
        spec.has_location = True  # sets __file__, as for a module imported from disk
        if module.is_package:  # submodules outside the snapshot (never imported by name in the source) still load
            spec.submodule_search_locations = [str(module.path.parent)]
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        frozen = self.modules[module.__name__]
        remember_lines(frozen.path, frozen.source)
        exec(compile(frozen.source, str(frozen.path), "exec", dont_inherit=True), module.__dict__)


def local_imports(path: Path) -> list[Path]:
    """The Python files a verifier imports from its own folder tree or from the shared trusted code
    in evaluators/, transitively, in a stable order.

    They are part of the evaluator identity: a change to a helper module changes the scores
    just as a change to the verifier file does. Read from the source (not from what happens
    to be imported), so the identity never depends on what else the process loaded.
    """
    return sorted(set(_local_modules(path, path.read_bytes()).values()))


def _local_modules(path: Path, source: bytes) -> dict[str, Path]:
    """{module name: file} for every local module the verifier's source imports, transitively."""
    expose_evaluators()  # `evaluators.*` is found where the verifier will find it
    verifier = path.resolve()
    homes = (verifier.parent, EVALUATORS.resolve())  # its own folder, and the verification code problems share
    found: dict[str, Path] = {}
    todo: list[bytes | Path] = [source]
    while todo:
        current = todo.pop()
        try:
            tree = ast.parse(current if isinstance(current, bytes) else current.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for name in _imported_names(tree):
            origin = _module_file(name)
            if origin is None or not any(origin.is_relative_to(home) for home in homes) or origin == verifier \
                    or name in found:
                continue
            if origin not in found.values():
                todo.append(origin)
            found[name] = origin
    return found


def _imported_names(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from pkg import mod" may name a submodule: try both.
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).resolve()


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
