import asyncio

import pytest
from omegaconf import OmegaConf

from evolve.config import LLMConfig
from evolve.edits import EditRejected, apply_edit, split_blocks
from evolve.paths import PROBLEMS
from evolve.proposers.base import ProgramView, ProposalRequest
from evolve.proposers.offline import OfflineProposer

SEED = (PROBLEMS / "circle_packing/seed.py").read_text()


def propose(seed: int, inspirations: tuple[ProgramView, ...] = ()):
    proposer = OfflineProposer(OmegaConf.structured(LLMConfig))
    request = ProposalRequest(ProgramView(1, SEED, 1.0), inspirations, "pack circles", True, 0, seed)
    return asyncio.run(proposer.propose(request))


@pytest.mark.slow
def test_mutations_change_only_the_evolve_block() -> None:
    fixed = split_blocks(SEED)[0]
    changed = 0
    for seed in range(200):
        proposal = propose(seed)
        assert proposal.edit is not None, proposal.failure
        try:
            child = apply_edit(SEED, proposal.edit)
        except EditRejected as error:
            raise AssertionError(f"seed {seed}: {error}") from None
        assert [part.strip() for part in split_blocks(child)[0]] == [part.strip() for part in fixed]
        changed += child != SEED
    assert changed == 200


def test_the_same_request_seed_gives_the_same_edit() -> None:
    assert propose(7).edit == propose(7).edit
    assert len({propose(s).edit.code for s in range(30)}) > 20  # type: ignore[union-attr]


def test_crossover_borrows_lines_from_an_inspiration() -> None:
    donor = SEED.replace("margin = 0.1", "margin = 0.0123  # donor")
    found = any("0.0123" in (propose(s, (ProgramView(2, donor, 2.0),)).edit.code) for s in range(300))  # type: ignore[union-attr]
    assert found
