"""The root of every error evolve raises on purpose.

Two kinds of failure reach a user, and they are told apart by this base class:

- a **user error** (an `EvolveError`): bad input, a run that cannot start or go
  on, a machine that cannot serve a sandbox, a verifier that breaks its
  contract. Its message is the whole story, in one line: what was wrong and
  what to do. The `evolve` command prints it and exits with status 2; a
  library caller can catch `evolve.EvolveError`.
- a **fault**: any other exception, which means a bug in evolve. The command
  prints one line naming a file that holds the traceback and exits with 1.

Some subclasses describe one candidate's failure (an edit that does not apply,
a reply without code); the engine records those against the candidate and
they never reach the user. Each subclass keeps the built-in base it had
(ValueError, RuntimeError) so code that catches those still does.
"""

from __future__ import annotations


class EvolveError(Exception):
    """An anticipated failure whose message says what was wrong and what to do (see the module docstring)."""
