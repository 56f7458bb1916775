"""Where the bundled folders (configs, problems, evaluators, sandbox) live.

In a source checkout (or an editable install) they sit beside the package; a
wheel carries copies under `evolve/_bundled`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "_bundled"

ROOT = _BUNDLED if (_BUNDLED / "configs").is_dir() else _PACKAGE.parent
CONFIGS = ROOT / "configs"
PROBLEMS = ROOT / "problems"  # one folder per bundled problem, each with its problem.yaml
EVALUATORS = ROOT / "evaluators"  # trusted verification code the problems' verifiers share
SANDBOX = ROOT / "sandbox"
RUNNER = SANDBOX / "runner.py"


def expose_evaluators() -> None:
    """Let verifiers `import evaluators.<helper>` from a wheel too, where evaluators/ is bundled data."""
    root = str(ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


def resolve(path: str | Path, base: Path = ROOT) -> Path:
    """An absolute path: relative paths are taken from `base` (the project root)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate).resolve()
