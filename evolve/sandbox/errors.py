"""The one error every backend raises when it cannot serve on this machine."""

from evolve.errors import EvolveError


class SandboxUnavailable(EvolveError, RuntimeError):
    """A sandbox backend cannot start here; the message says why and what to do."""
