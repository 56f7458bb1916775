"""Builds the sandbox backend a config names."""

from __future__ import annotations

from omegaconf import DictConfig

from evolve.sandbox.base import Sandbox, SandboxLimits
from evolve.sandbox.process import ProcessSandbox


def limits_from(cfg: DictConfig) -> SandboxLimits:
    """Per-job limits from the full config (the case timeout is the problem's)."""
    s = cfg.sandbox
    return SandboxLimits(
        case_timeout=float(cfg.problem.case_timeout),
        memory_mb=int(s.memory_mb),
        max_procs=int(s.max_procs),
        max_output_bytes=int(s.max_output_bytes),
        max_log_bytes=int(s.max_log_bytes),
        cpus=float(s.cpus),
    )


def make_sandbox(cfg: DictConfig, run_id: str) -> Sandbox:
    """The backend for `cfg.sandbox.backend`; `run_id` labels what it starts."""
    backend = cfg.sandbox.backend
    if backend == "process":
        return ProcessSandbox(python=cfg.sandbox.python)
    raise ValueError(f"sandbox backend '{backend}' is not available in this build")
