"""Write cases.json: skewed samples whose best centre (their median) is not their mean."""

import json
import random
from pathlib import Path


def sample(rng: random.Random, kind: str, n: int) -> list[float]:
    draw = {"exponential": lambda: rng.expovariate(1.0), "lognormal": lambda: rng.lognormvariate(0.0, 0.8),
            "gamma": lambda: rng.gammavariate(2.0, 1.5)}[kind]
    return [round(draw(), 4) for _ in range(n)]


def main() -> None:
    rng = random.Random(18)
    splits = {"search": ["exponential", "lognormal", "gamma"], "heldout": ["lognormal", "exponential"]}
    cases = {split: [{"id": f"{split}-{kind}-{i}", "inputs": {"values": " ".join(map(str, sample(rng, kind, 400)))}}
                     for i, kind in enumerate(kinds)] for split, kinds in splits.items()}
    Path(__file__).with_name("cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
