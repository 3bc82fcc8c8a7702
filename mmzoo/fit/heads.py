"""Provides head training on cached features: linear heads by L-BFGS, MLP and fusion heads by AdamW.

Both train a real :class:`mmzoo.train.model.MultimodalClassifier` (sharing frozen encoders that are
never run here), so whatever `fit` selects becomes a run folder and an ONNX graph unchanged.
Features are standardised inside the model with statistics of the rows it trains on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mmzoo.encoders.base import Features
from mmzoo.train.optim import lr_at
from mmzoo.train.trainer import joint_loss

# L-BFGS for the convex linear heads: converged to well under a test-set noise level on a few thousand rows.
LBFGS_ITERATIONS = 100


@dataclass(frozen=True)
class Candidate:
    """One model kind ("text", "image" or a fusion) with one head configuration."""

    kind: str
    family: str  # "linear" or "mlp"
    params: tuple  # sorted (key, value) pairs, hashable

    @property
    def p(self) -> dict:
        return dict(self.params)

    @property
    def modalities(self) -> tuple[str, ...]:
        return (self.kind,) if self.kind in ("text", "image") else ("text", "image")

    @property
    def label(self) -> str:
        values = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params)
        return f"{self.kind}/{self.family}({values})"


@dataclass
class Fitted:
    """A trained head: the model, and per-epoch probabilities on the rows it was asked to score."""

    model: torch.nn.Module
    curve: list[np.ndarray] = field(default_factory=list)  # per epoch: (N_eval, C) probabilities
    seconds: float = 0.0


def model_spec(candidate: Candidate, encoders: dict[str, dict], task: dict, epochs: int, batch_size: int,
               metric: str, seed: int, name: str = "fit") -> dict:
    """The resolved registry spec of ``candidate``: what a run folder records and export rebuilds."""
    from mmzoo.zoo.plugins import get_zoo
    from mmzoo.zoo.schema import TRAIN_PARAMS

    p = candidate.p
    linear = candidate.family == "linear"
    spec: dict = {"name": name, "kind": "model", "description": f"mmzoo fit: {candidate.label}"}
    for modality in candidate.modalities:
        spec[modality] = dict(encoders[modality])
    if candidate.kind not in ("text", "image"):
        spec["fusion"] = {"name": candidate.kind, **get_zoo().get("fusion", candidate.kind).defaults()}
    spec["head"] = {"hidden": 0 if linear else int(p["hidden"]), "dropout": 0.0 if linear else float(p["dropout"]),
                    "standardize": True}
    spec["task"] = dict(task)
    train = {param.name: param.default for param in TRAIN_PARAMS}
    aux = 0.0 if linear or candidate.kind in ("text", "image") else float(p["aux"])
    train.update(epochs=int(epochs), batch_size=int(batch_size), patience=0, metric=metric, seed=int(seed),
                 precision="fp32", aux_text=aux, aux_image=aux,
                 lr=float(p.get("lr", train["lr"])), weight_decay=float(p.get("weight_decay", 0.0)))
    spec["train"] = train
    return spec


def build(spec: dict, num_classes: int, encoders: dict) -> torch.nn.Module:
    """A MultimodalClassifier over already-built (frozen) encoders, with a fresh head."""
    from mmzoo.fusions.base import mlp_head
    from mmzoo.train.factory import _build_part
    from mmzoo.train.model import MultimodalClassifier

    text = encoders.get("text") if spec.get("text") else None
    image = encoders.get("image") if spec.get("image") else None
    fusion = None
    if spec.get("fusion"):
        params = {k: v for k, v in spec["fusion"].items() if k != "name"}
        fusion = _build_part("fusion", spec["fusion"]["name"], text.output_dim, image.output_dim, num_classes,
                             mlp_head(spec["head"]["hidden"], spec["head"]["dropout"]), **params)
    return MultimodalClassifier(spec, num_classes, text, image, fusion)


def _features(x: dict[str, torch.Tensor], rows: torch.Tensor | None) -> dict[str, Features]:
    out = {}
    for modality, pooled in x.items():
        p = pooled if rows is None else pooled[rows]  # (B, D)
        out[modality] = Features(p, p.unsqueeze(1), torch.ones(len(p), 1, dtype=torch.bool))
    return out


@torch.no_grad()
def predict(model, x: dict[str, torch.Tensor], batch: int = 1024) -> np.ndarray:
    """Class probabilities (N, C) from pooled features."""
    model.eval()
    n = len(next(iter(x.values())))
    out = [torch.softmax(model.head(_features(x, torch.arange(s, min(s + batch, n))))["logits"], dim=-1)
           for s in range(0, n, batch)]
    return torch.cat(out).numpy()


def train_head(spec: dict, candidate: Candidate, encoders: dict, num_classes: int, x: dict[str, torch.Tensor],
               y: torch.Tensor, evaluate: dict[str, torch.Tensor] | None = None, epochs: int | None = None) -> Fitted:
    """Train ``candidate`` on features ``x`` (modality -> (N, D)) and labels ``y`` (N,).

    MLP heads record the probabilities on ``evaluate`` after every epoch (for choosing the
    epoch count by cross-validation) and stop after ``epochs`` (default: the spec's).
    """
    import time

    started = time.perf_counter()
    torch.manual_seed(spec["train"]["seed"])
    model = build(spec, num_classes, encoders)
    x = {m: x[m] for m in candidate.modalities}
    if evaluate is not None:
        evaluate = {m: evaluate[m] for m in candidate.modalities}
    model.fit_standardizers(x)
    if candidate.family == "linear":
        _lbfgs(model, x, y, float(candidate.p["C"]))
        fitted = Fitted(model)
        if evaluate is not None:
            fitted.curve.append(predict(model, evaluate))
    else:
        fitted = _adamw(model, spec["train"], x, y, evaluate, epochs or spec["train"]["epochs"])
    fitted.seconds = time.perf_counter() - started
    return fitted


def _lbfgs(model, x: dict[str, torch.Tensor], y: torch.Tensor, c: float) -> None:
    """Multinomial logistic regression: mean CE + |W|^2 / (2 C N), as scikit-learn's C (bias unpenalised)."""
    params = model.trainable_parameters()
    weights = [p for p in params if p.ndim > 1]
    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=LBFGS_ITERATIONS, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)
    feats = _features(x, None)
    penalty = 1.0 / (2.0 * c * len(y))
    model.train()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(model.head(feats)["logits"], y)
        loss = loss + penalty * sum(w.square().sum() for w in weights)
        loss.backward()
        return loss

    optimiser.step(closure)


def _adamw(model, train: dict, x: dict[str, torch.Tensor], y: torch.Tensor,
           evaluate: dict[str, torch.Tensor] | None, epochs: int) -> Fitted:
    params = model.trainable_parameters()
    optimiser = torch.optim.AdamW(params, lr=train["lr"], weight_decay=train["weight_decay"])
    n, batch = len(y), train["batch_size"]
    steps_per_epoch = math.ceil(n / batch)
    total = steps_per_epoch * train["epochs"]  # the schedule of the full run, also when stopping early
    generator = torch.Generator().manual_seed(train["seed"])
    fitted, step = Fitted(model), 0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step, total, train["lr"], train["warmup"])
            loss = joint_loss(model.head(_features(x, idx)), y[idx], None, train)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if train["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(params, train["grad_clip"])
            optimiser.step()
            step += 1
        if evaluate is not None:
            fitted.curve.append(predict(model, evaluate))
    return fitted
