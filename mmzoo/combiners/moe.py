"""Provides the mixture-of-experts combiner: a small gate picks per-sample member weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mmzoo.combiners.base import Combiner, log_probs, stratified_folds
from mmzoo.errors import TrainingError

_NLL_FLOOR = 1e-12


class MoeCombiner(Combiner):
    """Input-conditioned gate: output = sum_m w_m(x) p_m with w(x) = softmax(MLP(x)).

    The gate reads the members' flattened log-probabilities (B, M*C), or, when built with
    ``feature_dim`` F, the members' pooled features (B, M*F) passed to ``fit`` and
    ``forward`` (features given to a probs-only gate are ignored, as by every other
    combiner). The default probs-only path keeps ONNX export a single-input graph.

    Training: a seeded, stratified ``holdout`` share of the validation split (rounded to one
    of 1/k folds) is held out for early stopping; full-batch Adam minimises the mixture NLL
    on the rest, and the gate from the epoch with the lowest held-out NLL is kept. The last
    layer starts at zero, so epoch 0 is the plain mean: the gate only departs from the mean
    when that helps on held-out data.

    It helps when members have complementary, input-dependent strengths (one is reliable on
    some inputs, another elsewhere) and there is enough validation data to learn where.
    It does not when the validation set is small (the gate overfits; prefer ``weighted`` or
    ``mean``) or when members are near-identical (there is nothing to route between).
    """

    name = "moe"

    def __init__(
        self,
        num_members: int,
        num_classes: int,
        *,
        hidden: int,
        lr: float,
        weight_decay: float,
        epochs: int,
        patience: int,
        holdout: float,
        seed: int,
        feature_dim: int | None,
    ) -> None:
        super().__init__(
            num_members,
            num_classes,
            hidden=hidden,
            lr=lr,
            weight_decay=weight_decay,
            epochs=epochs,
            patience=patience,
            holdout=holdout,
            seed=seed,
            feature_dim=feature_dim,
        )
        in_dim = num_members * (num_classes if feature_dim is None else feature_dim)
        # Standardising the gate input makes one learning rate fit log-probs and raw features alike.
        self.register_buffer("shift", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.gate = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_members))

    def _gate_input(self, probs: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        if self.params["feature_dim"] is None:
            return log_probs(probs).flatten(1)  # (B, M*C)
        if features is None:
            raise TrainingError(
                "combiner 'moe' was built with feature_dim, so it needs the members' features too",
                "pass features (B, M, F) alongside the probabilities",
            )
        if features.shape[1:] != (self.num_members, self.params["feature_dim"]):
            raise TrainingError(
                f"combiner 'moe': features must be (B, {self.num_members}, {self.params['feature_dim']}), "
                f"got {tuple(features.shape)}",
                "pass each member's pooled features, matching `feature_dim:`",
            )
        return features.flatten(1)  # (B, M*F)

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        k = round(1 / self.params["holdout"])
        if len(labels) < 2 * k:
            raise TrainingError(
                f"combiner 'moe': {len(labels)} validation samples are too few to hold out "
                f"{self.params['holdout']:.0%} for early stopping",
                "use a larger validation split, or the `weighted` combiner for small ones",
            )
        x = self._gate_input(probs, features).float()  # (N, D)
        p = probs.float()
        held = stratified_folds(labels, k, self.params["seed"], self.fit_groups) == 0  # (N,)
        self.shift.copy_(x[~held].mean(dim=0))
        self.scale.copy_(x[~held].std(dim=0, unbiased=False).clamp_min(1e-6))

        self.gate.requires_grad_(True)
        generator = torch.Generator().manual_seed(self.params["seed"])
        first, last = self.gate[0], self.gate[2]
        bound = first.in_features**-0.5
        with torch.no_grad():
            first.weight.copy_(torch.rand(first.weight.shape, generator=generator) * 2 * bound - bound)
            first.bias.zero_()
            last.weight.zero_()
            last.bias.zero_()

        def nll(mask: torch.Tensor) -> torch.Tensor:
            weights = torch.softmax(self.gate((x[mask] - self.shift) / self.scale), dim=-1)  # (n, M)
            mixed = torch.einsum("nmc,nm->nc", p[mask], weights)  # (n, C)
            return -mixed[torch.arange(len(mixed)), labels[mask]].clamp_min(_NLL_FLOOR).log().mean()

        optimiser = torch.optim.Adam(
            self.gate.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"]
        )
        with torch.no_grad():
            best_loss, best_state, waited = float(nll(held)), copy.deepcopy(self.gate.state_dict()), 0
        for _ in range(self.params["epochs"]):
            optimiser.zero_grad()
            nll(~held).backward()
            optimiser.step()
            with torch.no_grad():
                held_loss = float(nll(held))
            if held_loss < best_loss:
                best_loss, best_state, waited = held_loss, copy.deepcopy(self.gate.state_dict()), 0
            else:
                waited += 1
                if waited >= self.params["patience"]:
                    break
        self.gate.load_state_dict(best_state)
        self.gate.requires_grad_(False)

    @property
    def reads_member_features(self) -> bool:
        return self.params["feature_dim"] is not None

    def forward(self, probs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        x = (self._gate_input(probs, features) - self.shift) / self.scale  # (B, D)
        weights = torch.softmax(self.gate(x), dim=-1)  # (B, M)
        return torch.einsum("bmc,bm->bc", probs, weights)  # (B, C)
