import random
from collections import Counter

from evolve.islands import Island, Member, RankSelection, ring_migration, weakest_islands


def member(pid: int, fitness: float, signature: str | None = None, code: str = "x") -> Member:
    return Member(pid, fitness, fitness, signature or f"s{pid}", code)


def test_rank_selection_favours_better_clusters_but_reaches_all() -> None:
    island = Island(0, archive_size=10)
    for pid in range(10):
        island.add(member(pid, float(pid)))
    selection, rng = RankSelection(pressure=1.5, explore=0.1), random.Random(1)
    picks = Counter(selection.parent(island, rng).program_id for _ in range(5000))
    assert picks[9] > picks[5] > picks[0] > 0
    assert set(picks) == set(range(10))


def test_archive_keeps_the_best_clusters_only() -> None:
    island = Island(0, archive_size=3)
    for pid, fitness in enumerate([5.0, 1.0, 3.0, 4.0, 0.5]):
        island.add(member(pid, fitness))
    assert sorted(c.fitness for c in island.ranked()) == [3.0, 4.0, 5.0]
    assert island.best.program_id == 0


def test_programs_that_behave_alike_share_a_cluster_and_shorter_code_leads() -> None:
    island = Island(0, archive_size=5)
    island.add(member(1, 2.0, "same", code="long code here"))
    island.add(member(2, 2.0, "same", code="short"))
    assert len(island.ranked()) == 1
    assert island.ranked()[0].members[0].program_id == 2


def test_inspirations_are_the_best_and_other_clusters_never_the_parent() -> None:
    island = Island(0, archive_size=10)
    for pid in range(6):
        island.add(member(pid, float(pid)))
    parent = island.clusters["s2"].members[0]
    chosen = RankSelection(1.0, 0.0).inspirations(island, parent, 3, random.Random(0))
    assert chosen[0].program_id == 5 and len(chosen) == 3
    assert parent not in chosen


def test_ring_migration_and_weakest_islands() -> None:
    islands = [Island(i, 5) for i in range(4)]
    for i, island in enumerate(islands):
        island.add(member(i, float(i)))
    assert [(dest, m.program_id) for dest, m in ring_migration(islands)] == [(1, 0), (2, 1), (3, 2), (0, 3)]
    assert weakest_islands(islands, 0.5) == [0, 1]
    assert weakest_islands(islands[:1], 0.5) == []
