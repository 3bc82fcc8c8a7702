"""Provides SAMME multi-class AdaBoost maths (Zhu et al. 2009); the ``samme`` combiner is in mmzoo.combiners.samme."""

from __future__ import annotations

import math

import numpy as np

from mmzoo.errors import TrainingError

# A perfect member's error is clipped up to this, so its alpha is large (about 23 + log(K-1))
# but finite and later members can still be summed with it.
MIN_ERROR = 1e-10


def samme_error(sample_weights, correct) -> float:
    """Weighted error err = sum(w * ~correct) / sum(w) of one member."""
    w, ok = _check(sample_weights, correct)
    return float(np.sum(w * ~ok) / np.sum(w))


def samme_update(sample_weights, correct, num_classes: int) -> tuple[float, np.ndarray]:
    """One SAMME step: the member's vote weight alpha and the next round's sample weights.

    err = sum(w * ~correct) / sum(w); alpha = log((1 - err) / err) + log(K - 1);
    w <- w * exp(alpha * ~correct), renormalised to sum to 1.

    Edge cases, handled explicitly:
    - err == 0 (the member is perfect on the weighted sample): err is clipped to
      MIN_ERROR, giving a large finite alpha; no sample is misclassified, so the weights
      come back unchanged (renormalised). Boosting should stop: the next member would see
      the same weights.
    - err >= 1 - 1/K (no better than guessing among K classes): alpha would be <= 0, so it
      is clipped to 0 and the weights come back unchanged (renormalised); the member adds
      nothing to the vote and boosting should stop, as in Zhu et al.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise TrainingError(f"SAMME: num_classes must be a whole number >= 2, got {num_classes!r}")
    w, ok = _check(sample_weights, correct)
    err = float(np.sum(w * ~ok) / np.sum(w))
    if err >= 1.0 - 1.0 / num_classes:
        return 0.0, w / w.sum()
    clipped = max(err, MIN_ERROR)
    alpha = math.log((1.0 - clipped) / clipped) + math.log(num_classes - 1)
    new = w * np.exp(alpha * ~ok)
    return alpha, new / new.sum()


def _check(sample_weights, correct) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(sample_weights, dtype=np.float64)
    ok = np.asarray(correct)
    if w.ndim != 1 or ok.shape != w.shape or ok.dtype != np.bool_:
        raise TrainingError(
            f"SAMME: sample weights (N,) and a boolean `correct` (N,) must align, got {w.shape} and "
            f"{ok.dtype} {ok.shape}",
            "pass correct = member_predictions == labels",
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise TrainingError("SAMME: sample weights must be finite, non-negative and not all zero")
    return w, ok


def samme_vote(probs: np.ndarray, alphas) -> np.ndarray:
    """SAMME's decision as a distribution: alpha-weighted hard votes (N, M, C) -> (N, C), ties to the lowest id."""
    a = np.asarray(alphas, dtype=np.float64)  # (M,)
    votes = np.zeros_like(probs, dtype=np.float64)
    np.put_along_axis(votes, probs.argmax(axis=-1)[..., None], 1.0, axis=-1)  # (N, M, C) one-hot
    return np.einsum("nmc,m->nc", votes, a) / a.sum()
