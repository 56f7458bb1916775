"""`sandbox=auto`: the strongest isolation this machine offers.

Docker when the daemon answers and the image exists or can be built, else
bubblewrap when it can make namespaces here, else plain processes, with a
one-line warning whenever a weaker tier is chosen and why the stronger ones
were not. Plain processes as root are refused (with both reasons) unless
`sandbox.allow_root` says the candidates are trusted code.
"""

from __future__ import annotations

import logging


from evolve.sandbox.base import Sandbox
from evolve.settings import Settings

log = logging.getLogger("evolve.sandbox")


def choose(cfg: Settings, run_id: str) -> Sandbox:
    from evolve.sandbox.factory import make_bwrap, make_docker, make_process

    reasons: list[str] = []
    try:
        return make_docker(cfg, run_id)
    except Exception as error:  # noqa: BLE001 - any reason Docker cannot serve is a reason to fall back
        reasons.append(f"docker: {_first_line(error)}")
    try:
        sandbox = make_bwrap(cfg)
        sandbox.probe()
        log.warning("sandbox=auto: using bubblewrap, not Docker (%s)", reasons[0])
        return sandbox
    except Exception as error:  # noqa: BLE001
        reasons.append(f"bwrap: {_first_line(error)}")
    from evolve.sandbox.factory import RootRefused

    try:
        sandbox = make_process(cfg)
    except RootRefused as error:
        raise RootRefused(f"sandbox=auto found no isolating sandbox ({'; '.join(reasons)}) and {error}") from None
    log.warning(
        "sandbox=auto: candidates run as plain processes with WEAKER isolation (no file-system or network "
        "isolation) because %s; install Docker or bubblewrap for a real sandbox", "; ".join(reasons))
    return sandbox


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
