"""Provides SAMME multi-class AdaBoost maths (Zhu et al. 2009) and the ``samme`` combiner."""

from __future__ import annotations

import math

import numpy as np
import torch

from mmzoo.combiners.base import ArrayLike, Combiner, hard_votes
from mmzoo.errors import TrainingError

# A perfect member's error is clipped up to this, so its alpha is large (about 23 + log(K-1))
# but finite and later members can still be summed with it.
MIN_ERROR = 1e-10


def samme_error(sample_weights: ArrayLike, correct: ArrayLike) -> float:
    """Weighted error err = sum(w * ~correct) / sum(w) of one member."""
    w, ok = _check(sample_weights, correct)
    return float(np.sum(w * ~ok) / np.sum(w))


def samme_update(sample_weights: ArrayLike, correct: ArrayLike, num_classes: int) -> tuple[float, np.ndarray]:
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
    Use ``samme_should_stop(err, K)`` to test for either case.
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


def samme_should_stop(err: float, num_classes: int) -> bool:
    """True when a member's weighted error ends boosting: perfect, or no better than chance."""
    return err <= 0.0 or err >= 1.0 - 1.0 / num_classes


def _check(sample_weights: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
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


class SammeCombiner(Combiner):
    """The SAMME decision: argmax_c sum_m alpha_m * [argmax p_m == c].

    As a distribution: the alpha-weighted hard votes divided by sum(alpha) (no softmax), so
    each class's share is the fraction of total vote weight behind it. The alphas come from
    the boosting recipe via ``set_alphas`` (e.g. from ``samme_update``), not from validation
    fitting: ``fit`` only checks its inputs and that alphas were set. Vote ties go to the
    lowest class id.
    """

    name = "samme"

    def __init__(self, num_members: int, num_classes: int) -> None:
        super().__init__(num_members, num_classes)
        self.register_buffer("alphas", torch.zeros(num_members))  # (M,)

    def set_alphas(self, alphas: ArrayLike) -> SammeCombiner:
        a = torch.as_tensor(np.asarray(alphas, dtype=np.float64))
        if a.shape != (self.num_members,) or not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or a.sum() <= 0:
            raise TrainingError(
                f"combiner 'samme': alphas must be {self.num_members} finite, non-negative numbers, "
                f"not all zero; got {a.tolist()}",
                "use the alphas returned by samme_update, one per member, in member order",
            )
        self.alphas.copy_(a)
        self.fitted.fill_(True)
        return self

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        if not bool(self.alphas.sum() > 0):
            raise TrainingError(
                "combiner 'samme' has no member weights yet",
                "call set_alphas(...) with the boosting recipe's alphas before fit",
            )

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        alphas = self.alphas.to(probs.dtype)  # (M,)
        votes = torch.einsum("bmc,m->bc", hard_votes(probs), alphas)  # (B, C)
        return votes / alphas.sum()
