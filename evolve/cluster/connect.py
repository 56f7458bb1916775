"""Reaching a Ray cluster: one place that imports Ray and turns its failures into one-line errors."""

from __future__ import annotations

import logging
import socket
from types import ModuleType
from typing import Any

from evolve.errors import EvolveError

log = logging.getLogger("evolve.cluster")


class ClusterError(EvolveError, RuntimeError):
    """The cluster cannot be used (Ray missing, unreachable, refused nodes); the message names the fix."""


def ray_module() -> ModuleType:
    """Ray, or a ClusterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("cluster.address is set but Ray is not installed; "
                           "install it with pip install 'evolve-search[ray]'") from None
    return ray


def connect(address: str, timeout: float = 30.0) -> ModuleType:
    """Join the cluster at `address` as a driver (once per process); Ray, connected.

    An address nobody answers at is a ClusterError within about `timeout` seconds, not a hang.
    """
    ray = ray_module()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"address": address, "logging_level": logging.WARNING, "log_to_driver": False,
                               "configure_logging": False}
    _check_reachable(address, timeout)  # Ray itself retries an unanswered address for minutes
    try:
        ray.init(**options)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError or its own types here
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({str(error).splitlines()[0][:200]}); "
                           "start it with `ray start --head` or fix cluster.address") from None
    log.info("connected to the Ray cluster at %s", address)
    return ray


def first_line(error: BaseException) -> str:
    """An error in one line (its first, at most 300 characters; its type when it says nothing), for logs and events."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def disconnect() -> None:
    """Leave the cluster (the cluster itself keeps running)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def _check_reachable(address: str, timeout: float) -> None:
    """A ClusterError unless something accepts connections at a HOST:PORT address ("auto" is Ray's to find)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout, 10.0)).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}); "
                           "start it with `ray start --head` or fix cluster.address") from None
