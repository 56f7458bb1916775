"""The run's decisions as pure functions: no database, no event loop, no clock."""

import random

import pytest

from evolve import policy
from evolve.alarms import Baselines, Standing
from evolve.islands import Island, Member
from evolve.policy import Budget, InFlight, Spent

EXACT = dict(certifying=False, measured=False, min_gain=0.01)


def fitness(score: float, maximize: bool) -> float:  # as Problem.fitness: larger is better
    return score if maximize else -score


@pytest.mark.parametrize("maximize", [True, False])
def test_a_strictly_better_valid_score_is_a_new_champion_in_either_direction(maximize: bool) -> None:
    champion = fitness(10.0, maximize)
    better, worse = (11.0, 9.0) if maximize else (9.0, 11.0)
    assert policy.standing(True, fitness(better, maximize), champion, has_champion=True, **EXACT).new_best
    assert not policy.standing(True, fitness(worse, maximize), champion, has_champion=True, **EXACT).new_best


def test_a_tie_keeps_the_champion_and_an_invalid_score_never_wins() -> None:
    assert policy.standing(True, 5.0, 5.0, has_champion=True, **EXACT) == (False, False, False)
    assert policy.standing(False, 1e9, 5.0, has_champion=True, **EXACT) == (False, False, False)
    assert policy.standing(False, 1e9, None, has_champion=False, **EXACT) == (False, False, False)


def test_the_first_valid_score_is_champion_when_there_is_none() -> None:
    assert policy.standing(True, -1e9, None, has_champion=False, **EXACT) == (True, False, False)


def test_on_a_certifying_problem_beating_the_bound_only_makes_a_challenger() -> None:
    flags = dict(certifying=True, measured=False, min_gain=0.01)
    assert policy.standing(True, 6.0, 5.0, has_champion=True, **flags) == (False, True, False)
    assert policy.standing(True, 6.0, None, has_champion=False, **flags) == (False, True, False)
    assert policy.standing(True, 4.0, 5.0, has_champion=True, **flags) == (False, False, False)
    assert policy.standing(False, 6.0, 5.0, has_champion=True, **flags) == (False, False, False)


def test_a_measured_score_makes_a_contender_only_for_a_gain_a_duel_could_confirm() -> None:
    flags = dict(certifying=False, measured=True, min_gain=0.05)
    assert policy.standing(True, 20.0, 10.0, has_champion=True, **flags) == (False, False, True)
    assert policy.standing(True, 10.1, 10.0, has_champion=True, **flags) == (False, False, False)
    # no champion yet (the seed's first measurement): nothing to duel against, it is champion at once
    assert policy.standing(True, 10.0, None, has_champion=False, **flags) == (True, False, False)


def test_a_challenger_is_certified_only_while_it_is_below_the_champions_bound() -> None:
    assert policy.still_challenges(4.0, None)
    assert policy.still_challenges(4.0, 4.5)
    assert not policy.still_challenges(4.5, 4.5)
    assert not policy.still_challenges(5.0, 4.5)


def test_only_a_proven_and_strictly_better_bound_crowns() -> None:
    assert policy.crowns("proven", "9/2", 4.5, None, None)
    assert policy.crowns("proven", "17/4", 4.25, "9/2", 4.5)
    assert not policy.crowns("proven", "9/2", 4.5, "9/2", 4.5)
    assert not policy.crowns("timeout", "17/4", 4.25, "9/2", 4.5)
    # exact bounds decide where their floats are equal
    assert policy.crowns("proven", "1/3", 1 / 3, "1000000000000000001/3000000000000000000", 1 / 3)


def test_two_evaluations_agree_within_the_relative_tolerance_and_on_validity() -> None:
    assert policy.scores_agree((True, 100.0), (True, 100.5), 0.01)
    assert not policy.scores_agree((True, 100.0), (True, 102.0), 0.01)
    assert not policy.scores_agree((True, 1.0), (False, None), 0.01)
    assert policy.scores_agree((False, None), (False, None), 0.0)
    assert policy.scores_agree((True, 0.0), (True, 0.0), 0.0)


def test_a_heldout_score_above_a_proven_bound_is_unsound() -> None:
    assert policy.unsound(4.5, True, 4.6)
    assert not policy.unsound(4.5, True, 4.5)
    assert not policy.unsound(4.5, False, 99.0)
    assert not policy.unsound(None, True, 99.0)


def test_admission_says_exactly_whether_island_add_keeps_the_programs_cluster() -> None:
    rng = random.Random(20261203)
    checked = rejected = 0
    for trial in range(200):
        island = Island(0, archive_size=rng.randint(1, 6))
        for pid in range(rng.randint(0, 40)):
            candidate = Member(trial * 100 + pid, rng.choice([rng.uniform(-5, 5), float(rng.randint(-3, 3))]),
                               0.0, f"s{rng.randint(0, 9)}", "x" * rng.randint(1, 30))
            ranked = island.ranked()
            expected = policy.admits(candidate.signature, candidate.fitness, set(island.clusters),
                                     island.archive_size, ranked[-1].fitness if ranked else None)
            assert island.admits(candidate) == expected
            island.add(candidate)
            assert (candidate.signature in island.clusters) == expected
            assert len(island.clusters) <= island.archive_size
            checked += 1
            rejected += not expected
    assert checked > 1000 and rejected > 100  # both outcomes were exercised


def test_admission_rules_by_hand() -> None:
    assert policy.admits("new", 0.0, {"a", "b"}, 3, 1.0)  # room for another cluster
    assert policy.admits("a", -9.0, {"a", "b"}, 2, 1.0)  # behaviour already there
    assert policy.admits("new", 1.5, {"a", "b"}, 2, 1.0)  # beats the worst cluster
    assert not policy.admits("new", 1.0, {"a", "b"}, 2, 1.0)  # a tie with the worst does not
    assert policy.admits("new", 0.0, set(), 1, None)


def test_migration_and_resets_fall_due_on_multiples_of_their_interval_only() -> None:
    assert [n for n in range(1, 31) if policy.due(n, 10)] == [10, 20, 30]
    assert not any(policy.due(n, 0) for n in range(1, 31))
    assert not any(policy.due(n, None) for n in range(1, 31))


def test_each_budget_ends_the_run_with_its_reason() -> None:
    budget = Budget(evaluations=10, wall_time=60.0, llm_cost=1.0, target=-3.0)
    fresh = Spent(evaluations=0, wall_seconds=0.0, llm_cost=0.0, best=None)
    assert policy.exhausted(fresh, budget) == ""
    assert policy.exhausted(Spent(10, 0.0, 0.0, None), budget) == "evaluation budget spent"
    assert policy.exhausted(Spent(7, 0.0, 0.0, None), budget, reserved=3) == "evaluation budget spent"
    assert policy.exhausted(Spent(7, 0.0, 0.0, None), budget, reserved=2) == ""
    assert policy.exhausted(Spent(0, 60.0, 0.0, None), budget) == "wall-time budget spent"
    assert policy.exhausted(Spent(0, 0.0, 1.0, None), budget) == "LLM cost budget spent"
    assert policy.exhausted(Spent(0, 0.0, 0.0, -3.0), budget) == "target score reached"
    assert policy.exhausted(Spent(0, 0.0, 0.0, -3.5), budget) == ""
    unlimited = Budget(evaluations=10)
    assert policy.exhausted(Spent(9, 1e9, 1e9, 1e9), unlimited) == ""


def test_the_run_is_done_only_when_a_budget_is_spent_and_no_work_is_in_flight() -> None:
    spent = "evaluation budget spent"
    idle = InFlight()
    assert policy.done(idle, spent)
    assert not policy.done(idle, "")
    proposing = idle.ticket_taken()
    assert not policy.done(proposing, spent)
    finishing = proposing.stored()  # stored: no longer a ticket, but its held-out check still runs
    assert (finishing.tickets, finishing.finishing) == (0, 1)
    assert not policy.done(finishing, spent)
    assert policy.done(finishing.finished(), spent)
    certifying = idle.challenge_queued()
    assert not policy.done(certifying, spent)
    assert policy.done(certifying.challenge_resolved(), spent)
    assert policy.done(proposing.ticket_returned(), spent)
    assert idle == InFlight()  # each event made a new record; the first is unchanged


# ---------------------------------------------------------------------- the held-out alarm


def test_a_problem_without_held_out_cases_is_said_once_and_never_alarms() -> None:
    first = policy.heldout_check(2, 5.0, None, Baselines(), 0.02, 4.0, unavailable_noted=False)
    assert (first.event, first.alarm, first.baselines) == ("heldout_unavailable", False, Baselines())
    again = policy.heldout_check(3, 9.0, None, Baselines(), 0.02, 4.0, unavailable_noted=True)
    assert (again.event, again.alarm) == ("", False)


def test_a_failed_held_out_evaluation_is_an_alarm_and_leaves_the_baselines_as_they_were() -> None:
    seeded = Baselines(first=Standing(1, -10.0, -10.0), previous=Standing(1, -10.0, -10.0), seed_program_id=1)
    check = policy.heldout_check(2, -9.0, (False, None), seeded, 0.02, 4.0, unavailable_noted=False)
    assert (check.event, check.alarm, check.findings, check.baselines) == ("heldout_failed", True, [], seeded)


def test_held_out_checks_carry_the_baselines_from_champion_to_champion() -> None:
    baselines = Baselines(seed_program_id=1)
    seen = []
    for program, (search, heldout) in enumerate([(-100.0, -50.0), (-97.0, -50.0), (-94.0, -50.0), (-91.0, -50.0)],
                                                 start=1):
        check = policy.heldout_check(program, search, (True, heldout), baselines, 0.02, 4.0, unavailable_noted=False)
        baselines = check.baselines
        seen.append((check.event, [f["baseline"] for f in check.findings]))
    # the seed is the first baseline; each 3% step alone is small, their sum over the seed (9%) is not
    assert seen == [("", []), ("", []), ("", []), ("heldout_divergence", ["the seed"])]
    assert baselines.first == Standing(1, -100.0, -50.0) and baselines.previous == Standing(4, -91.0, -50.0)


def test_an_honest_improvement_carries_over_and_is_no_alarm() -> None:
    start = Baselines(first=Standing(1, -10.0, -12.0), previous=Standing(1, -10.0, -12.0), seed_program_id=1)
    check = policy.heldout_check(2, -5.0, (True, -6.2), start, 0.02, 4.0, unavailable_noted=True)
    assert (check.event, check.alarm) == ("", False)
    assert check.baselines.previous == Standing(2, -5.0, -6.2) and check.baselines.first == start.first


# ---------------------------------------------------------------------- migration and resets


def test_migration_sends_each_islands_best_to_the_next_around_the_ring() -> None:
    assert policy.ring([True, True, True]) == [(0, 1), (1, 2), (2, 0)]
    assert policy.ring([True, False, True]) == [(0, 1), (2, 0)]  # an empty island sends nothing
    assert policy.ring([True]) == []


def test_the_weakest_islands_are_reset_at_least_one_never_all() -> None:
    assert policy.weakest([3.0, 1.0, None, 2.0], 0.5) == [2, 1]  # an empty island is weakest of all
    assert policy.weakest([3.0, 1.0, 2.0, 4.0], 0.1) == [1]  # at least one
    assert policy.weakest([3.0, 1.0], 1.0) == [1]  # never all
    assert policy.weakest([3.0], 0.5) == []
    assert policy.weakest([1.0, 1.0, 1.0, 0.0], 0.5) == [3, 0]  # ties keep the islands' order


def test_each_reset_island_is_reseeded_from_a_donor_that_has_a_best_by_then() -> None:
    offered: list[list[int]] = []

    def first(donors: list[int]) -> int:  # a deterministic stand-in for the run's RNG
        offered.append(donors)
        return donors[0]

    # islands 1 and 2 are empty: 2 can take from 0 or 3; then 1 can also take from 2, just reseeded
    assert policy.resets([5.0, None, None, 4.0], 0.5, first) == [(1, 0), (2, 0)]
    assert offered == [[0, 3], [0, 1, 3]]
    assert policy.resets([None, None], 0.5, first) == []  # no island has a best: nothing to reseed from


def test_resets_draw_from_the_run_rng_exactly_as_often_as_there_are_donor_choices() -> None:
    rng, twin = random.Random(7), random.Random(7)
    plan = policy.resets([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 0.25, rng.choice)
    assert [island for island, _ in plan] == [0, 1]
    expected = []
    for island in (0, 1):  # the order and the candidate lists the recorder's RNG saw before
        expected.append((island, twin.choice([i for i in range(8) if i != island])))
    assert plan == expected and rng.getstate() == twin.getstate()
