"""The sandbox image: its recipe, its tag, and how to build it.

The recipe is `sandbox/packages.txt` plus the two builders (`build_image.sh`,
registry-free, and `Dockerfile`). The default tag carries a hash of all three,
so changing the recipe names a new image and an old one is never reused by
mistake.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from evolve.paths import SANDBOX
from evolve.sandbox.errors import SandboxUnavailable

RECIPE = ("packages.txt", "build_image.sh", "Dockerfile")
REPOSITORY = "evolve-sandbox"
METHODS = ("auto", "mmdebstrap", "dockerfile")


class ImageError(SandboxUnavailable):
    """The image could not be found or built; the message says what to do."""


def recipe_hash(sandbox_dir: Path = SANDBOX) -> str:
    digest = hashlib.sha256()
    for name in RECIPE:
        digest.update(name.encode() + b"\0" + (sandbox_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def default_tag() -> str:
    return f"{REPOSITORY}:{recipe_hash()}"


def image_tag(configured: str | None) -> str:
    """The tag a config names; empty or null means the recipe's own tag."""
    return configured or default_tag()


def image_id(client, tag: str) -> str | None:  # client: docker.DockerClient
    """The image's content id, or None when the daemon has no such image."""
    import docker.errors

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def build(tag: str, method: str = "auto", quiet: bool = False) -> str:
    """Build `tag` with mmdebstrap + `docker import` or `docker build`; returns the method used."""
    if method not in METHODS:
        raise ImageError(f"unknown build method '{method}'; use one of {', '.join(METHODS)}")
    if shutil.which("docker") is None:
        raise ImageError("the docker command is not installed; install docker.io (apt-get install -y docker.io)")
    if method == "auto":
        method = "mmdebstrap" if shutil.which("mmdebstrap") else "dockerfile"
    if method == "mmdebstrap":
        if shutil.which("mmdebstrap") is None:
            raise ImageError("mmdebstrap is not installed; run `apt-get install -y mmdebstrap` "
                             "or build from the Dockerfile with --method dockerfile")
        command = ["bash", str(SANDBOX / "build_image.sh"), tag]
    else:
        command = ["docker", "build", "-t", tag, "-f", str(SANDBOX / "Dockerfile"), str(SANDBOX)]
    output = subprocess.DEVNULL if quiet else None
    done = subprocess.run(command, stdout=output, stderr=subprocess.PIPE if quiet else None, text=True)
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise ImageError(f"building {tag} with {method} failed (exit {done.returncode})"
                         + (f": {detail[0]}" if detail else ""))
    return method
