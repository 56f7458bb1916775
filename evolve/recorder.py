"""The run's state: counters, RNG, islands, best program, budgets; and its writes.

Everything here is mirrored in the database after every change, in the same
transaction as the result that caused it, so a resumed run (even after
`kill -9`) continues with the same counters, RNG state and spend. Database
calls block, so they run on one worker thread, in order.

What a result means (champion, challenger, contender, archive entry, migration
or reset due and which islands, a held-out alarm, a spent budget) is decided by
the pure functions of evolve/policy.py; the engine reads this state through
`view()` and the values the methods below return, and reports events through
those methods, never by touching its fields.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

from sqlalchemy.exc import DBAPIError

from evolve import policy
from evolve.alarms import Baselines, describe, step
from evolve.certification import CertifyResult, GateResult, subject_of
from evolve.champions import Decision
from evolve.db import models
from evolve.db.rows import (Row, call_rows, certificate_row, challenge_row, evaluation_row, member_row,
                             program_row, proposal_row, remeasurement_row)
from evolve.edits import Rewrite, SearchReplace
from evolve.evaluation import Evaluation
from evolve.islands import PER_CLUSTER, Island, Member, RankSelection, best_fitness, ring_migration
from evolve.problem import SEARCH, Problem
from evolve.proposers.base import Proposal
from evolve.seams import Store
from evolve.settings import Settings

BestCallback = Callable[[int, float, str], None]  # program id, score, code


class Recorder:
    def __init__(
        self,
        cfg: Settings,
        problem: Problem,
        store: Store,
        run: models.Run,
        proposer_state: Callable[[], dict] = dict,
        on_best: BestCallback | None = None,
    ) -> None:
        self.cfg = cfg
        self.problem = problem
        self.store = store
        self.run_id: int = run.id  # type: ignore[assignment]
        self.evaluator_hash = run.evaluator_hash
        self.proposer_state = proposer_state
        self.on_best = on_best
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evolve-db")
        self.write_failed: BaseException | None = None  # the database error that ended writing, if any
        self.islands = [Island(i, cfg.search.archive_size) for i in range(cfg.search.islands)]
        self.rng = random.Random(cfg.seed)
        budget = cfg.budget
        self.budget = policy.Budget(budget.evaluations, budget.wall_time, budget.llm_cost,
                                    None if budget.target_score is None else problem.fitness(budget.target_score))
        # Counters (the budget's units) and spend, continued from the stored run.
        self.evaluations = run.evaluations
        self.proposals = run.proposals
        self.duplicates = run.duplicates
        self.rejected = run.rejected
        self.failures = run.failures
        self.llm_cost = run.llm_cost
        self.wall_before = run.wall_seconds
        self.session_start = time.monotonic()
        self.seed_score = run.seed_score
        self.best_id = run.best_program_id
        self.best_score = run.best_score
        self.hashes: dict[str, int] = {}
        self.epoch = run.epoch
        self.evaluator_parts: dict[str, str] = json.loads(run.evaluator_parts)
        self.baselines = Baselines(seed_program_id=run.seed_program_id)  # the held-out alarm's (evolve/alarms.py)
        self.alarms = 0
        self.notices: list[str] = []  # alarms in words, for the run summary
        self.heldout_noted = False  # "no held-out split" is said once per run
        self.seeded = run.seed_program_id is not None
        if run.rng_state:
            self.rng.setstate(_tuples(json.loads(run.rng_state)))
        # Certifying problems: only a proven bound makes a champion (best_id, best_score = its bound).
        self.certifying = problem.certifying
        self.champion_bound: str | None = None  # the champion's exact certified bound
        self.champion_certificate: int | None = None  # its certify row
        self.unsound = 0
        if self.seeded:
            self._load_islands()
            self.hashes = store.code_hashes(self.run_id)
            self._load_alarm_history()
            if self.certifying:
                self._load_certification()

    def _load_islands(self) -> None:
        for island in self.islands:
            limit = island.archive_size * PER_CLUSTER
            for member, program, feedback in self.store.active_members(self.run_id, island.index, limit):
                score = member.fitness if self.problem.maximize else -member.fitness
                island.add(Member(program.id, member.fitness, score, member.signature,  # type: ignore[arg-type]
                                  program.code, feedback))

    def _load_certification(self) -> None:
        certificate = (self.store.champion_certificate(self.run_id, self.best_id)
                       if self.best_id is not None else None)
        if certificate is None:  # no champion, or one without a certificate (a rescore picks by search score)
            self.best_id = self.best_score = None
        else:
            self.champion_bound, self.champion_certificate = certificate.bound, certificate.id
            self.best_score = certificate.bound_float
        self.unsound = len(self.store.unsound_certificates(self.run_id))
        self.alarms += self.unsound

    def _load_alarm_history(self) -> None:
        """The held-out baselines continue across resumes, within the current epoch."""
        kinds = ("champion", "heldout_divergence", "heldout_failed", "heldout_unavailable")
        for kind, data in self.store.events(self.run_id, kinds):
            if kind == "heldout_unavailable":
                self.heldout_noted = True
            elif kind != "champion":
                self.alarms += 1
                self.notices.append(data.get("message", kind))
            elif data.get("epoch", 0) == self.epoch:
                heldout = data.get("heldout") if data.get("heldout_valid", True) else None
                searched = data["certified"] if data.get("certified") is not None else data["search"]
                _findings, self.baselines = step(self.baselines, data["program_id"], self.problem.fitness(searched),
                                                 self.problem.fitness(heldout) if heldout is not None else None,
                                                 self.cfg.verification.alarm_margin, self.cfg.verification.alarm_ratio)

    # ------------------------------------------------------------------ reads for the engine

    def view(self) -> "RunView":
        """The run's state as the engine (and a progress display) may read it: a copy, not the fields."""
        return RunView(self.seeded, self.evaluations, self.proposals, self.best_id, self.best_score,
                       self.champion_bound, self.alarms, self.evaluator_parts)

    def draw(self, turn: int, selection: RankSelection, inspirations: int) -> "Draw":
        """The next parent and inspirations, islands taking turns. The RNG is the run's state (stored
        with every write), so only the recorder draws from it."""
        island = self.islands[turn % len(self.islands)]
        parent = selection.parent(island, self.rng)
        chosen = selection.inspirations(island, parent, inspirations, self.rng)
        return Draw(island.index, parent, tuple(chosen), self.rng.getrandbits(63))

    def known(self, code_hash: str) -> int | None:
        """The stored program with this normalized code, if any."""
        return self.hashes.get(code_hash)

    # ------------------------------------------------------------------ budgets

    @property
    def wall_seconds(self) -> float:
        return self.wall_before + time.monotonic() - self.session_start

    def spent(self) -> policy.Spent:
        """What the run has used so far, in the budget's units."""
        return policy.Spent(self.evaluations, self.wall_seconds, self.llm_cost, self._fitness(self.best_score))

    def exhausted(self, reserved: int = 0) -> str:
        """Which budget is spent ('' if none), counting `reserved` evaluations as done."""
        return policy.exhausted(self.spent(), self.budget, reserved)

    def _fitness(self, score: float | None) -> float | None:
        return None if score is None else self.problem.fitness(score)

    # ------------------------------------------------------------------ writes

    async def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Once the database has refused a write (locked past the busy timeout, disk full), every
        # later write fails at once: each would otherwise wait out the same lock while the run stops.
        if self.write_failed is not None:
            raise self.write_failed
        # Shielded: a write that was started completes even if the caller is cancelled
        # (Ctrl-C, end of budget), so counters and rows never disagree.
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        future.add_done_callback(self._note_failure)
        return await asyncio.shield(future)

    def _note_failure(self, future: asyncio.Future[Any]) -> None:
        """Remember a refused write, also one whose caller was cancelled meanwhile (which retrieves it)."""
        if not future.cancelled() and isinstance(future.exception(), DBAPIError) and self.write_failed is None:
            self.write_failed = future.exception()

    def _state(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "proposals": self.proposals,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failures": self.failures,
            "llm_cost": self.llm_cost,
            "wall_seconds": self.wall_seconds,
            "rng_state": json.dumps(self.rng.getstate()),
            "proposer_state": json.dumps(self.proposer_state()),
            "best_program_id": self.best_id,
            "best_score": self.best_score,
            "seed_score": self.seed_score,
        }

    def add_cost(self, proposal: Proposal) -> None:
        """The proposal's LLM cost, counted as soon as it comes back (stored with its next write)."""
        self.llm_cost += sum(call.cost for call in proposal.calls)

    async def record_seed(self, code: str, code_hash: str, evaluation: Evaluation) -> int:
        program = self._program(None, 0, code, code_hash, "seed", "", "seed", evaluation)
        members = [self._member(i, evaluation) for i in range(len(self.islands))]
        self.seed_score = evaluation.score
        challenge = None
        if self.certifying:  # a champion needs a proven bound: the seed is the first challenger
            challenge = self._challenge(evaluation.score)  # type: ignore[arg-type]
        else:
            self.best_score = evaluation.score
        state = self._state() | {"status": "running"}
        point_here = ("seed_program_id",) if self.certifying else ("seed_program_id", "best_program_id")
        program_id = await self._write(self.store.store_result, state, program, self._evaluation(evaluation),
                                       None, (), members, point_here, challenge)
        self.seeded = True
        self.baselines = replace(self.baselines, seed_program_id=program_id)
        if not self.certifying:
            self.best_id = program_id
        self.hashes[code_hash] = program_id
        for island in self.islands:
            island.add(self._as_member(program_id, code, evaluation))
        return program_id

    async def record_program(self, island: int, parent: Member, proposal: Proposal, code: str, code_hash: str,
                             diff: str, evaluation: Evaluation) -> "Recorded":
        """Store an evaluated candidate and update the islands and the best."""
        self.evaluations += 1
        self.proposals += 1
        edit_kind = getattr(proposal.edit, "kind", "")
        program = self._program(parent.program_id, island, code, code_hash, edit_kind, diff, proposal.proposer,
                                evaluation)
        member = self._as_member(0, code, evaluation) if evaluation.valid else None
        accepted = member is not None and self.islands[island].admits(member)
        new_best, challenger, contender = policy.standing(
            evaluation.valid, self._fitness(evaluation.score), self._fitness(self.best_score),
            certifying=self.certifying, measured=self.problem.measured, has_champion=self.best_id is not None,
            min_gain=self.cfg.verification.measured_min_gain)
        if new_best:
            self.best_score = evaluation.score
        row = proposal_row(self.run_id, island, parent.program_id, proposal.proposer, "new", "", diff)
        program_id = await self._write(
            self.store.store_result, self._state(), program, self._evaluation(evaluation), row,
            self._calls(proposal), [self._member(island, evaluation)] if accepted else [],
            ("best_program_id",) if new_best else (),
            self._challenge(evaluation.score) if challenger else None)  # type: ignore[arg-type]
        self.hashes[code_hash] = program_id
        island_best = False
        if member is not None:
            self.islands[island].add(replace(member, program_id=program_id))
            best = self.islands[island].best
            island_best = best is not None and best.program_id == program_id
        if new_best:
            self.best_id = program_id
            if self.on_best is not None:
                self.on_best(program_id, evaluation.score, code)  # type: ignore[arg-type]
        improvement = self.problem.fitness(evaluation.score) - parent.fitness if evaluation.valid else None  # type: ignore[arg-type]
        return Recorded(program_id, improvement, new_best, island_best, challenger, contender)

    async def record_proposal(self, island: int, parent_id: int, proposal: Proposal, outcome: str, reason: str,
                              program_id: int | None = None) -> None:
        """A proposal that brought no new program: duplicate, rejected edit, failure, or cancelled by a stop."""
        self.proposals += 1
        if outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "rejected":
            self.rejected += 1
        elif outcome == "failed":
            self.failures += 1
        text = _edit_text(proposal.edit)
        row = proposal_row(self.run_id, island, parent_id, proposal.proposer, outcome, reason, text, program_id)
        await self._write(self.store.store_proposal, self._state(), row, self._calls(proposal))

    async def record_heldout(self, program_id: int, evaluation: Evaluation) -> None:
        await self._write(self.store.store_evaluation, self._evaluation(evaluation, program_id))

    async def champion_code(self) -> str:
        program = await self._write(self.store.program, self.best_id)
        return program.code

    async def record_duel(self, contender_id: int, code: str, pairs: list[tuple[Evaluation, Evaluation]],
                          decision: Decision) -> float | None:
        """A re-measurement and its decision; the winner's mean re-measured score becomes the best score
        (the single measurement that made a contender, or a champion, was a lucky draw). Returns the new
        champion's score if the contender was crowned."""
        champion_id = self.best_id
        rows = [remeasurement_row(self.run_id, self.epoch, contender_id, program_id, role, repeat, e)
                for repeat, pair in enumerate(pairs)
                for program_id, role, e in ((contender_id, "contender", pair[0]), (champion_id, "champion", pair[1]))]
        winner = [c for c, _ in pairs] if decision.crowned else [i for _, i in pairs]
        valid = [e.score for e in winner if e.valid]
        if decision.crowned:
            self.best_id = contender_id
        if valid:
            self.best_score = sum(valid) / len(valid)  # type: ignore[arg-type]
        await self._write(self.store.store_duel, self.run_id, rows, self._state(), contender_id=contender_id,
                          champion_id=champion_id, epoch=self.epoch, best_score=self.best_score,
                          **decision.as_dict())
        if not decision.crowned:
            return None
        if self.on_best is not None:
            self.on_best(contender_id, self.best_score, code)  # type: ignore[arg-type]
        return self.best_score

    async def record_champion(self, program_id: int, search: Evaluation, heldout: Evaluation | None,
                              recheck: Evaluation | None, certified: CertifyResult | None = None) -> None:
        """A new global best: its held-out pair, its re-verification, and the divergence alarm.

        A certified champion is judged by its proven bound; a held-out score above that bound
        is impossible if the certificate is sound, and is flagged loudly.
        """
        if recheck is not None:
            await self._write(self.store.store_evaluation, self._evaluation(recheck, program_id))
            if not policy.scores_agree((search.valid, search.score), (recheck.valid, recheck.score),
                                       self.problem.score_tolerance):
                await self.event("nondeterministic", program_id=program_id,
                                 first={"valid": search.valid, "score": search.score},
                                 second={"valid": recheck.valid, "score": recheck.score})
        heldout_fitness = (self.problem.fitness(heldout.score) if heldout is not None and heldout.valid
                           else None)  # type: ignore[arg-type]
        bound = certified.bound_float if certified is not None else None
        search_fitness = self.problem.fitness(bound if bound is not None else search.score)  # type: ignore[arg-type]
        await self.event("champion", program_id=program_id, search=search.score,
                         heldout=heldout.score if heldout is not None else None,
                         heldout_valid=heldout is not None and heldout.valid, epoch=self.epoch,
                         **({"certified": bound, "bound": certified.bound} if certified is not None else {}))
        if heldout is not None and policy.unsound(bound, heldout.valid, heldout.score):
            await self._unsound(program_id, certified, heldout.score)  # type: ignore[arg-type]
        await self._judge_heldout(program_id, search_fitness, heldout, heldout_fitness)

    async def _judge_heldout(self, program_id: int, search_fitness: float, heldout: Evaluation | None,
                             heldout_fitness: float | None) -> None:
        """The held-out alarm (evolve/policy.py `heldout_check`), in words; a failed held-out evaluation
        is its own event."""
        verification = self.cfg.verification
        check = policy.heldout_check(program_id, search_fitness,
                                     None if heldout is None else (heldout.valid, heldout_fitness), self.baselines,
                                     verification.alarm_margin, verification.alarm_ratio, self.heldout_noted)
        self.baselines = check.baselines
        if check.event == "heldout_unavailable":  # said once: this problem has no held-out check at all
            self.heldout_noted = True
            await self.event("heldout_unavailable", message=(
                f"problem '{self.problem.name}' has no held-out split: no held-out alarm can be raised; "
                "add 'heldout' cases to catch shortcuts"))
        elif check.event == "heldout_failed":
            assert heldout is not None
            message = (f"champion {program_id} (after {self.evaluations} evaluations) is invalid on the held-out "
                       f"split ({heldout.feedback[:300]}); "
                       "it was not compared. A program that fails unseen cases may answer the search cases "
                       "from memory: inspect it with `evolve best`")
            self.alarms += 1
            self.notices.append(message)
            await self.event("heldout_failed", program_id=program_id, message=message)
        elif check.event == "heldout_divergence":
            findings = check.findings
            self.alarms += 1
            message = describe(program_id, findings, self.evaluations)
            self.notices.append(message)
            await self.event("heldout_divergence", program_id=program_id, evaluations=self.evaluations,
                             message=message, comparisons=findings,
                             search_gain=findings[0]["search_gain"], heldout_gain=findings[0]["heldout_gain"])

    async def _unsound(self, program_id: int, certified: CertifyResult, measured: float) -> None:
        """A measured score above a proven upper bound: the certificate (or the verifier) is wrong."""
        self.unsound += 1
        self.alarms += 1
        data = dict(program_id=program_id, bound=certified.bound, bound_float=certified.bound_float,
                    heldout=measured, excess=measured - certified.bound_float, solver=certified.solver)  # type: ignore[operator]
        if self.champion_certificate is not None:
            await self._write(self.store.mark_unsound, self.champion_certificate, self.run_id, **data)
        else:
            await self.event("certificate_unsound", **data)

    # ------------------------------------------------------------------ certification

    def _challenge(self, score: float) -> Row:
        """The pending row of a program queued for certification (its id is filled in by the store)."""
        return challenge_row(self.run_id, self.epoch, score)

    def _certificate(self, program_id: int, kind: str, status: str, detail: dict[str, Any], **fields: Any) -> Row:
        return certificate_row(self.run_id, program_id, self.epoch, kind, status, detail, **fields)

    async def resolve_challenge(self, program_id: int, outcome: str) -> None:
        """A challenger dealt with without a result of its own (skipped, no subject, verifier fault)."""
        await self._write(self.store.certification_step, self.run_id, (), (program_id, outcome))

    async def record_gate(self, program_id: int, bound: str, bound_float: float | None, lower: float,
                          gate: GateResult) -> None:
        """A gate result; a witness's exact value replaces the program's optimistic search score."""
        row = self._certificate(program_id, "gate", gate.status, gate.detail, bound=bound, bound_float=bound_float,
                                value=gate.value, value_float=gate.value_float, lower=lower, seconds=gate.seconds,
                                solver=gate.solver, calls=1)
        rescore = None
        if gate.status == "witness":
            score = gate.value_float
            rescore = dict(run_id=self.run_id, program_id=program_id, epoch=self.epoch, score=score,
                           fitness=self.problem.fitness(score))  # type: ignore[arg-type]
            self._rescore_member(program_id, score)  # type: ignore[arg-type]
        resolve = (program_id, gate.status) if gate.status != "proven" else None
        await self._write(self.store.certification_step, self.run_id, [row], resolve, rescore)

    async def record_certify(self, program_id: int, result: CertifyResult, code: str, crowned: bool) -> None:
        """A certify result; a proven bound better than the champion's makes this program champion."""
        row = self._certificate(program_id, "certify", result.status, result.detail, bound=result.bound,
                                bound_float=result.bound_float, lower=result.lower, width=result.width,
                                calls=result.calls, seconds=result.seconds, solver=result.solver)
        run = None
        if crowned:
            self.best_id, self.best_score, self.champion_bound = program_id, result.bound_float, result.bound
            run = {"best_program_id": program_id, "best_score": result.bound_float}
        outcome = "champion" if crowned else "not_better" if result.status == "proven" else result.status
        (certificate_id,) = await self._write(self.store.certification_step, self.run_id, [row],
                                              (program_id, outcome), None, run)
        if crowned:
            self.champion_certificate = certificate_id
            if self.on_best is not None:
                self.on_best(program_id, result.bound_float, code)  # type: ignore[arg-type]

    async def pending_challengers(self) -> list[tuple[int, str, Evaluation, Any]]:
        """Challengers a kill left pending: program id, code, its search evaluation as stored, and
        the subject its verdicts carry (None if none does)."""
        found = []
        pending = await self._write(self.store.pending_challenges, self.run_id, self.epoch)
        for _challenge_id, program_id, _lower in pending:
            program = await self._write(self.store.program, program_id)
            row = await self._write(self.store.search_evaluation, program_id, self.epoch)
            if program is None or row is None or not row.valid:
                await self.resolve_challenge(program_id, "lost")
                continue
            subject = subject_of(list(json.loads(row.metrics).values()))
            found.append((program_id, program.code, _stored_evaluation(row), subject))
        if pending:
            await self.event("certification_requeued", programs=[p for _, p, _ in pending])
        return found

    async def unfinished_champion(self) -> "UnfinishedChampion | None":
        """The best program, if a stop came between storing it and finishing its champion checks
        (held-out score, second evaluation, `champion` event): what of them was already stored."""
        if self.best_id is None:
            return None
        return await self._write(self._unfinished_champion, self.best_id)

    def _unfinished_champion(self, program_id: int) -> "UnfinishedChampion | None":
        done = self.store.events(self.run_id, ("champion",))
        if any(data.get("program_id") == program_id and data.get("epoch", 0) == self.epoch for _, data in done):
            return None
        program = self.store.program(program_id)
        rows = self.store.evaluations(program_id, self.epoch)
        searches = [_stored_evaluation(row) for row in rows if row.split == SEARCH]
        heldouts = [_stored_evaluation(row) for row in rows if row.split != SEARCH]
        if program is None or not searches:
            return None
        certified = None
        if self.certifying:
            row = self.store.champion_certificate(self.run_id, program_id)
            if row is None:
                return None
            certified = CertifyResult(row.status, row.bound, row.bound_float, row.lower, row.width, row.calls,
                                      row.seconds, row.solver)
        return UnfinishedChampion(program_id, program.code, searches[0], heldouts[0] if heldouts else None,
                                  len(searches) > 1, certified)

    def _rescore_member(self, program_id: int, score: float) -> None:
        """The program's archive entries (on every island it reached) take the new score."""
        fitness = self.problem.fitness(score)
        for island in self.islands:
            members = [m for cluster in island.ranked() for m in cluster.members]
            if any(m.program_id == program_id for m in members):
                island.clear()
                for m in members:
                    island.add(replace(m, fitness=fitness, score=score) if m.program_id == program_id else m)

    async def event(self, kind: str, **data: Any) -> None:
        await self._write(self.store.add_event, self.run_id, kind, **data)

    async def maybe_migrate_or_reset(self) -> None:
        search = self.cfg.search
        if policy.due(self.evaluations, search.migration_interval):
            moves = ring_migration(self.islands)
            rows = [self._member_row(dest, m.program_id, m.fitness, m.signature)
                    for dest, m in moves if self.islands[dest].add(m)]
            await self._write(self.store.add_members, rows, "migration", self.run_id,
                              moves=[[dest, m.program_id] for dest, m in moves], at=self.evaluations)
        if policy.due(self.evaluations, search.reset_interval):
            for index, donor in policy.resets(best_fitness(self.islands), search.reset_fraction, self.rng.choice):
                best = self.islands[donor].best  # after this round's earlier resets, as the plan assumed
                assert best is not None
                self.islands[index].clear()
                self.islands[index].add(best)
                row = self._member_row(index, best.program_id, best.fitness, best.signature)
                await self._write(self.store.reset_island, self.run_id, index, [row], from_island=donor,
                                  program_id=best.program_id, at=self.evaluations)
            await self._write(self.store.save_run, self.run_id, rng_state=json.dumps(self.rng.getstate()))

    async def finish(self, status: str) -> None:
        await self._write(self.store.save_run, self.run_id, status=status, **self._state())
        self.executor.shutdown(wait=True)

    # ------------------------------------------------------------------ rows

    def _program(self, parent_id: int | None, island: int, code: str, code_hash: str, edit_kind: str, diff: str,
                 proposer: str, evaluation: Evaluation) -> Row:
        return program_row(self.run_id, parent_id, island, code, code_hash, edit_kind, diff, proposer, evaluation)

    def _evaluation(self, evaluation: Evaluation, program_id: int = 0) -> Row:
        return evaluation_row(evaluation, program_id, self.epoch)

    def _member(self, island: int, evaluation: Evaluation) -> Row:
        """The archive row of the program being stored (its id is filled in by the store)."""
        row = self._member_row(island, 0, self.problem.fitness(evaluation.score), evaluation.signature())  # type: ignore[arg-type]
        del row["program_id"]
        return row

    def _member_row(self, island: int, program_id: int, fitness: float, signature: str) -> Row:
        return member_row(self.run_id, island, program_id, fitness, signature)

    def _as_member(self, program_id: int, code: str, evaluation: Evaluation) -> Member:
        return Member(program_id, self.problem.fitness(evaluation.score), evaluation.score,  # type: ignore[arg-type]
                      evaluation.signature(), code, evaluation.feedback)

    def _calls(self, proposal: Proposal) -> list[Row]:
        return call_rows(self.run_id, proposal.calls)


class Draw(NamedTuple):
    """What the next proposal works from."""

    island: int
    parent: Member
    inspirations: tuple[Member, ...]
    seed: int  # for the proposer's own randomness


class RunView(NamedTuple):
    """The run's state at one moment, for reading (Recorder.view)."""

    seeded: bool
    evaluations: int
    proposals: int
    best_id: int | None
    best_score: float | None  # a certifying problem's: the champion's proven bound
    champion_bound: str | None  # certifying problems: the champion's exact bound
    alarms: int
    evaluator_parts: dict[str, str]  # the evaluator identity the run started with


class Recorded(NamedTuple):
    program_id: int
    improvement: float | None  # over the parent, in fitness units; None if invalid
    new_best: bool
    island_best: bool
    challenger: bool = False  # certifying problems: beats the champion's bound, queued for certification
    contender: bool = False  # measured scores: beats the champion once; a re-measurement decides


class UnfinishedChampion(NamedTuple):
    """A champion whose checks a stop interrupted, and which of them were already stored."""

    program_id: int
    code: str
    search: Evaluation
    heldout: Evaluation | None  # its held-out evaluation, if stored before the stop
    rechecked: bool  # its second search evaluation was stored before the stop
    certified: CertifyResult | None


def _stored_evaluation(row: models.Evaluation) -> Evaluation:
    """An evaluation as stored (scores and feedback; its per-case verdicts stay in the row's metrics)."""
    return Evaluation(row.split, bool(row.valid), row.score, {}, row.feedback, row.seconds, row.evaluator_hash)


def _edit_text(edit: object) -> str:
    """The edit as the proposer gave it, for the record."""
    if isinstance(edit, Rewrite):
        return edit.code
    if isinstance(edit, SearchReplace):
        return json.dumps(edit.pairs)
    return ""


def _tuples(value: Any) -> Any:
    """JSON turns the RNG state's tuples into lists; random.setstate wants tuples back."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
