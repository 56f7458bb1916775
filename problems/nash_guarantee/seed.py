"""Approximate Nash equilibria of bimatrix games: an algorithm over a fixed block library.

`algorithm()` returns the algorithm as data; the host validates it, compiles it to
constraints that hold in every game with payoffs in [0, 1], and certifies its
worst-case epsilon with an SMT solver. Lower is better.

The seed: solve a zero-sum game (player 1's payoff, so player 1 plays maximin),
then let the player who regrets more best-respond, and the other best-respond in
turn. Its certified epsilon is 1/2, the same as DMP's.
"""


# EVOLVE-BLOCK-START
def algorithm() -> dict:
    """Steps over the block library, one branch with both arms; see the problem statement."""
    # The zero-sum game solved first is u1_weight * U1 - u2_penalty * U2 (integers, each in [-2, 2]).
    u1_weight, u2_penalty = 1, 0
    zero_sum = {"U1": u1_weight, "U2": -u2_penalty}
    steps = [
        {"block": "ZeroSumNE", "payoff": zero_sum, "out": ["xs", "ys"]},
    ]
    # Player 1 regrets more at (xs, ys): player 1 best-responds, then player 2 answers.
    player1_moves = [
        {"block": "BestResponse1", "args": ["ys"], "out": ["r"]},
        {"block": "BestResponse2", "args": ["r"], "out": ["b"]},
    ]
    # The mirror image for player 2.
    player2_moves = [
        {"block": "BestResponse2", "args": ["xs"], "out": ["r"]},
        {"block": "BestResponse1", "args": ["r"], "out": ["b"]},
    ]
    condition = {"lhs": ["f1", "xs", "ys"], "op": ">=", "rhs": ["f2", "xs", "ys"]}
    return {"steps": steps, "branch": {"if": condition, "then": player1_moves, "else": player2_moves}}
# EVOLVE-BLOCK-END
