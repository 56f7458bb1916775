"""What a model call costs, from the configured price table (prices per million tokens).

The table is the `llm.models` list: each entry's `price_in` (prompt tokens) and
`price_out` (completion tokens). Local servers cost nothing unless priced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from evolve.settings import LLMModelSettings

PER = 1_000_000


@dataclass(frozen=True)
class Price:
    prompt: float = 0.0  # per million prompt tokens
    completion: float = 0.0  # per million completion tokens


class PriceTable:
    def __init__(self, prices: Mapping[str, Price]) -> None:
        for model, price in prices.items():
            if price.prompt < 0 or price.completion < 0:
                raise ValueError(f"llm.models: price of '{model}' must not be negative")
        self.prices = dict(prices)

    @classmethod
    def from_models(cls, models: Iterable[LLMModelSettings]) -> PriceTable:
        return cls({m.name: Price(float(m.price_in), float(m.price_out)) for m in models})

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model, Price())
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / PER
