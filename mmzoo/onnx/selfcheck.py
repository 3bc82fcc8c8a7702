"""Provides the export's check against training: the loaded weights must reproduce the run's stored val predictions.

torch-vs-onnxruntime parity proves the graph matches the loaded weights, not that the
weights are the ones training produced: zeroed weights with a valid header pass it. So
each member's torch probabilities on the parity samples are also compared with the
probs_val.safetensors its training wrote (by sample id).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmzoo.errors import ExportError
from mmzoo.runs.folders import Run

# Without a frozen encoder, training's predict() ran the same float32 maths on the same inputs.
STRICT_MAX_ABS_DIFF = 1e-3
# Frozen encoders were read from the feature cache (float16 tokens, maybe bf16 autocast): allow that rounding.
CACHED_MAX_MEAN_ABS_DIFF = 0.02
CACHED_MIN_AGREEMENT = 0.9


def member_runs(source) -> list[Run]:
    if source.kind != "ensemble":
        return [source.run]
    return [Run(Path(entry["path"])) for entry in source.run.spec["members"]]


def check_stored(source, samples, ref, what: str) -> list[str]:
    """Raise ExportError when a member's weights do not reproduce its stored val probabilities; returns notes."""
    got_all = np.concatenate([source.member_probs(feeds).numpy() for feeds in ref.feeds])  # (N, M, C)
    notes = []
    for k, (run, model) in enumerate(zip(member_runs(source), source.models, strict=True)):
        stored, _, stored_ids = run.probabilities("val")
        row_of = {sample_id: row for row, sample_id in enumerate(stored_ids)}
        rows = [row_of.get(s.id) for s in samples]
        if not stored_ids or None in rows or stored.shape[1] != got_all.shape[2]:
            notes.append(f"{run.name}: stored val predictions do not cover the parity samples; not compared")
            continue
        want, got = stored[rows].astype(np.float64), got_all[:, k].astype(np.float64)  # (N, C) each
        diff = np.abs(got - want)
        agreement = float((got.argmax(1) == want.argmax(1)).mean())
        cached = any(getattr(child, "frozen", False) for child in model.children())
        if cached:
            ok = diff.mean() <= CACHED_MAX_MEAN_ABS_DIFF and agreement >= CACHED_MIN_AGREEMENT
            wanted = f"mean |diff| <= {CACHED_MAX_MEAN_ABS_DIFF:g} and {CACHED_MIN_AGREEMENT:.0%} argmax agreement"
        else:
            ok = diff.max() <= STRICT_MAX_ABS_DIFF
            wanted = f"max |diff| <= {STRICT_MAX_ABS_DIFF:g}"
        figures = (f"max |diff| {diff.max():.3g}, mean |diff| {diff.mean():.3g}, argmax agreement {agreement:.2%} "
                   f"on {len(rows)} samples")
        if not ok:
            raise ExportError(f"{what}: the weights of {run.name} do not reproduce the validation probabilities its "
                              f"training stored in probs_val.safetensors ({figures}; needs {wanted}), so they were "
                              "changed or damaged after training. Nothing was written.",
                              hint=f"retrain {run.name}, or restore its model.safetensors")
        notes.append(f"{run.name} vs its stored val predictions: {figures}")
    return notes
