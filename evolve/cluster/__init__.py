"""Evaluation on a Ray cluster: the driver proposes, verifies and stores; the nodes run candidates.

Optional (`pip install 'evolve-search[ray]'`); nothing here imports Ray until a run names a
cluster (`cluster.address`). docs/scaling.md says how to start one and point a search at it.
"""
