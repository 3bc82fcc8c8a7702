"""Provides the parity check every export must pass: onnxruntime against torch on real validation samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmzoo.errors import ExportError

# float32 graphs must reproduce torch to rounding error: a larger gap means a wrong graph.
FP32_MAX_ABS_DIFF = 1e-4
FP32_MIN_AGREEMENT = 1.0
# int8 and fp16 trade exactness for speed/size; they must still pick the same class almost always.
LOW_PRECISION_MIN_AGREEMENT = 0.99
BATCH = 32


@dataclass
class Reference:
    """Torch's answers on the parity samples, computed once and reused for every precision."""

    feeds: list[dict[str, np.ndarray]]  # per batch
    probs: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,)


def reference(source, samples, labels: np.ndarray) -> Reference:
    feeds, probs = [], []
    for start in range(0, len(samples), BATCH):
        chunk = samples[start:start + BATCH]
        batch = source.feeds([s.text for s in chunk], [s.image for s in chunk])
        feeds.append(batch)
        probs.append(source.probs(batch))
    return Reference(feeds, np.concatenate(probs).astype(np.float32), labels)


def measure(session, ref: Reference) -> dict:
    """Figures for one onnxruntime session against the torch reference."""
    got = np.concatenate([session.run(["probs"], feeds)[0] for feeds in ref.feeds])  # (N, C)
    want = ref.probs
    torch_acc = float((want.argmax(1) == ref.labels).mean())
    onnx_acc = float((got.argmax(1) == ref.labels).mean())
    return {
        "samples": int(len(want)),
        "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max()),
        "argmax_agreement": float((got.argmax(1) == want.argmax(1)).mean()),
        "torch_val_accuracy": torch_acc,
        "onnx_val_accuracy": onnx_acc,
        "val_accuracy_change": onnx_acc - torch_acc,
    }


def check(figures: dict, precision: str, what: str) -> None:
    """Raise ExportError with the figures when ``precision``'s thresholds are not met."""
    if precision == "fp32":
        ok = figures["max_abs_diff"] <= FP32_MAX_ABS_DIFF and figures["argmax_agreement"] >= FP32_MIN_AGREEMENT
        wanted = f"max |diff| <= {FP32_MAX_ABS_DIFF:g} and {FP32_MIN_AGREEMENT:.0%} argmax agreement"
    else:
        ok = figures["argmax_agreement"] >= LOW_PRECISION_MIN_AGREEMENT
        wanted = f">= {LOW_PRECISION_MIN_AGREEMENT:.0%} argmax agreement"
    if not ok:
        raise ExportError(
            f"{what} failed its {precision} parity check on {figures['samples']} validation samples: "
            f"max |diff| {figures['max_abs_diff']:.3g}, argmax agreement {figures['argmax_agreement']:.2%} "
            f"(needs {wanted}); val accuracy torch {figures['torch_val_accuracy']:.4f} vs onnx "
            f"{figures['onnx_val_accuracy']:.4f}. Nothing was written.",
            hint="try another --opset; for int8/fp16, export fp32 instead")


def summary(figures: dict) -> str:
    return (f"max |diff| {figures['max_abs_diff']:.2e}, argmax agreement {figures['argmax_agreement']:.2%}, "
            f"val accuracy {figures['onnx_val_accuracy']:.4f} ({figures['val_accuracy_change']:+.4f} vs torch) "
            f"on {figures['samples']} samples")
