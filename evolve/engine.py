"""The search loop: scheduling and nothing else.

Steady state, no generations: P proposal tasks each select a parent, ask the
proposer for an edit, apply it, deduplicate, and put the candidate on a bounded
queue; E evaluation tasks take candidates off the queue, evaluate them in the
sandbox, and hand the verified result to the Recorder, which stores it and
updates the islands. Data moves one way: plan -> propose -> accept -> evaluate
-> record.

Budget tickets: a proposal task takes a ticket before asking the proposer, so
no more than `budget.evaluations` candidates are ever evaluated, and gives it
back when the proposal turns out to carry nothing new. Tickets, stored candidates'
follow-up work and open challenges make one immutable record (`policy.InFlight`);
the run is done when a budget is spent and that record is idle (`policy.done`).

Certifying problems (see evolve/certification.py): a candidate whose optimistic
search score beats the champion's certified bound is a challenger. One
background task takes challengers, most promising first, through gate and
certify (each a killable child process), so evaluations go on meanwhile; only a
proven bound better than the champion's makes a champion. The run is not done
until the queued challengers are.
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from evolve import policy, seams
from evolve.certification import Certifier, CertifierError, CertifyResult, subject_of
from evolve.champions import decide, remeasure, worth_a_duel
from evolve.edits import EditRejected, apply_edit, normalized_hash
from evolve.errors import EvolveError
from evolve.evaluation import Evaluation, VerifierError
from evolve.islands import Member, RankSelection
from evolve.problem import HELDOUT, SEARCH, Problem, describe_changes
from evolve.proposers.base import Proposal, ProposalCancelled, ProposalRequest, Proposer, ProgramView
from evolve.recorder import Recorder
from evolve.seed_report import invalid_seed_message
from evolve.settings import Settings

log = logging.getLogger("evolve")

# A proposer that keeps failing (endpoint down, every reply garbled) stops the run
# with its last reason instead of spinning; so does a search that only repeats itself.
MAX_CONSECUTIVE_FAILURES = 50
MAX_CONSECUTIVE_DUPLICATES = 1000
MAX_VERIFIER_ERRORS = 5


class SearchStalled(EvolveError, RuntimeError):
    """The proposer or the verifier keeps failing; the message has the last reason."""


class EvaluatorChanged(EvolveError, RuntimeError):
    """The verifier's files, data or settings changed during the run."""


@dataclass(frozen=True)
class Work:
    island: int
    parent: Member
    request: ProposalRequest


@dataclass(order=True, frozen=True)
class Challenger:
    """A stored program waiting for certification; the lowest search score goes first."""

    score: float
    order: int
    program_id: int = field(compare=False)
    code: str = field(compare=False)
    evaluation: Evaluation = field(compare=False)
    subject: Any = field(compare=False)


@dataclass(frozen=True)
class Candidate:
    work: Work
    proposal: Proposal
    code: str
    code_hash: str
    diff: str


class Engine:
    def __init__(
        self,
        cfg: Settings,
        problem: Problem,
        proposer: Proposer,
        evaluator: seams.Evaluator,
        recorder: Recorder,
        on_progress: Callable[[Recorder], None] | None = None,
        identity: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.problem = problem
        self.proposer = proposer
        self.evaluator = evaluator
        self.recorder = recorder
        self.selection = RankSelection(cfg.search.selection_pressure, cfg.search.explore_rate)
        self.on_progress = on_progress or (lambda _recorder: None)
        self.identity = identity  # recomputes the evaluator's identity parts (drift checks)
        self.in_flight = policy.InFlight()  # tickets, stored candidates' follow-up work, open challenges
        self.pending_hashes: set[str] = set()
        self.planned = recorder.view().proposals  # proposals planned (islands take turns); the stored count is of rows
        self.failures_in_row = 0
        self.duplicates_in_row = 0
        self.verifier_errors_in_row = 0
        self.failure: Exception | None = None
        self.done = asyncio.Event()
        self.ticket_back = asyncio.Event()  # a ticket was returned: waiting proposal tasks try again
        self.certifier = _certifier(cfg, problem)
        self.challengers: asyncio.PriorityQueue[Challenger] = asyncio.PriorityQueue()
        self.challenge_order = itertools.count()
        self.duel_lock = asyncio.Lock()  # one re-measurement at a time, each against the current champion

    async def run(self) -> str:
        """Run until a budget is spent or stop() is called; returns the stop reason."""
        if not self.recorder.view().seeded:
            await self._seed()
        else:  # before new work: finish what a stop left half-done
            await self._finish_champion()
            if self.certifier is not None:
                await self._requeue_challengers()
        search = self.cfg.search
        queue: asyncio.Queue[Candidate] = asyncio.Queue(maxsize=search.queue_size)
        tasks = [asyncio.create_task(self._propose_loop(queue)) for _ in range(search.proposers)]
        tasks += [asyncio.create_task(self._evaluate_loop(queue)) for _ in range(search.evaluators)]
        if self.certifier is not None:
            tasks.append(asyncio.create_task(self._certify_loop()))
        self._check_done()
        waiter = asyncio.create_task(self.done.wait())
        try:
            pending = {waiter, *tasks}
            while waiter in pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    if task is not waiter and task.exception():
                        raise task.exception()  # type: ignore[misc]
        finally:
            for task in [waiter, *tasks]:
                task.cancel()
            await asyncio.gather(waiter, *tasks, return_exceptions=True)
            while not queue.empty():  # proposed, never evaluated: recorded, so no LLM call goes unaccounted
                candidate = queue.get_nowait()
                await self._record_cancelled(candidate.work, candidate.proposal)
        if self.failure is not None:
            raise self.failure
        return self.recorder.exhausted() or "stopped"

    def stop(self) -> None:
        self.done.set()

    # ------------------------------------------------------------------ seeding

    async def _seed(self) -> None:
        evaluation = await self._evaluate(self.problem.seed_code)
        if self.failure is not None:
            raise self.failure
        if evaluation.rejected:  # the seed is the problem's own program: a verifier that cannot judge it is broken
            raise SearchStalled(f"{evaluation.rejected} while verifying the seed program")
        if not evaluation.valid:
            raise SeedInvalid(invalid_seed_message(self.problem.name, self.problem.seed_path, evaluation))
        seed_id = await self.recorder.record_seed(self.problem.seed_code, normalized_hash(self.problem.seed_code),
                                                  evaluation)
        if self.certifier is not None:  # the seed, too, is champion only once certified
            self._queue_challenger(seed_id, self.problem.seed_code, evaluation, _subject(evaluation))
        else:
            await self._champion(seed_id, self.problem.seed_code, evaluation)
        self.on_progress(self.recorder)

    # ------------------------------------------------------------------ proposing

    async def _propose_loop(self, queue: asyncio.Queue[Candidate]) -> None:
        while not self.done.is_set():
            if not self._take_ticket():
                # Every ticket is taken; one may come back (a duplicate, a failed proposal or
                # evaluation), and then someone must propose again, or the run waits forever.
                self._check_done()  # a budget with nothing in flight: the run is done
                self.ticket_back.clear()
                if not self.done.is_set():
                    await self.ticket_back.wait()
                continue
            queued = False
            try:
                work = self._plan()
                proposal = await self._propose(work)
                candidate = await self._accept(work, proposal)
                if candidate is not None:
                    try:
                        await queue.put(candidate)
                    except asyncio.CancelledError:  # stopped while waiting for room: still recorded
                        await self._record_cancelled(candidate.work, candidate.proposal)
                        raise
                    queued = True
            finally:
                if not queued:
                    self._return_ticket()

    async def _propose(self, work: Work) -> Proposal:
        """The proposer's answer. Cut short by a stop, the proposal is still recorded, with the LLM
        attempts it made: the endpoint saw (and may bill) them."""
        try:
            return await self.proposer.propose(work.request)
        except asyncio.CancelledError as stop:
            partial = stop.proposal if isinstance(stop, ProposalCancelled) else Proposal(None, "")
            self.recorder.add_cost(partial)
            await self._record_cancelled(work, partial)
            raise

    async def _record_cancelled(self, work: Work, proposal: Proposal) -> None:
        await self.recorder.record_proposal(work.island, work.parent.program_id, proposal, "cancelled",
                                            "the run stopped before this proposal was evaluated")

    def _take_ticket(self) -> bool:
        if self.recorder.exhausted(reserved=self.in_flight.tickets):
            return False
        self.in_flight = self.in_flight.ticket_taken()
        return True

    def _return_ticket(self) -> None:
        self.in_flight = self.in_flight.ticket_returned()
        self.ticket_back.set()
        self._check_done()

    def _check_done(self) -> None:
        if policy.done(self.in_flight, self.recorder.exhausted()):
            self.done.set()

    def _plan(self) -> Work:
        draw = self.recorder.draw(self.planned, self.selection, self.cfg.search.inspirations)
        request = ProposalRequest(
            parent=_view(draw.parent),
            inspirations=tuple(_view(m) for m in draw.inspirations),
            statement=self.problem.statement,
            maximize=self.problem.maximize,
            island=draw.island,
            seed=draw.seed,
        )
        self.planned += 1
        return Work(draw.island, draw.parent, request)

    async def _accept(self, work: Work, proposal: Proposal) -> Candidate | None:
        """Apply the edit and deduplicate; anything not new is recorded with its reason."""
        self.recorder.add_cost(proposal)  # at once, so the cost budget stops the next proposal
        if proposal.edit is None:
            if proposal.fatal:  # no later proposal can succeed: stop now, not after MAX_CONSECUTIVE_FAILURES
                self._fail(SearchStalled(proposal.failure))
            self._count_failure(proposal.failure)
            await self.recorder.record_proposal(work.island, work.parent.program_id, proposal, "failed",
                                                proposal.failure or "the proposer returned no edit")
            return None
        self.failures_in_row = 0
        try:
            code = apply_edit(work.parent.code, proposal.edit)
        except EditRejected as error:
            await self.recorder.record_proposal(work.island, work.parent.program_id, proposal, "rejected",
                                                str(error))
            return None
        code_hash = normalized_hash(code)
        known = self.recorder.known(code_hash)
        if known is not None or code_hash in self.pending_hashes:
            self._count_duplicate()
            await self.recorder.record_proposal(work.island, work.parent.program_id, proposal, "duplicate",
                                                "same normalized code as an earlier program", known)
            self.proposer.report_outcome(proposal, None)
            return None
        self.duplicates_in_row = 0
        self.pending_hashes.add(code_hash)
        diff = "".join(difflib.unified_diff(work.parent.code.splitlines(True), code.splitlines(True), n=1))
        return Candidate(work, proposal, code, code_hash, diff)

    def _count_failure(self, reason: str) -> None:
        self.failures_in_row += 1
        if self.failures_in_row >= MAX_CONSECUTIVE_FAILURES:
            self._fail(SearchStalled(f"{self.failures_in_row} proposals in a row failed; the last: {reason}"))

    def _count_duplicate(self) -> None:
        self.duplicates_in_row += 1
        if self.duplicates_in_row >= MAX_CONSECUTIVE_DUPLICATES:
            self._fail(SearchStalled(f"{self.duplicates_in_row} proposals in a row repeated earlier programs; "
                                     "the proposer has stopped producing anything new"))

    def _fail(self, error: Exception) -> None:
        """Stop the run with this error (the first one wins); what is stored stays stored."""
        if self.failure is None:
            self.failure = error
        self.done.set()

    # ------------------------------------------------------------------ evaluating

    async def _evaluate_loop(self, queue: asyncio.Queue[Candidate]) -> None:
        while True:
            candidate = await queue.get()
            recorded = None
            storing = False
            try:
                evaluation = await self._evaluate(candidate.code)
                storing = True  # from here the write completes even if this task is cancelled
                recorded = await self.recorder.record_program(
                    candidate.work.island, candidate.work.parent, candidate.proposal,
                    candidate.code, candidate.code_hash, candidate.diff, evaluation)
                # The stored evaluation now counts against the budget in the ticket's place;
                # the run is not done until this slot's follow-up work (held-out, re-check) is.
                self.in_flight = self.in_flight.stored()
                self.ticket_back.set()  # while stored it counted twice (evaluation and ticket): waiters try again
                self.proposer.report_outcome(candidate.proposal, recorded.improvement)
                if recorded.challenger:
                    self._queue_challenger(recorded.program_id, candidate.code, evaluation, _subject(evaluation))
                if recorded.contender:
                    await self._duel(recorded.program_id, candidate.code, evaluation)
                if recorded.new_best:
                    await self._champion(recorded.program_id, candidate.code, evaluation)
                elif recorded.island_best and not recorded.challenger:  # a challenger's held-out waits for its crown
                    await self._heldout(recorded.program_id, candidate.code)
                await self.recorder.maybe_migrate_or_reset()
                await self._check_drift()
                self.on_progress(self.recorder)
            except asyncio.CancelledError:
                if not storing:
                    await self._record_cancelled(candidate.work, candidate.proposal)
                raise
            finally:
                self.pending_hashes.discard(candidate.code_hash)
                if recorded is None:
                    self._return_ticket()
                else:
                    self.in_flight = self.in_flight.finished()
                    self._check_done()

    async def _evaluate(self, code: str, split: str = SEARCH) -> Evaluation:
        try:
            evaluation = await self.evaluator.evaluate(code, split)
            self.verifier_errors_in_row = 0
            return evaluation
        except VerifierError as error:
            # The problem's verifier is at fault, not the candidate (a candidate's output the verifier
            # rejected or ran out of time on is an invalid evaluation, not an error): record it loudly,
            # score the candidate invalid, and stop if the verifier keeps failing.
            log.error("%s", error)
            await self.recorder.event("verifier_error", message=str(error))
            self.verifier_errors_in_row += 1
            if self.verifier_errors_in_row >= MAX_VERIFIER_ERRORS or not self.recorder.view().seeded:
                self._fail(SearchStalled(str(error)))
            return self.evaluator.fault(split, "the verifier could not score this program")

    async def _heldout(self, program_id: int, code: str) -> Evaluation | None:
        """Score a program on the held-out cases; selection never sees this score."""
        if not self.problem.split(HELDOUT):
            return None
        evaluation = await self._evaluate(code, HELDOUT)
        await self.recorder.record_heldout(program_id, evaluation)
        return evaluation

    async def _champion(self, program_id: int, code: str, evaluation: Evaluation,
                        certified: CertifyResult | None = None) -> None:
        """A new global best: held-out score, a second evaluation, the divergence alarm."""
        heldout = await self._heldout(program_id, code)
        # A measured score differs on every run: its champions are re-measured in a duel instead.
        recheck = (await self._evaluate(code) if self.cfg.verification.recheck_champion and not self.problem.measured
                   else None)
        await self.recorder.record_champion(program_id, evaluation, heldout, recheck, certified)

    async def _finish_champion(self) -> None:
        """A champion stored just before a stop (kill -9, Ctrl-C) gets the checks it missed."""
        unfinished = await self.recorder.unfinished_champion()
        if unfinished is None:
            return
        await self.recorder.event("champion_resumed", program_id=unfinished.program_id,
                                  heldout_stored=unfinished.heldout is not None, rechecked=unfinished.rechecked)
        heldout = unfinished.heldout or await self._heldout(unfinished.program_id, unfinished.code)
        # A second evaluation stored before the stop is not repeated (nor stored twice).
        recheck = (await self._evaluate(unfinished.code)
                   if self.cfg.verification.recheck_champion and not unfinished.rechecked and not self.problem.measured
                   else None)
        await self.recorder.record_champion(unfinished.program_id, unfinished.search, heldout, recheck,
                                            unfinished.certified)

    async def _duel(self, program_id: int, code: str, evaluation: Evaluation) -> None:
        """A measured score beat the champion once: re-measure both, interleaved; crown only a real gain."""
        recorder, verification = self.recorder, self.cfg.verification
        async with self.duel_lock:
            fitness = self.problem.fitness
            if not worth_a_duel(fitness(evaluation.score), fitness(recorder.view().best_score),  # type: ignore[arg-type]
                                verification.measured_min_gain):
                return  # a champion crowned (or re-measured) meanwhile leaves too little to gain
            champion = await recorder.champion_code()
            pairs = await remeasure(self._evaluate, code, champion, verification.measured_repeats)
            measured = [[fitness(e.score) if e.valid else None for e in pair] for pair in pairs]  # type: ignore[arg-type]
            decision = decide([c for c, _ in measured], [i for _, i in measured], verification.measured_confidence,
                              verification.measured_min_gain)
            score = await recorder.record_duel(program_id, code, pairs, decision)
        if score is not None:
            await self._champion(program_id, code, replace(evaluation, score=score))

    # ------------------------------------------------------------------ certifying

    def _queue_challenger(self, program_id: int, code: str, evaluation: Evaluation, subject: Any) -> None:
        self.in_flight = self.in_flight.challenge_queued()
        self.challengers.put_nowait(Challenger(evaluation.score, next(self.challenge_order), program_id, code,  # type: ignore[arg-type]
                                               evaluation, subject))

    async def _requeue_challengers(self) -> None:
        """Challengers whose certification a kill interrupted are queued again, as they were."""
        for program_id, code, evaluation, subject in await self.recorder.pending_challengers():
            self._queue_challenger(program_id, code, evaluation, subject)

    async def _certify_loop(self) -> None:
        while True:
            challenger = await self.challengers.get()
            try:
                await self._challenge(challenger)
            finally:
                self.in_flight = self.in_flight.challenge_resolved()
                self._check_done()
            self.on_progress(self.recorder)

    async def _challenge(self, challenger: Challenger) -> None:
        """Gate against the champion's bound, then certify; a better proven bound makes a champion."""
        assert self.certifier is not None
        recorder = self.recorder
        program_id = challenger.program_id
        if challenger.subject is None:
            await recorder.event("verifier_error", program_id=program_id, message=(
                f"verifier {self.certifier.name}: no search verdict of program {program_id} carries "
                "metrics['subject']; it cannot be certified"))
            await recorder.resolve_challenge(program_id, "no_subject")
            return
        champion = recorder.view()
        bound, bound_float = champion.champion_bound, champion.best_score
        if not policy.still_challenges(challenger.score, bound_float):
            await recorder.resolve_challenge(program_id, "skipped")  # a newer champion already beats it
            return
        upper = None
        try:
            if bound is not None:
                gate = await self.certifier.gate(challenger.subject, bound)
                await recorder.record_gate(program_id, bound, bound_float, challenger.score, gate)
                if gate.status != "proven":
                    return
                upper = gate.value or bound
            result = await self.certifier.certify(challenger.subject, upper, challenger.score)
        except CertifierError as error:  # the problem's fault: recorded loudly, never a crashed run
            log.error("%s", error)
            await recorder.event("verifier_error", program_id=program_id, message=str(error))
            await recorder.resolve_challenge(program_id, "error")
            return
        crowned = policy.crowns(result.status, result.bound, result.bound_float, bound, bound_float)  # type: ignore[arg-type]
        await recorder.record_certify(program_id, result, challenger.code, crowned)
        if crowned:
            await self._champion(program_id, challenger.code, challenger.evaluation, result)

    async def _check_drift(self) -> None:
        """Every few evaluations: are the verifier, its data and settings still the ones the run began with?"""
        run = self.recorder.view()
        if self.identity is None or not policy.due(run.evaluations, self.cfg.verification.drift_check_interval):
            return
        parts = await asyncio.to_thread(self.identity)
        if parts != run.evaluator_parts:
            changed = describe_changes(run.evaluator_parts, parts)
            await self.recorder.event("drift", changes=changed)
            self._fail(EvaluatorChanged(
                f"the evaluator changed during the run ({changed}); the run stopped with everything stored. "
                "Restore the files and `evolve resume`, or start a new epoch with `evolve rescore`"))


class SeedInvalid(EvolveError, RuntimeError):
    pass


def _certifier(cfg: Settings, problem: Problem) -> Certifier | None:
    if not problem.certifying:
        return None
    verification = cfg.verification
    return Certifier(problem.verifier_source, problem.settings, verification.gate_seconds,
                     verification.certify_seconds, verification.certify_grace)


def _subject(evaluation: Evaluation) -> Any:
    """What the verifier asked to have certified: `metrics["subject"]` of its search verdicts."""
    return subject_of([v.metrics for v in evaluation.verdicts.values()])


def _view(member: Member) -> ProgramView:
    return ProgramView(member.program_id, member.code, member.score, member.feedback)

