"""Islands: separate sub-populations whose archives feed parent selection.

Each island keeps its programs in clusters of equal per-case score signature
(FunSearch's diversity mechanism: programs that behave alike compete with one
another, not with programs that behave differently). At most `archive_size`
clusters are kept, the best ones; a cluster keeps a few members, preferring
shorter code. Islands exchange their best programs around a ring, and the
weakest islands are periodically reseeded from the best of the others.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field

from evolve.policy import admits, ring, weakest

PER_CLUSTER = 4


@dataclass(frozen=True)
class Member:
    program_id: int
    fitness: float  # larger is better
    score: float
    signature: str
    code: str
    feedback: str = ""


@dataclass
class Cluster:
    signature: str
    members: list[Member] = field(default_factory=list)

    @property
    def fitness(self) -> float:
        return self.members[0].fitness

    def add(self, member: Member) -> bool:
        if any(m.program_id == member.program_id for m in self.members):
            return False
        self.members.append(member)
        self.members.sort(key=lambda m: (-m.fitness, len(m.code)))
        del self.members[PER_CLUSTER:]
        return member in self.members


class Island:
    def __init__(self, index: int, archive_size: int) -> None:
        self.index = index
        self.archive_size = archive_size
        self.clusters: dict[str, Cluster] = {}
        self._ranked: list[Cluster] | None = None

    def __len__(self) -> int:
        return sum(len(c.members) for c in self.clusters.values())

    @property
    def best(self) -> Member | None:
        ranked = self.ranked()
        return ranked[0].members[0] if ranked else None

    def ranked(self) -> list[Cluster]:
        if self._ranked is None:
            self._ranked = sorted(self.clusters.values(), key=lambda c: -c.fitness)
        return self._ranked

    def admits(self, member: Member) -> bool:
        """Would `add` keep this program's cluster (evolve/policy.py's one admission test)?"""
        ranked = self.ranked()
        return admits(member.signature, member.fitness, self.clusters, self.archive_size,
                      ranked[-1].fitness if ranked else None)

    def add(self, member: Member) -> bool:
        """Add to the archive; False if it did not make it in (worse than a full archive)."""
        cluster = self.clusters.get(member.signature)
        if cluster is None:
            if not self.admits(member):
                return False
            cluster = self.clusters[member.signature] = Cluster(member.signature)
        accepted = cluster.add(member)
        self._ranked = None
        if len(self.clusters) > self.archive_size:
            worst = self.ranked()[-1]
            del self.clusters[worst.signature]
            self._ranked = None
            accepted = accepted and worst is not cluster
        return accepted

    def clear(self) -> None:
        self.clusters.clear()
        self._ranked = None


class RankSelection:
    """Parent selection: rank-based weights over clusters, with some uniform exploration.

    weight(rank) = (rank + 1) ** -pressure, so the best cluster is favoured but
    every cluster keeps a chance; with probability `explore` the pick is uniform.
    """

    def __init__(self, pressure: float, explore: float) -> None:
        self.pressure = pressure
        self.explore = explore
        self._cumulative: dict[int, list[float]] = {}

    def parent(self, island: Island, rng: random.Random) -> Member:
        ranked = island.ranked()
        if not ranked:
            raise LookupError(f"island {island.index} is empty")
        if rng.random() < self.explore:
            cluster = rng.choice(ranked)
        else:
            cumulative = self._weights(len(ranked))
            cluster = ranked[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
        return rng.choice(cluster.members)

    def inspirations(self, island: Island, parent: Member, count: int, rng: random.Random) -> list[Member]:
        """The island's best program plus programs from other clusters, for contrast."""
        ranked = island.ranked()
        chosen: list[Member] = []
        best = ranked[0].members[0] if ranked else None
        if best is not None and best.program_id != parent.program_id and count > 0:
            chosen.append(best)
        others = [c.members[0] for c in ranked[1:] if c.signature != parent.signature]
        rng.shuffle(others)
        for member in others:
            if len(chosen) >= count:
                break
            if member.program_id != parent.program_id and member not in chosen:
                chosen.append(member)
        return chosen

    def _weights(self, n: int) -> list[float]:
        if n not in self._cumulative:
            self._cumulative[n] = list(itertools.accumulate((r + 1) ** -self.pressure for r in range(n)))
        return self._cumulative[n]


def ring_migration(islands: list[Island]) -> list[tuple[int, Member]]:
    """Each island's best goes to the next island around the ring (evolve/policy.py `ring`)."""
    bests = [island.best for island in islands]
    return [(dest, bests[source]) for source, dest in ring([best is not None for best in bests])]  # type: ignore[misc]


def weakest_islands(islands: list[Island], fraction: float) -> list[int]:
    """Indices of the islands to reset: the weakest `fraction` (evolve/policy.py `weakest`)."""
    return [islands[i].index for i in weakest(best_fitness(islands), fraction)]


def best_fitness(islands: list[Island]) -> list[float | None]:
    """Each island's best fitness, None for an empty island."""
    return [None if island.best is None else island.best.fitness for island in islands]
