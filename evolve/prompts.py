"""Prompts for LLM proposers, built from template files a problem can override.

Templates are `string.Template` files (placeholders like `$parent_code`):
system.md, user.md, inspiration.md (one per inspiring program), diff.md and
rewrite.md (the edit-format instructions). Each is looked up first in
`llm.templates` (when set), then in the problem's own `templates/` folder,
then in the built-in `evolve/templates/`.

A prompt is made only of what a ProposalRequest carries: the problem statement,
the parent's code, verified score and feedback, and the inspirations' code and
scores. Held-out cases and the verifier's source are not in a request, so they
cannot reach a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from omegaconf import DictConfig

from evolve import bundle
from evolve.config import ConfigError
from evolve.edits import START
from evolve.paths import resolve
from evolve.proposers.base import ProgramView, ProposalRequest
from evolve.settings import Settings, as_settings

BUILTIN = Path(__file__).resolve().parent / "templates"
NAMES = ("system.md", "user.md", "inspiration.md", "diff.md", "rewrite.md", "diff_files.md", "rewrite_files.md")
PLACEHOLDERS = {
    "system.md": set(),
    # $parent_program / $program: the code fenced (one fence per file for a multi-file program);
    # $parent_code / $code: the bare text.
    "user.md": {"statement", "goal", "better", "parent_score", "parent_code", "parent_program", "parent_feedback",
                "inspirations", "instructions"},
    "inspiration.md": {"number", "score", "code", "program"},
    "diff.md": set(),
    "rewrite.md": set(),
    "diff_files.md": set(),  # the instructions for multi-file programs: each edit names its file
    "rewrite_files.md": set(),
}


class TemplateError(ConfigError):
    """A template file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def template_dirs(cfg: Settings) -> list[Path]:
    """Where templates are looked up, most specific first."""
    dirs = []
    if cfg.llm.templates:
        folder = resolve(cfg.llm.templates)
        if not folder.is_dir():
            raise TemplateError(f"llm.templates: folder not found: {folder}")
        dirs.append(folder)
    problem_file = cfg.problem.prompt or cfg.problem.seed_program
    if problem_file and problem_file != "???":
        dirs.append(resolve(problem_file).parent / "templates")
    dirs.append(BUILTIN)
    return dirs


class PromptBuilder:
    def __init__(self, dirs: list[Path], feedback_chars: int = 1500) -> None:
        self.templates = {name: _load(name, dirs) for name in NAMES}
        self.feedback_chars = feedback_chars

    @classmethod
    def from_config(cls, cfg: Settings | DictConfig) -> PromptBuilder:
        cfg = as_settings(cfg)
        return cls(template_dirs(cfg), int(cfg.llm.feedback_chars))

    def build(self, request: ProposalRequest, edit_format: str) -> Prompt:
        inspirations = "\n".join(
            self.templates["inspiration.md"].safe_substitute(number=i, score=_score(p), code=p.code.rstrip("\n"),
                                                             program=fenced(p.code))
            for i, p in enumerate(request.inspirations, 1)
        ) or "(none yet)"
        multi = bundle.is_bundle(request.parent.code)
        user = self.templates["user.md"].safe_substitute(
            statement=request.statement.strip(),
            goal="maximized" if request.maximize else "minimized",
            better="higher" if request.maximize else "lower",
            parent_score=_score(request.parent),
            parent_code=request.parent.code.rstrip("\n"),
            parent_program=fenced(request.parent.code),
            parent_feedback=truncate(request.parent.feedback.strip(), self.feedback_chars) or "(nothing)",
            inspirations=inspirations,
            instructions=self.templates[f"{edit_format}_files.md" if multi else f"{edit_format}.md"].substitute().strip(),
        )
        return Prompt(self.templates["system.md"].substitute().strip(), user)


def fenced(code: str) -> str:
    """A program as the prompt shows it: one ```python fence, or for a multi-file program one
    fence per file, headed by its name and what may change in it."""
    if not bundle.is_bundle(code):
        return f"```python\n{code.rstrip(chr(10))}\n```"
    parts = []
    for source in bundle.parse(code):
        if source.whole:
            rule = "editable: the whole file"
        elif START in source.text:
            rule = "editable: only between the EVOLVE-BLOCK markers"
        else:
            rule = "fixed: shown for reference, never changed"
        fence = bundle.language(source.path)
        parts.append(f"### File `{source.path}` ({rule})\n\n```{fence} {source.path}\n"
                     f"{source.text.rstrip(chr(10))}\n```")
    return "\n\n".join(parts)


def truncate(text: str, budget: int) -> str:
    """Head and tail of `text` within `budget` characters (errors often end with the useful line)."""
    if len(text) <= budget:
        return text
    marker = f"\n... [{len(text) - budget} characters cut] ...\n"
    head = max(budget * 2 // 3, 0)
    tail = max(budget - head, 0)
    return text[:head] + marker + (text[-tail:] if tail else "")


def _score(program: ProgramView) -> str:
    return "none (the program was invalid)" if program.score is None else f"{program.score:.6g}"


def _load(name: str, dirs: list[Path]) -> Template:
    path = next((d / name for d in dirs if (d / name).is_file()), None)
    if path is None:
        raise TemplateError(f"prompt template {name} not found in {', '.join(map(str, dirs))}")
    template = Template(path.read_text())
    unknown = set(template.get_identifiers()) - PLACEHOLDERS[name]
    if unknown or not template.is_valid():
        known = ", ".join(f"${p}" for p in sorted(PLACEHOLDERS[name])) or "none"
        what = f"unknown placeholder(s) {', '.join('$' + u for u in sorted(unknown))}" if unknown else "a stray '$'"
        raise TemplateError(f"{path}: {what}; known placeholders: {known} (write $$ for a literal $)")
    return template
