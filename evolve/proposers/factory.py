"""Builds the proposer a config names."""

from __future__ import annotations

from omegaconf import DictConfig

from evolve.config import ConfigError
from evolve.proposers.base import Proposer
from evolve.settings import Settings, as_settings


def make_proposer(cfg: Settings | DictConfig) -> Proposer:
    cfg = as_settings(cfg)
    kind = cfg.llm.kind
    if kind == "offline":
        from evolve.proposers.offline import OfflineProposer

        return OfflineProposer(cfg.llm)
    if kind == "openai":
        from evolve.proposers.llm import OpenAIProposer

        return OpenAIProposer(cfg)
    raise ConfigError(f"llm.kind '{kind}' is not known; use 'offline' or 'openai'")
