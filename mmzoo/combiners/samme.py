"""Provides the ``samme`` combiner: SAMME's alpha-weighted vote, with alphas from the boosting recipe."""

from __future__ import annotations

import numpy as np
import torch

from mmzoo.combiners.base import ArrayLike, Combiner, hard_votes
from mmzoo.errors import TrainingError


class SammeCombiner(Combiner):
    """The SAMME decision: argmax_c sum_m alpha_m * [argmax p_m == c].

    As a distribution: the alpha-weighted hard votes divided by sum(alpha) (no softmax), so
    each class's share is the fraction of total vote weight behind it. The alphas come from
    the boosting recipe via ``set_member_weights`` (e.g. from ``samme_update``), not from validation
    fitting: ``fit`` only checks its inputs and that alphas were set. Vote ties go to the
    lowest class id.
    """

    name = "samme"
    weights_from_recipe = True

    def __init__(self, num_members: int, num_classes: int) -> None:
        super().__init__(num_members, num_classes)
        self.register_buffer("alphas", torch.zeros(num_members))  # (M,)

    def set_member_weights(self, alphas: ArrayLike) -> SammeCombiner:
        a = torch.as_tensor(np.asarray(alphas, dtype=np.float64))
        if a.shape != (self.num_members,) or not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or a.sum() <= 0:
            raise TrainingError(
                f"combiner 'samme': alphas must be {self.num_members} finite, non-negative numbers, "
                f"not all zero; got {a.tolist()}",
                "use the alphas returned by samme_update, one per member, in member order",
            )
        self.alphas.copy_(a)
        self.fitted.fill_(True)
        return self

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        if not bool(self.alphas.sum() > 0):
            raise TrainingError(
                "combiner 'samme' has no member weights yet",
                "call set_member_weights(...) with the boosting recipe's alphas before fit",
            )

    def member_weights(self) -> np.ndarray:
        return (self.alphas / self.alphas.sum()).numpy()

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        alphas = self.alphas.to(probs.dtype)  # (M,)
        votes = torch.einsum("bmc,m->bc", hard_votes(probs), alphas)  # (B, C)
        return votes / alphas.sum()
