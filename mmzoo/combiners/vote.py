"""Provides the vote combiner: hard majority vote with a mean-probability tie-break."""

from __future__ import annotations

import torch

from mmzoo.combiners.base import Combiner, hard_votes

# Small enough that the soft additions never outweigh one vote (they total at most 2*EPS < 1),
# large enough to survive float32 next to vote counts of a few dozen members.
EPS = 1e-3


class VoteCombiner(Combiner):
    """Each member votes for its argmax class; the class with most votes wins.

    Ties between classes with the same (highest) vote count go to the one with the highest
    mean member probability; an exact tie there goes to the lowest class id.

    The output distribution is ``normalise(counts + EPS * mean_probs + EPS * onehot(winner))``:
    mostly the vote shares, with the mean probabilities as a faint secondary signal. Vote
    counts are whole numbers and the additions stay below 2*EPS < 1, so the argmax is
    always the majority class; the explicit ``onehot(winner)`` term guarantees the tie rule
    even when the tied classes' mean probabilities differ below float32 resolution.
    """

    name = "vote"
    requires_fit = False

    def __init__(self, num_members: int, num_classes: int) -> None:
        super().__init__(num_members, num_classes)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        counts = hard_votes(probs).sum(dim=1)  # (B, C)
        mean = probs.mean(dim=1)  # (B, C)
        tied = counts == counts.max(dim=-1, keepdim=True).values  # (B, C) classes with the most votes
        # Mean probabilities lie in [0, 1], so -1 marks the non-tied classes as never chosen.
        winner = torch.where(tied, mean, torch.full_like(mean, -1.0)).argmax(dim=-1, keepdim=True)  # (B, 1)
        bonus = torch.zeros_like(mean).scatter(-1, winner, 1.0)  # (B, C)
        scores = counts + EPS * mean + EPS * bonus
        return scores / scores.sum(dim=-1, keepdim=True)
