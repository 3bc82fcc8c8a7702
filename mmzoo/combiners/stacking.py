"""Provides the stacking combiner: cross-fitted multinomial logistic regression over members."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmzoo.combiners.base import Combiner, log_probs, stratified_folds
from mmzoo.errors import TrainingError


class StackingCombiner(Combiner):
    """Multinomial logistic regression on the members' flattened (M*C) log-probs (or probs).

    The meta-model is an L2-regularised ``Linear(M*C, C)`` + softmax, fitted by full-batch
    L-BFGS (convex, so deterministic from its zero start). ``fit`` first cross-fits it over
    ``folds`` stratified, seeded folds of the validation split: ``cv_predictions`` (N, C)
    holds each sample's out-of-fold probabilities and ``validation_score`` their accuracy,
    an honest estimate because no sample is scored by a model that saw it. The final model
    is then refit on all validation data. ``cv_predictions`` is a fit-time diagnostic and is
    not saved; ``validation_score`` is a buffer and is.
    """

    name = "stacking"

    def __init__(
        self,
        num_members: int,
        num_classes: int,
        *,
        input: str,
        weight_decay: float,
        folds: int,
        max_iter: int,
        seed: int,
    ) -> None:
        super().__init__(
            num_members, num_classes, input=input, weight_decay=weight_decay, folds=folds, max_iter=max_iter, seed=seed
        )
        self.linear = nn.Linear(num_members * num_classes, num_classes)
        self.linear.requires_grad_(False)
        self.register_buffer("validation_score", torch.tensor(float("nan")))
        self.cv_predictions: np.ndarray | None = None

    def out_of_fold_predictions(self) -> np.ndarray | None:
        return self.cv_predictions

    def _inputs(self, probs: torch.Tensor) -> torch.Tensor:
        x = log_probs(probs) if self.params["input"] == "log_probs" else probs
        return x.flatten(1)  # (B, M, C) -> (B, M*C)

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        folds = self.params["folds"]
        if len(labels) < folds:
            raise TrainingError(
                f"combiner 'stacking': {len(labels)} validation samples cannot fill {folds} folds",
                "lower `folds:` in the combiner params, or use a larger validation split",
            )
        x = self._inputs(probs)  # (N, M*C)
        fold = stratified_folds(labels, folds, self.params["seed"], self.fit_groups)  # (N,)
        oof = torch.zeros(len(labels), self.num_classes, dtype=torch.float64)  # (N, C)
        for k in range(folds):
            held = fold == k
            weight, bias = self._solve(x[~held], labels[~held])
            oof[held] = torch.softmax(x[held] @ weight.T + bias, dim=-1)
        self.cv_predictions = oof.numpy()
        self.validation_score.fill_(float((oof.argmax(dim=-1) == labels).double().mean()))
        weight, bias = self._solve(x, labels)
        self.linear.weight.copy_(weight)
        self.linear.bias.copy_(bias)

    def _solve(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fit the L2-regularised multinomial logistic regression; returns weight (C, D), bias (C,)."""
        weight = torch.zeros(self.num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(self.num_classes, dtype=torch.float64, requires_grad=True)
        decay = self.params["weight_decay"]
        optimiser = torch.optim.LBFGS(
            [weight, bias], max_iter=self.params["max_iter"], line_search_fn="strong_wolfe", tolerance_grad=1e-9
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(x @ weight.T + bias, y)
            # The bias is penalised too: a class missing from a fold's training part would
            # otherwise have its bias pushed towards -inf.
            loss = loss + 0.5 * decay * (weight.square().sum() + bias.square().sum())
            loss.backward()
            return loss

        optimiser.step(closure)
        return weight.detach(), bias.detach()

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(self._inputs(probs)), dim=-1)  # (B, C)
