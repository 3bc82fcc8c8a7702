"""Provides the cross-validated search: candidates, k-fold scores with spread, and the one-standard-error rule.

Every score here comes from group-aware, stratified k-fold cross-validation over train+val;
the test split is never read. An MLP's epoch count is chosen from the mean validation
curve over the folds (smoothed, never before ``MIN_EPOCHS``), so no single small fold can
pick a lucky epoch. Ensembles are scored on the members' out-of-fold predictions with the
combiner cross-fitted over the same folds, so no combiner is scored on rows it was fitted on.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mmzoo.fit.heads import Candidate

# Simpler first: the one-standard-error rule picks the simplest candidate within reach of the best.
KIND_ORDER = {"text": 0, "image": 0, "concat": 1, "late": 2, "gated": 3, "film": 4, "bilinear": 5,
              "cross_attention": 6}
COMBINER_ORDER = {"mean": 0, "vote": 1, "weighted": 2, "greedy": 3, "stacking": 4, "moe": 5}
MIN_EPOCHS = 3  # an MLP's chosen epoch count is never below this
SMOOTH = 3  # epochs in the moving average of the mean CV curve
IMBALANCE = 1.5  # metric "auto": macro_f1 when the largest class is more than this times the smallest
EDGE_STEPS = 3  # at most this many C values tried past the end of a linear grid whose best C sits on that end


@dataclass
class Result:
    """One candidate's cross-validated record."""

    name: str  # e.g. "concat/mlp(...)" or "ensemble:stacking"
    complexity: tuple
    fold_scores: list[float]
    oof: np.ndarray  # (N, C) out-of-fold probabilities over train+val
    epochs: int = 1
    seconds: float = 0.0  # wall time of the cross-validation
    cpu_seconds: float = 0.0  # CPU time of this process in it (time.process_time: every thread)
    candidate: Candidate | None = None
    members: list[str] = field(default_factory=list)  # for ensembles: member kinds
    combiner: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores, ddof=1)) if len(self.fold_scores) > 1 else 0.0

    @property
    def se(self) -> float:
        return self.std / np.sqrt(len(self.fold_scores))


def score(probs: np.ndarray, labels: np.ndarray, metric: str, num_classes: int) -> float:
    """Accuracy or macro-F1 (over classes present in ``labels`` or predicted) of argmax predictions."""
    pred = probs.argmax(axis=1)
    if metric == "accuracy":
        return float((pred == labels).mean())
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (labels == c))
        support, predicted = np.sum(labels == c), np.sum(pred == c)
        if support == 0 and predicted == 0:
            continue
        f1s.append(2 * tp / (support + predicted))
    return float(np.mean(f1s)) if f1s else 0.0


def pick_metric(metric: str, labels: np.ndarray, num_classes: int) -> str:
    """"auto" becomes macro_f1 for imbalanced classes, accuracy otherwise."""
    if metric != "auto":
        return metric
    counts = np.bincount(labels, minlength=num_classes)
    counts = counts[counts > 0]
    return "macro_f1" if counts.max() > IMBALANCE * counts.min() else "accuracy"


def candidates(preset, rng: random.Random) -> list[Candidate]:
    """Every candidate of a preset: the linear grid where a linear head exists, sampled MLP configs."""
    out: list[Candidate] = []
    kinds = ["text", "image", *preset.fusions]
    for kind in kinds:
        if "linear" in preset.heads and kind in ("text", "image", "concat"):
            out += [Candidate(kind, "linear", (("C", float(c)),)) for c in preset.heads["linear"]["C"]]
        if "mlp" in preset.heads:
            grid = dict(preset.heads["mlp"])
            if kind in ("text", "image"):
                grid.pop("aux", None)  # no auxiliary heads without a fusion
            keys = sorted(grid)
            every = [tuple(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
            chosen = every if len(every) <= preset.trials else rng.sample(every, preset.trials)
            out += [Candidate(kind, "mlp", params) for params in chosen]
    return out


def beyond_the_grid(linear: list[Result], evaluate: Callable[[Candidate], Result],
                    steps: int = EDGE_STEPS) -> list[Result]:
    """Results of C values past the end of one kind's linear grid, when its best C sits on that end.

    A best C on the edge of the grid says the grid stopped too early, not that the edge is
    right (scikit-learn users meet this as "C hit the bound"). Steps continue by the grid's own
    ratio at that end while the CV mean improves, at most ``steps`` times; every one is a
    cross-validated candidate like the others, so the usual rules choose among them.
    """
    if len(linear) < 2:
        return []
    cs = sorted({float(r.candidate.p["C"]) for r in linear})
    current = max(sorted(linear, key=lambda r: r.complexity), key=lambda r: r.mean)
    c = float(current.candidate.p["C"])
    if len(cs) < 2 or c not in (cs[0], cs[-1]):
        return []
    factor = cs[0] / cs[1] if c == cs[0] else cs[-1] / cs[-2]
    added = []
    for _ in range(steps):
        c *= factor
        result = evaluate(Candidate(current.candidate.kind, "linear", (("C", float(f"{c:.6g}")),)))
        added.append(result)
        if result.mean <= current.mean:
            break
        current = result
    return added


def complexity(candidate: Candidate) -> tuple:
    """Frozen before fine-tuned, then kind, then linear before MLP, then (within a family) stronger
    regularisation and smaller heads first; fine-tuned: fewer trained blocks and lower encoder_lr first."""
    p = candidate.p
    if candidate.family == "linear":
        detail: tuple = (float(p["C"]),)
    else:
        detail = (int(p["hidden"]), -float(p["weight_decay"]), -float(p["dropout"]), float(p.get("aux", 0.0)))
    tuned = candidate.family == "finetune"
    if tuned:
        detail = (int(p["train_last"]), float(p["encoder_lr"]), *detail)
    return (0, int(tuned), KIND_ORDER.get(candidate.kind, 9), 0 if candidate.family == "linear" else 1, detail)


def cross_validate(candidate: Candidate, make_spec: Callable[[Candidate], dict], encoders: dict,
                   x: dict[str, torch.Tensor], y: np.ndarray, fold: np.ndarray, metric: str,
                   num_classes: int) -> Result:
    """k-fold scores of one candidate; MLPs get their epoch count from the smoothed mean curve."""
    from mmzoo.fit.heads import train_head

    spec = make_spec(candidate)
    folds = int(fold.max()) + 1
    y_t = torch.as_tensor(y)
    curves, seconds, cpu = [], 0.0, time.process_time()
    for k in range(folds):
        train = torch.as_tensor(np.flatnonzero(fold != k))
        held = torch.as_tensor(np.flatnonzero(fold == k))
        fitted = train_head(spec, candidate, encoders, num_classes, {m: v[train] for m, v in x.items()},
                            y_t[train], evaluate={m: v[held] for m, v in x.items()})
        curves.append(fitted.curve)
        seconds += fitted.seconds
    return from_curves(candidate, curves, y, fold, metric, num_classes, seconds, time.process_time() - cpu)


def from_curves(candidate: Candidate, curves: list[list[np.ndarray]], y: np.ndarray, fold: np.ndarray, metric: str,
                num_classes: int, seconds: float, cpu_seconds: float) -> Result:
    """A candidate's record from its per-fold, per-epoch held-out probabilities; the epoch count from the
    smoothed mean curve (never below MIN_EPOCHS), the same for every fold."""
    folds = len(curves)
    n_epochs = len(curves[0])
    per_epoch = np.array([[score(curves[k][e], y[fold == k], metric, num_classes) for e in range(n_epochs)]
                          for k in range(folds)])  # (folds, epochs)
    epoch = 0
    if n_epochs > 1:
        mean = per_epoch.mean(axis=0)
        smooth = np.convolve(np.pad(mean, (SMOOTH // 2, SMOOTH // 2), mode="edge"), np.ones(SMOOTH) / SMOOTH,
                             mode="valid")
        start = min(MIN_EPOCHS, n_epochs) - 1
        epoch = start + int(np.argmax(smooth[start:]))
    oof = np.zeros((len(y), num_classes), dtype=np.float64)
    for k in range(folds):
        oof[fold == k] = curves[k][epoch]
    return Result(candidate.label, complexity(candidate), [float(s) for s in per_epoch[:, epoch]], oof,
                  epochs=epoch + 1, seconds=seconds, candidate=candidate, cpu_seconds=cpu_seconds)


def cross_fit_combiner(name: str, members: list[Result], y: np.ndarray, fold: np.ndarray, groups: np.ndarray,
                       metric: str, num_classes: int, params: dict | None = None) -> Result:
    """Score a combiner over the members' out-of-fold predictions, fitting it on the other folds only."""
    from mmzoo.ensemble.build import build_combiner

    probs = np.stack([m.oof for m in members], axis=1)  # (N, M, C)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    folds = int(fold.max()) + 1
    combined = np.zeros((len(y), num_classes))
    scores = []
    for k in range(folds):
        rest, held = fold != k, fold == k
        combiner = build_combiner({"name": name, **(params or {})}, len(members), num_classes)
        if combiner.requires_fit:
            combiner.fit(probs[rest], y[rest], groups=groups[rest])
        combined[held] = combiner.predict(probs[held])
        scores.append(score(combined[held], y[held], metric, num_classes))
    return Result(f"ensemble:{name}", (1, len(members), COMBINER_ORDER.get(name, 9)), scores, combined,
                  members=[m.candidate.kind for m in members], combiner=name)


def one_standard_error(results: list[Result]) -> tuple[Result, Result]:
    """(chosen, best): the simplest result whose mean is within one standard error of the best mean."""
    best = max(sorted(results, key=lambda r: r.complexity), key=lambda r: r.mean)  # ties: the simpler
    threshold = best.mean - best.se
    within = [r for r in results if r.mean >= threshold]
    chosen = min(within, key=lambda r: (r.complexity, -r.mean))
    return chosen, best
