"""Provides fit's fine-tuned candidates: each kind's best MLP head trained with the last blocks of its encoders.

Cheap enough to cross-validate on a CPU because the frozen part of each encoder runs once per
dataset: the state entering its trained blocks is cached like frozen features
(:func:`mmzoo.train.inputs.cached_prefix`), and every fold trains only those blocks and the head,
the pretrained layers at the preset's lower ``encoder_lr``. A fine-tuned candidate counts as more
complex than every frozen one, so the one-standard-error rule picks it only when CV says it pays.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from mmzoo.fit.heads import Candidate, Fitted, build
from mmzoo.fit.search import Result, from_curves, one_standard_error
from mmzoo.train.inputs import SplitInputs, cached_prefix, initial_pooled, pooled_only
from mmzoo.train.optim import adamw, lr_at
from mmzoo.train.trainer import forward, joint_loss, predict

CPU = torch.device("cpu")


def finetune_candidates(finetune: dict, results: list[Result]) -> list[Candidate]:
    """For each kind to fine-tune: its chosen frozen MLP head, with every train_last and encoder_lr of the grid."""
    out = []
    for kind in finetune["kinds"]:
        mlps = [r for r in results if r.candidate is not None and r.candidate.kind == kind
                and r.candidate.family == "mlp"]
        if not mlps:
            continue
        head = one_standard_error(mlps)[0].candidate.p
        probe = Candidate(kind, "finetune", ())
        tuned = [m for m in probe.modalities if m in finetune["modalities"]]
        if not tuned:
            continue
        for n in finetune["train_last"]:
            for lr in finetune["encoder_lr"]:
                params = {**head, "train_last": int(n), "encoder_lr": float(lr), "tuned": "+".join(tuned)}
                out.append(Candidate(kind, "finetune", tuple(sorted(params.items()))))
    return out


def tuned_modalities(candidate: Candidate) -> list[str]:
    return candidate.p["tuned"].split("+")


def finetune_spec(spec: dict, candidate: Candidate) -> dict:
    """The resolved spec of a fine-tuned candidate: its encoders train their last blocks, at encoder_lr."""
    spec = copy.deepcopy(spec)
    for modality in tuned_modalities(candidate):
        spec[modality]["train_last"] = int(candidate.p["train_last"])
    spec["train"]["encoder_lr"] = float(candidate.p["encoder_lr"])
    return spec


class Tuner:
    """Cross-validates and refits fine-tuned candidates over the cached prefix states of train+val."""

    def __init__(self, dataset, encoders: dict, specs: dict[str, dict], rows: np.ndarray, amp, show: bool = True):
        self.dataset, self.encoders, self.specs, self.rows, self.amp, self.show = \
            dataset, encoders, specs, rows, amp, show
        self.states: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        self.prefix_seconds = self.prefix_cpu_seconds = 0.0  # filling (or reading) the prefix caches

    def encoder(self, modality: str, n: int):
        """A fresh copy of the pretrained frozen encoder with its last ``n`` blocks trainable."""
        encoder = copy.deepcopy(self.encoders[modality])
        encoder.unfreeze_last(n)
        return encoder

    def state(self, modality: str, n: int) -> dict[str, torch.Tensor]:
        """Prefix states of the train+val rows, cached per dataset, encoder and ``n``."""
        if (modality, n) not in self.states:
            wall, cpu = time.perf_counter(), time.process_time()
            entry = {**self.specs[modality], "train_last": n}
            every = cached_prefix(self.encoder(modality, n), entry, self.dataset, self.dataset.samples, CPU,
                                  f"{modality} with {entry['encoder']}", self.amp, self.show)
            self.states[(modality, n)] = {k: v[torch.as_tensor(self.rows)] for k, v in every.items()}
            self.prefix_seconds += time.perf_counter() - wall
            self.prefix_cpu_seconds += time.process_time() - cpu
        return self.states[(modality, n)]

    def inputs(self, candidate: Candidate, x: dict[str, torch.Tensor], y: torch.Tensor, rows) -> SplitInputs:
        """Rows ``rows`` of train+val: prefix states for tuned modalities, pooled features for the others."""
        rows = torch.as_tensor(rows)
        n, tuned = int(candidate.p["train_last"]), tuned_modalities(candidate)
        cached = {m: pooled_only(x[m][rows]) for m in candidate.modalities if m not in tuned}
        prefixes = {m: {k: v[rows] for k, v in self.state(m, n).items()} for m in tuned}
        return SplitInputs(list(range(len(rows))), y[rows], cached, {}, prefixes=prefixes)

    def cross_validate(self, candidate: Candidate, make_spec: Callable, x: dict[str, torch.Tensor], y: np.ndarray,
                       fold: np.ndarray, metric: str, num_classes: int) -> Result:
        """k-fold scores of a fine-tuned candidate on the same folds as the frozen ones; epochs from the CV curve."""
        spec = finetune_spec(make_spec(candidate), candidate)
        y_t = torch.as_tensor(y)
        for m in tuned_modalities(candidate):  # fill the caches first: their cost is counted apart
            self.state(m, int(candidate.p["train_last"]))
        curves, seconds, cpu = [], 0.0, time.process_time()
        for k in range(int(fold.max()) + 1):
            train = self.inputs(candidate, x, y_t, np.flatnonzero(fold != k))
            held = self.inputs(candidate, x, y_t, np.flatnonzero(fold == k))
            fitted = self.train(spec, candidate, num_classes, train, held)
            curves.append(fitted.curve)
            seconds += fitted.seconds
        return from_curves(candidate, curves, y, fold, metric, num_classes, seconds, time.process_time() - cpu)

    def refit(self, spec: dict, candidate: Candidate, x: dict[str, torch.Tensor], y: torch.Tensor,
              num_classes: int, epochs: int) -> Fitted:
        """Train on all of train+val for the CV-chosen epochs, on the same schedule."""
        data = self.inputs(candidate, x, y, np.arange(len(y)))
        return self.train(finetune_spec(spec, candidate), candidate, num_classes, data, None, epochs)

    def train(self, spec: dict, candidate: Candidate, num_classes: int, data: SplitInputs,
              evaluate: SplitInputs | None, epochs: int | None = None) -> Fitted:
        """AdamW over the head (lr) and the trained blocks (encoder_lr), one warm-up + cosine schedule."""
        started, tcfg = time.perf_counter(), spec["train"]
        torch.manual_seed(tcfg["seed"])
        n = int(candidate.p["train_last"])
        encoders = {**self.encoders, **{m: self.encoder(m, n) for m in tuned_modalities(candidate)}}
        model = build(spec, num_classes, encoders)
        model.fit_standardizers(initial_pooled(model, data))
        optimiser = adamw(model.param_groups(tcfg["lr"], tcfg["encoder_lr"]), tcfg["lr"], tcfg["weight_decay"])
        params = model.trainable_parameters()
        batch = tcfg["batch_size"]
        steps_per_epoch = math.ceil(len(data) / batch)
        total = steps_per_epoch * tcfg["epochs"]  # the schedule of the full run, also when stopping early
        generator = torch.Generator().manual_seed(tcfg["seed"])
        fitted, step = Fitted(model), 0
        for _ in range(epochs or tcfg["epochs"]):
            model.train()
            order = torch.randperm(len(data), generator=generator)
            for b in range(steps_per_epoch):
                idx = order[b * batch:(b + 1) * batch]
                for group in optimiser.param_groups:
                    group["lr"] = lr_at(step, total, group["peak"], tcfg["warmup"])
                loss = joint_loss(forward(model, data, idx, CPU), data.targets[idx], None, tcfg)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if tcfg["grad_clip"] > 0:
                    torch.nn.utils.clip_grad_norm_(params, tcfg["grad_clip"])
                optimiser.step()
                step += 1
            if evaluate is not None:
                fitted.curve.append(predict(model, evaluate, CPU))
        fitted.seconds = time.perf_counter() - started
        return fitted
