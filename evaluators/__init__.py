"""Trusted, host-side verification code shared by problems: DIMACS parsing and SAT answer checks,
exact geometry, the ε-NE block library and its Z3 certification. Frozen during a run.

Each problem's own verifier entry is `problems/NAME/verifier.py`; it imports what it needs from here,
and everything it imports from here is part of its evaluator identity (evolve/problem.py)."""
