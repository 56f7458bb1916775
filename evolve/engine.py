"""The search loop: scheduling and nothing else.

Steady state, no generations: P proposal tasks each select a parent, ask the
proposer for an edit, apply it, deduplicate, and put the candidate on a bounded
queue; E evaluation tasks take candidates off the queue, evaluate them in the
sandbox, and hand the verified result to the Recorder, which stores it and
updates the islands. Data moves one way: plan -> propose -> accept -> evaluate
-> record.

Budget tickets: a proposal task takes a ticket before asking the proposer, so
no more than `budget.evaluations` candidates are ever evaluated, and gives it
back when the proposal turns out to carry nothing new.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from dataclasses import dataclass
from typing import Callable

from omegaconf import DictConfig

from evolve.edits import EditRejected, apply_edit, normalized_hash
from evolve.evaluation import Evaluation, Evaluator, VerifierError
from evolve.islands import Member, RankSelection
from evolve.problem import HELDOUT, SEARCH, Problem, describe_changes
from evolve.proposers.base import Proposal, ProposalRequest, Proposer, ProgramView
from evolve.recorder import Recorder

log = logging.getLogger("evolve")

# A proposer that keeps failing (endpoint down, every reply garbled) stops the run
# with its last reason instead of spinning; so does a search that only repeats itself.
MAX_CONSECUTIVE_FAILURES = 50
MAX_CONSECUTIVE_DUPLICATES = 1000
MAX_VERIFIER_ERRORS = 5


class SearchStalled(RuntimeError):
    """The proposer or the verifier keeps failing; the message has the last reason."""


class EvaluatorChanged(RuntimeError):
    """The verifier's files, data or settings changed during the run."""


@dataclass(frozen=True)
class Work:
    island: int
    parent: Member
    request: ProposalRequest


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
        cfg: DictConfig,
        problem: Problem,
        proposer: Proposer,
        evaluator: Evaluator,
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
        self.tickets = 0  # candidates reserved: being proposed, queued or evaluated (not yet stored)
        self.finishing = 0  # stored candidates whose held-out / re-check work is still running
        self.pending_hashes: set[str] = set()
        self.failures_in_row = 0
        self.duplicates_in_row = 0
        self.verifier_errors_in_row = 0
        self.failure: Exception | None = None
        self.done = asyncio.Event()

    async def run(self) -> str:
        """Run until a budget is spent or stop() is called; returns the stop reason."""
        if not self.recorder.seeded:
            await self._seed()
        search = self.cfg.search
        queue: asyncio.Queue[Candidate] = asyncio.Queue(maxsize=search.queue_size)
        tasks = [asyncio.create_task(self._propose_loop(queue)) for _ in range(search.proposers)]
        tasks += [asyncio.create_task(self._evaluate_loop(queue)) for _ in range(search.evaluators)]
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
        if not evaluation.valid:
            raise SeedInvalid(f"the seed program of '{self.problem.name}' is invalid: {evaluation.feedback}")
        await self.recorder.record_seed(self.problem.seed_code, normalized_hash(self.problem.seed_code), evaluation)
        await self._champion(self.recorder.best_id, self.problem.seed_code, evaluation)  # type: ignore[arg-type]
        self.on_progress(self.recorder)

    # ------------------------------------------------------------------ proposing

    async def _propose_loop(self, queue: asyncio.Queue[Candidate]) -> None:
        while not self.done.is_set() and self._take_ticket():
            queued = False
            try:
                work = self._plan()
                proposal = await self.proposer.propose(work.request)
                candidate = await self._accept(work, proposal)
                if candidate is not None:
                    await queue.put(candidate)
                    queued = True
            finally:
                if not queued:
                    self._return_ticket()

    def _take_ticket(self) -> bool:
        if self.recorder.exhausted(reserved=self.tickets):
            return False
        self.tickets += 1
        return True

    def _return_ticket(self) -> None:
        self.tickets -= 1
        self._check_done()

    def _check_done(self) -> None:
        if self.tickets == 0 and self.finishing == 0 and self.recorder.exhausted():
            self.done.set()

    def _plan(self) -> Work:
        recorder = self.recorder
        rng = recorder.rng
        island = recorder.islands[recorder.proposals % len(recorder.islands)]
        parent = self.selection.parent(island, rng)
        inspirations = self.selection.inspirations(island, parent, self.cfg.search.inspirations, rng)
        request = ProposalRequest(
            parent=_view(parent),
            inspirations=tuple(_view(m) for m in inspirations),
            statement=self.problem.statement,
            maximize=self.problem.maximize,
            island=island.index,
            seed=rng.getrandbits(63),
        )
        recorder.proposals += 1
        return Work(island.index, parent, request)

    async def _accept(self, work: Work, proposal: Proposal) -> Candidate | None:
        """Apply the edit and deduplicate; anything not new is recorded with its reason."""
        self.recorder.add_cost(proposal)  # at once, so the cost budget stops the next proposal
        if proposal.edit is None:
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
        known = self.recorder.hashes.get(code_hash)
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
            try:
                evaluation = await self._evaluate(candidate.code)
                recorded = await self.recorder.record_program(
                    candidate.work.island, candidate.work.parent, candidate.proposal,
                    candidate.code, candidate.code_hash, candidate.diff, evaluation)
                # The stored evaluation now counts against the budget in the ticket's place;
                # the run is not done until this slot's follow-up work (held-out, re-check) is.
                self.tickets -= 1
                self.finishing += 1
                self.proposer.report_outcome(candidate.proposal, recorded.improvement)
                if recorded.new_best:
                    await self._champion(recorded.program_id, candidate.code, evaluation)
                elif recorded.island_best:
                    await self._heldout(recorded.program_id, candidate.code)
                await self.recorder.maybe_migrate_or_reset()
                await self._check_drift()
                self.on_progress(self.recorder)
            finally:
                self.pending_hashes.discard(candidate.code_hash)
                if recorded is None:
                    self._return_ticket()
                else:
                    self.finishing -= 1
                    self._check_done()

    async def _evaluate(self, code: str, split: str = SEARCH) -> Evaluation:
        try:
            evaluation = await self.evaluator.evaluate(code, split)
            self.verifier_errors_in_row = 0
            return evaluation
        except VerifierError as error:
            # The problem's verifier is at fault, not the candidate: record it loudly,
            # score the candidate invalid, and stop if the verifier keeps failing.
            log.error("%s", error)
            await self.recorder.event("verifier_error", message=str(error))
            self.verifier_errors_in_row += 1
            if self.verifier_errors_in_row >= MAX_VERIFIER_ERRORS or not self.recorder.seeded:
                self._fail(SearchStalled(str(error)))
            return self.evaluator.fault(split, "the verifier could not score this program")

    async def _heldout(self, program_id: int, code: str) -> Evaluation | None:
        """Score a program on the held-out cases; selection never sees this score."""
        if not self.problem.split(HELDOUT):
            return None
        evaluation = await self._evaluate(code, HELDOUT)
        await self.recorder.record_heldout(program_id, evaluation)
        return evaluation

    async def _champion(self, program_id: int, code: str, evaluation: Evaluation) -> None:
        """A new global best: held-out score, a second evaluation, the divergence alarm."""
        heldout = await self._heldout(program_id, code)
        recheck = await self._evaluate(code) if self.cfg.verification.recheck_champion else None
        await self.recorder.record_champion(program_id, evaluation, heldout, recheck)

    async def _check_drift(self) -> None:
        """Every few evaluations: are the verifier, its data and settings still the ones the run began with?"""
        interval = self.cfg.verification.drift_check_interval
        if self.identity is None or not interval or self.recorder.evaluations % interval:
            return
        parts = await asyncio.to_thread(self.identity)
        if parts != self.recorder.evaluator_parts:
            changed = describe_changes(self.recorder.evaluator_parts, parts)
            await self.recorder.event("drift", changes=changed)
            self._fail(EvaluatorChanged(
                f"the evaluator changed during the run ({changed}); the run stopped with everything stored. "
                "Restore the files and `evolve resume`, or start a new epoch with `evolve rescore`"))


class SeedInvalid(RuntimeError):
    pass


def _view(member: Member) -> ProgramView:
    return ProgramView(member.program_id, member.code, member.score, member.feedback)

