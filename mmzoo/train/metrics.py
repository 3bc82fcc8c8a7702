"""Provides classification metrics from probabilities (numpy only, torch-free)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predictions."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (Guo et al. 2017)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_metrics(probs: np.ndarray, y_true: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro/micro/weighted P/R/F1, per-class report, confusion matrix, ECE, NLL."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    k = len(classes)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0  # macro averages over classes that occur in this split
    weights = support / max(support.sum(), 1)
    n = max(len(y_true), 1)
    micro = float(tp.sum() / n)
    eps = 1e-12
    nll = float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)).mean()) if len(y_true) else 0.0
    return {
        "n": int(len(y_true)),
        "accuracy": micro,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "micro_precision": micro,
        "micro_recall": micro,
        "micro_f1": micro,
        "weighted_precision": float((precision * weights).sum()),
        "weighted_recall": float((recall * weights).sum()),
        "weighted_f1": float((f1 * weights).sum()),
        "ece": expected_calibration_error(probs, y_true) if len(y_true) else 0.0,
        "nll": nll,
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def classification_report(metrics: dict) -> str:
    """The familiar scikit-learn layout: per-class rows, then accuracy and averages."""
    width = max(12, max(len(c) for c in metrics["classes"]))
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for c, m in metrics["per_class"].items():
        lines.append(f"{c:>{width}}  {m['precision']:9.3f} {m['recall']:9.3f} {m['f1']:9.3f} {m['support']:9d}")
    n = metrics["n"]
    lines += ["", f"{'accuracy':>{width}}  {'':9} {'':9} {metrics['accuracy']:9.3f} {n:9d}"]
    for avg in ("macro", "weighted"):
        lines.append(f"{avg + ' avg':>{width}}  {metrics[avg + '_precision']:9.3f} {metrics[avg + '_recall']:9.3f} "
                     f"{metrics[avg + '_f1']:9.3f} {n:9d}")
    return "\n".join(lines)
