"""Provides the greedy combiner: Caruana et al. (2004) ensemble selection with replacement."""

from __future__ import annotations

import numpy as np
import torch

from mmzoo.combiners.base import Combiner

_NLL_FLOOR = 1e-12


class GreedyCombiner(Combiner):
    """Forward ensemble selection with replacement (Caruana et al., ICML 2004).

    Start from an empty ensemble; in each of ``rounds`` rounds add (again, if it helps) the
    member whose inclusion gives the best validation score of the running average. The
    result is an integer count per member; weights = counts / rounds. Ties go to the lower
    validation NLL, then to the lower member index, so fitting is deterministic. With
    ``metric="accuracy"`` the NLL tie-break matters often, since accuracy moves in steps.

    Keep ``rounds`` modest: AutoGluon's maintainers observed that beyond roughly 40 rounds
    selection mostly overfits the validation split; 25 is the default. Caruana's bagged
    selection and sorted initialisation are not used here.
    """

    name = "greedy"

    def __init__(self, num_members: int, num_classes: int, *, rounds: int, metric: str) -> None:
        super().__init__(num_members, num_classes, rounds=rounds, metric=metric)
        self.register_buffer("counts", torch.zeros(num_members, dtype=torch.int64))  # (M,)

    def member_weights(self) -> np.ndarray:
        """counts / rounds (M,): how often each member was picked."""
        return (self.counts.double() / self.params["rounds"]).numpy()

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        n = len(labels)
        members = probs.transpose(0, 1)  # (M, N, C)
        total = torch.zeros_like(probs[:, 0])  # (N, C) sum of the chosen members so far
        counts = torch.zeros(self.num_members, dtype=torch.int64)
        for round_ in range(1, self.params["rounds"] + 1):
            candidates = (total.unsqueeze(0) + members) / round_  # (M, N, C)
            true = candidates[:, torch.arange(n), labels]  # (M, N)
            nll = -true.clamp_min(_NLL_FLOOR).log().mean(dim=1)  # (M,)
            if self.params["metric"] == "nll":
                keys = [(float(nll[m]), m) for m in range(self.num_members)]
            else:
                accuracy = (candidates.argmax(dim=-1) == labels).double().mean(dim=1)  # (M,)
                keys = [(-float(accuracy[m]), float(nll[m]), m) for m in range(self.num_members)]
            best = min(keys)[-1]
            counts[best] += 1
            total += members[best]
        self.counts.copy_(counts)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        weights = self.counts.to(probs.dtype) / self.params["rounds"]  # (M,)
        return torch.einsum("bmc,m->bc", probs, weights)  # (B, C)
