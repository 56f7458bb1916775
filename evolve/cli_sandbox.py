"""`evolve sandbox build` and `evolve sandbox check`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

import typer
from rich.console import Console

from evolve.config import ConfigError, compose_config

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Build and check the sandbox image.")
console = Console()
errors = Console(stderr=True)
OVERRIDES = typer.Argument(None, help="config overrides, e.g. sandbox.image=my-image:1")

TRIAL = "import numpy as np\n\ndef main(n):\n    return {'sum': int(np.arange(n).sum())}\n"


def _config(overrides: Optional[list[str]]):
    try:
        return compose_config(overrides or [])
    except ConfigError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@sandbox_app.command()
def build(
    overrides: Optional[list[str]] = OVERRIDES,
    method: str = typer.Option("auto", help="mmdebstrap (no registry needed), dockerfile, or auto"),
    force: bool = typer.Option(False, help="build even when the image already exists"),
) -> None:
    """Build the sandbox image the config names (tag: evolve-sandbox:<recipe hash>)."""
    from evolve.sandbox.factory import DockerUnavailable, docker_client
    from evolve.sandbox.image import METHODS, ImageError, build as build_image, image_id, image_tag

    if method not in METHODS:
        errors.print(f"[bold red]error:[/] unknown --method '{method}'; use one of {', '.join(METHODS)}",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    cfg = _config(overrides)
    tag = image_tag(cfg.sandbox.image)
    try:
        client = docker_client()
        if image_id(client, tag) is not None and not force:
            console.print(f"{tag} already exists ({image_id(client, tag)}); use --force to rebuild",
                          highlight=False, soft_wrap=True)
            return
        started = time.monotonic()
        used = build_image(tag, method)
    except (DockerUnavailable, ImageError) as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"built {tag} with {used} in {time.monotonic() - started:.0f} s ({image_id(client, tag)})",
                  highlight=False)


@sandbox_app.command()
def check(overrides: Optional[list[str]] = OVERRIDES) -> None:
    """Report the Docker daemon, the image, bubblewrap, and a trial run on the configured backend."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = _config(overrides)
    ok = _check_docker(cfg)
    ok = _check_bwrap(cfg) and ok
    console.print(f"configured backend: {cfg.sandbox.backend}", highlight=False)
    ok = _trial(cfg) and ok
    if cfg.problem.get("files"):  # a compiled problem: does its seed build with this tier's toolchain?
        ok = _trial_build(cfg) and ok
    raise typer.Exit(0 if ok else 1)


def _trial_build(cfg) -> bool:
    """Build the problem's seed on the configured backend (no case is run)."""
    from evolve.problem import ProblemError, load_problem
    from evolve.sandbox.base import SandboxJob
    from evolve.sandbox.factory import limits_from, make_sandbox

    async def go(problem):
        sandbox = make_sandbox(cfg, f"check-{int(time.time())}")
        try:
            job = SandboxJob(problem.seed_code, problem.entry, (), limits_from(cfg), program=problem.program)
            return sandbox, await sandbox.run(job)
        finally:
            await sandbox.close()

    try:
        problem = load_problem(cfg)
        sandbox, result = asyncio.run(go(problem))
    except (ProblemError, Exception) as error:  # noqa: BLE001 - report whatever stops the build
        console.print(f"seed build: [bold red]failed[/] ({error})", highlight=False)
        return False
    build = result.build
    if result.failure or build is None or not build.ok:
        detail = result.failure or (f"{build.status}: {build.message[-600:]}" if build else "no build result")
        console.print(f"seed build of {problem.name} on {sandbox.name}: [bold red]failed[/] ({detail})",
                      highlight=False)
        return False
    console.print(f"seed build of {problem.name} on {sandbox.name}: ok ({build.cpu_seconds:.2f} s CPU)",
                  highlight=False)
    return True


def _check_docker(cfg) -> bool:
    from evolve.sandbox.factory import DockerUnavailable, docker_client
    from evolve.sandbox.image import image_id, image_tag

    tag = image_tag(cfg.sandbox.image)
    try:
        client = docker_client()
    except DockerUnavailable as error:
        console.print(f"docker: [yellow]unavailable[/] ({error})", highlight=False)
        return cfg.sandbox.backend != "docker"
    version = client.version().get("Version", "?")
    console.print(f"docker: daemon {version} answers", highlight=False)
    found = image_id(client, tag)
    if found is None:
        console.print(f"image: [yellow]{tag} missing[/]; build it with `evolve sandbox build`", highlight=False)
        return cfg.sandbox.backend not in ("docker",) or bool(cfg.sandbox.auto_build)
    size = client.images.get(tag).attrs.get("Size", 0) / 1e6
    console.print(f"image: {tag} ({found[:19]}, {size:.0f} MB)", highlight=False)
    return True


def _check_bwrap(cfg) -> bool:
    from evolve.sandbox.factory import make_bwrap

    try:
        sandbox = make_bwrap(cfg)
        sandbox.probe()
    except Exception as error:  # noqa: BLE001 - report whatever stops bubblewrap
        console.print(f"bwrap: [yellow]unavailable[/] ({error})", highlight=False)
        return cfg.sandbox.backend != "bwrap"
    console.print(f"bwrap: works ({sandbox.identity})", highlight=False)
    return True


def _trial(cfg) -> bool:
    """Run a trivial candidate through the configured backend, the way the engine would."""
    from evolve.sandbox.base import SandboxJob
    from evolve.sandbox.factory import limits_from, make_sandbox

    async def go():
        sandbox = make_sandbox(cfg, f"check-{int(time.time())}")
        try:
            job = SandboxJob(TRIAL, "main", (("trial", {"n": 10}),), limits_from(cfg))
            started = time.monotonic()
            result = await sandbox.run(job)
            return sandbox, result, time.monotonic() - started
        finally:
            await sandbox.close()

    try:
        sandbox, result, seconds = asyncio.run(go())
    except Exception as error:  # noqa: BLE001
        console.print(f"trial run: [bold red]failed[/] ({error})", highlight=False)
        return False
    run = result.runs[0]
    if run.status != "ok" or run.output != {"sum": 45}:
        console.print(f"trial run on {sandbox.name}: [bold red]failed[/] ({run.status}: {run.message[-300:]})",
                      highlight=False)
        return False
    console.print(f"trial run on {sandbox.name}: ok in {seconds:.2f} s ({sandbox.identity})", highlight=False)
    return True


if __name__ == "__main__":
    sandbox_app()
