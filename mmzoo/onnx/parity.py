"""Provides the parity check every export must pass: onnxruntime against torch on real validation samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmzoo.errors import ExportError

# float32 graphs must reproduce torch to rounding error: a larger gap means a wrong graph.
FP32_MAX_ABS_DIFF = 1e-4
FP32_MIN_AGREEMENT = 1.0
# int8, fp16 and the raw-image input trade exactness for speed, size or portability; they must still
# pick torch's class on at least 99% of inputs. On n samples that is judged by a one-sided binomial test:
# the export fails when a graph that truly agreed on 99% would show that many disagreements (or more)
# in fewer than 5% of checks, so one unlucky disagreement on a small validation split does not fail it.
LOW_PRECISION_MIN_AGREEMENT = 0.99
SIGNIFICANCE = 0.05
# Parity samples when --samples is not given: all of the validation split, up to this many.
MAX_DEFAULT_SAMPLES = 512
BATCH = 32


@dataclass
class Reference:
    """Torch's answers on the parity samples, computed once and reused for every precision."""

    feeds: list[dict[str, np.ndarray]]  # per batch
    probs: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,)
    samples: list | None = None  # the Samples themselves, for inputs other than the preprocessed feeds


def reference(source, samples, labels: np.ndarray) -> Reference:
    feeds, probs = [], []
    for start in range(0, len(samples), BATCH):
        chunk = samples[start:start + BATCH]
        batch = source.feeds([s.text for s in chunk], [s.image for s in chunk])
        feeds.append(batch)
        probs.append(source.probs(batch))
    return Reference(feeds, np.concatenate(probs).astype(np.float32), labels, list(samples))


def allowed_disagreements(n: int, min_agreement: float | None = None, significance: float = SIGNIFICANCE) -> int:
    """The most argmax disagreements among ``n`` samples that still pass (-1: none can pass).

    The largest k with P(X >= k) >= ``significance`` for X ~ Binomial(n, 1 - min_agreement).
    """
    rate = 1.0 - (LOW_PRECISION_MIN_AGREEMENT if min_agreement is None else min_agreement)
    if rate < 0:
        return -1
    if rate == 0:
        return 0
    tail, k = 1.0, 0  # tail = P(X >= k)
    while k < n:
        tail -= math.comb(n, k) * rate ** k * (1 - rate) ** (n - k)
        if tail < significance:
            return k
        k += 1
    return n


def measure(session, ref: Reference, feeds: list[dict[str, np.ndarray]] | None = None) -> dict:
    """Figures for one onnxruntime session against the torch reference (on ``feeds`` when given)."""
    got = np.concatenate([session.run(["probs"], f)[0] for f in (feeds or ref.feeds)])  # (N, C)
    want = ref.probs
    torch_acc = float((want.argmax(1) == ref.labels).mean())
    onnx_acc = float((got.argmax(1) == ref.labels).mean())
    return {
        "samples": int(len(want)),
        "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max()),
        "argmax_agreement": float((got.argmax(1) == want.argmax(1)).mean()),
        "disagreements": int((got.argmax(1) != want.argmax(1)).sum()),
        "torch_val_accuracy": torch_acc,
        "onnx_val_accuracy": onnx_acc,
        "val_accuracy_change": onnx_acc - torch_acc,
    }


def check(figures: dict, precision: str, what: str, hint: str | None = None) -> None:
    """Raise ExportError with the figures when ``precision``'s thresholds are not met.

    ``precision`` is fp32 (exact), or int8, fp16 or raw-image (the binomial rule above).
    """
    n = figures["samples"]
    if precision == "fp32":
        ok = figures["max_abs_diff"] <= FP32_MAX_ABS_DIFF and figures["argmax_agreement"] >= FP32_MIN_AGREEMENT
        wanted = f"max |diff| <= {FP32_MAX_ABS_DIFF:g} and {FP32_MIN_AGREEMENT:.0%} argmax agreement"
        hint = hint or "try another --opset"
    else:
        allowed = allowed_disagreements(n)
        figures["allowed_disagreements"] = allowed
        ok = figures["disagreements"] <= allowed
        wanted = (f"at most {max(allowed, 0)} disagreement{'s' * (allowed != 1)} on {n} samples: a graph agreeing "
                  f"on {LOW_PRECISION_MIN_AGREEMENT:.0%} of inputs shows more in under {SIGNIFICANCE:.0%} of checks")
        hint = hint or (f"--samples N checks more validation samples (the default is all of val up to "
                        f"{MAX_DEFAULT_SAMPLES}); or export fp32")
    if not ok:
        raise ExportError(
            f"{what} failed its {precision} parity check on {n} validation samples: "
            f"max |diff| {figures['max_abs_diff']:.3g}, argmax agreement {figures['argmax_agreement']:.2%} "
            f"(needs {wanted}); val accuracy torch {figures['torch_val_accuracy']:.4f} vs onnx "
            f"{figures['onnx_val_accuracy']:.4f}. Nothing was written.",
            hint=hint)


def summary(figures: dict) -> str:
    if "onnx_f1" in figures:  # a token export (mmzoo.tokens.export.parity)
        return (f"val entity F1 {figures['onnx_f1']:.4f} (torch {figures['torch_f1']:.4f}), max |diff| "
                f"{figures['max_abs_diff']:.2e}, argmax agreement {figures['argmax_agreement']:.2%} on "
                f"{figures['sentences']} sentences")
    text = (f"max |diff| {figures['max_abs_diff']:.2e}, argmax agreement {figures['argmax_agreement']:.2%}, "
            f"val accuracy {figures['onnx_val_accuracy']:.4f} ({figures['val_accuracy_change']:+.4f} vs torch) "
            f"on {figures['samples']} samples")
    if "allowed_disagreements" in figures:
        text += f" ({figures['disagreements']} disagreement(s), at most {figures['allowed_disagreements']} allowed)"
    return text
