"""Provides feature standardisation stored inside a model, so exported graphs apply it too."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features

# A feature dimension with (almost) no spread on train is left unscaled rather than blown up.
MIN_STD = 1e-6
# A dimension that barely moves on train (a ReLU channel that fired on one image) is divided by at least this
# fraction of the typical dimension's spread (RMS of the stds). Scaled to unit variance it would carry noise
# into the model and turn a value never seen in training into a z of thousands: frozen EfficientNet-Lite0 on
# 100 small flat-colour images gave std 5e-6 on train and z 29,000 on one test image, which flipped a
# 98 %-confident prediction. With the floor, test z stays near the largest seen on train.
REL_FLOOR = 0.1


class Standardizer(nn.Module):
    """(x - mean) / std per feature dimension, applied to pooled features and tokens alike.

    Starts as the identity; :meth:`fit` sets mean and std from training features. Both are
    buffers, so they travel with the model's weights and into its ONNX graph.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, pooled: torch.Tensor) -> Standardizer:
        """Set mean and std from training features (N, D)."""
        x = pooled.float()
        self.mean.copy_(x.mean(dim=0))
        std = x.std(dim=0, unbiased=False)
        floor = REL_FLOOR * std.square().mean().sqrt()
        self.std.copy_(torch.where(std > MIN_STD, std.clamp_min(floor), torch.ones_like(std)))
        return self

    def forward(self, feats: Features) -> Features:
        pooled = (feats.pooled - self.mean.to(feats.pooled.dtype)) / self.std.to(feats.pooled.dtype)  # (B, D)
        tokens = (feats.tokens - self.mean.to(feats.tokens.dtype)) / self.std.to(feats.tokens.dtype)  # (B, N, D)
        return Features(pooled, tokens, feats.mask)
