"""Builds the sandbox backend a config names."""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from evolve.config import ConfigError
from evolve.sandbox.base import Sandbox, SandboxLimits
from evolve.sandbox.errors import SandboxUnavailable
from evolve.sandbox.process import ProcessSandbox
from evolve.settings import Settings, as_settings

log = logging.getLogger("evolve.sandbox")
BACKENDS = ("process", "bwrap", "docker", "auto")


def limits_from(cfg: Settings | DictConfig) -> SandboxLimits:
    """Per-job limits from the full config (the case timeout is the problem's)."""
    cfg = as_settings(cfg)
    s = cfg.sandbox
    return SandboxLimits(
        case_timeout=float(cfg.problem.case_timeout),
        memory_mb=int(s.memory_mb),
        max_procs=int(s.max_procs),
        max_output_bytes=int(s.max_output_bytes),
        max_log_bytes=int(s.max_log_bytes),
        cpus=float(s.cpus),
        wall_factor=float(s.wall_factor),
    )


def make_sandbox(cfg: Settings | DictConfig, run_id: str) -> Sandbox:
    """The backend for `cfg.sandbox.backend`; `run_id` labels what it starts."""
    cfg = as_settings(cfg)
    backend = cfg.sandbox.backend
    if backend == "process":
        return make_process(cfg)
    if backend == "bwrap":
        return make_bwrap(cfg)
    if backend == "docker":
        return make_docker(cfg, run_id)
    if backend == "auto":
        from evolve.sandbox.auto import choose

        return choose(cfg, run_id)
    raise ConfigError(f"sandbox.backend '{backend}' is unknown; use one of {', '.join(BACKENDS)}")


def make_process(cfg: Settings) -> ProcessSandbox:
    """The process tier; refused as root unless `sandbox.allow_root` says the candidates are trusted."""
    if os.geteuid() == 0 and not cfg.sandbox.allow_root:
        raise RootRefused("sandbox=process would run candidates as root with no isolation; use sandbox=docker "
                          "or sandbox=bwrap, or set sandbox.allow_root=true if every candidate is trusted code")
    return ProcessSandbox(python=cfg.sandbox.python)


def make_bwrap(cfg: Settings):
    from evolve.sandbox.bwrap import BwrapSandbox

    return BwrapSandbox(python=cfg.sandbox.python, scratch_mb=int(cfg.sandbox.scratch_mb))


def make_docker(cfg: Settings, run_id: str):
    """The Docker backend; builds a missing image first when `sandbox.auto_build`."""
    from evolve.sandbox.docker import DockerSandbox, DockerSettings
    from evolve.sandbox.image import ImageError, build, image_id, image_tag

    client = docker_client()
    s = cfg.sandbox
    tag = image_tag(s.image)
    if image_id(client, tag) is None:
        if not s.auto_build:
            raise ImageError(f"sandbox image {tag} not found; build it with `evolve sandbox build`")
        log.warning("sandbox image %s not found: building it now (%s, about a minute)", tag, s.build_method)
        build(tag, s.build_method, quiet=True)
    settings = DockerSettings(
        image=tag,
        pool_size=int(s.pool_size or cfg.search.evaluators),
        recycle_after=int(s.recycle_after),
        fresh_container=bool(s.fresh_container),
        memory_mb=int(s.memory_mb),
        max_procs=int(s.max_procs),
        cpus=float(s.cpus),
        scratch_mb=int(s.scratch_mb),
        exec_scratch=bool(cfg.problem.files),  # a compiled problem: the build's program runs there
    )
    return DockerSandbox(settings, run_id, client=client)


def docker_client():
    """A client whose daemon answered a ping; DockerUnavailable with the reason otherwise."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailable("the docker Python package is not installed (pip install docker)") from None
    try:
        client = docker.from_env(timeout=60, max_pool_size=16)
        client.ping()
    except Exception as error:  # noqa: BLE001 - connection refused, no socket, permission ...
        raise DockerUnavailable(f"the Docker daemon does not answer ({_short(error)}); start dockerd "
                                "or choose sandbox=bwrap / sandbox=process") from None
    return client


def remove_orphans(cfg: object = None) -> int:
    """Remove sandbox containers left by runs whose engine died; 0 when Docker is absent."""
    from evolve.sandbox import docker as docker_backend

    try:
        client = docker_client()
    except DockerUnavailable:
        return 0
    return docker_backend.remove_orphans(client)


class DockerUnavailable(SandboxUnavailable):
    pass


class RootRefused(SandboxUnavailable):
    """The process tier as root without `sandbox.allow_root`."""


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]
