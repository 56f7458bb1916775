"""Trusted, host-side verifiers: one module per problem family. Frozen during a run."""
