"""Provides the mean combiner: the plain average of member probabilities."""

from __future__ import annotations

import torch

from mmzoo.combiners.base import Combiner


class MeanCombiner(Combiner):
    """Average the members' probabilities; nothing to fit, so it needs no validation data.

    A strong baseline: with calibrated, comparably good members it is hard to beat, and
    it cannot overfit the validation split.
    """

    name = "mean"
    requires_fit = False

    def __init__(self, num_members: int, num_classes: int) -> None:
        super().__init__(num_members, num_classes)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs.mean(dim=1)  # (B, M, C) -> (B, C)
