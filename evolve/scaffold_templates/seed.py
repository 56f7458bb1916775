"""{{name}}: the seed program (a greedy 0/1 knapsack; replace it with your own problem).

The runner calls `solve(**inputs)` once per case, with the `inputs` object of
that case in cases.json as keyword arguments, and sends back what it returns
(JSON data: lists, numbers, strings, dicts). Only the text between the
EVOLVE-BLOCK markers is changed by the search; the rest stays fixed.
"""


# EVOLVE-BLOCK-START
def priority(value: int, weight: int) -> float:
    """How eagerly an item is taken; items are tried from the highest priority down."""
    return 1.0 * value - 0.5 * weight
# EVOLVE-BLOCK-END


def solve(values: list[int], weights: list[int], capacity: int) -> list[int]:
    """The indices of the items packed: greedy by priority, skipping items that no longer fit."""
    order = sorted(range(len(values)), key=lambda i: priority(values[i], weights[i]), reverse=True)
    chosen, load = [], 0
    for i in order:
        if load + weights[i] <= capacity:
            chosen.append(i)
            load += weights[i]
    return chosen
