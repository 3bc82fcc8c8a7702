"""Provides the weighted combiner: one simplex weight per member, fitted by validation NLL."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmzoo.combiners.base import Combiner

# Keeps log() finite when every weighted member gives the true class zero probability.
_NLL_FLOOR = 1e-12


class WeightedCombiner(Combiner):
    """Weighted average sum_m w_m p_m with w = softmax(logits) on the simplex.

    ``fit`` minimises the validation negative log-likelihood of the weighted average with
    full-batch L-BFGS from uniform weights. The NLL of a mixture is convex in w, and the
    start, data order and optimiser have no randomness, so fitting is deterministic and
    needs no seed. Members that add nothing get weights near zero.
    """

    name = "weighted"

    def __init__(self, num_members: int, num_classes: int, *, max_iter: int) -> None:
        super().__init__(num_members, num_classes, max_iter=max_iter)
        self.logits = nn.Parameter(torch.zeros(num_members), requires_grad=False)  # (M,)

    def member_weights(self) -> np.ndarray:
        """The member weights (M,), non-negative and summing to 1."""
        return torch.softmax(self.logits.detach(), dim=0).numpy()

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        true_probs = probs[torch.arange(len(labels)), :, labels]  # (N, M): each member's p(true class)
        logits = torch.zeros(self.num_members, dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS(
            [logits], max_iter=self.params["max_iter"], line_search_fn="strong_wolfe", tolerance_grad=1e-10
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            mixed = true_probs @ torch.softmax(logits, dim=0)  # (N,)
            loss = -mixed.clamp_min(_NLL_FLOOR).log().mean()
            loss.backward()
            return loss

        optimiser.step(closure)
        self.logits.data.copy_(logits.detach())

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=0)  # (M,)
        return torch.einsum("bmc,m->bc", probs, weights)  # (B, C)
