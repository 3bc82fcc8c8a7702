"""Provides the tensor helpers encoders share to turn their outputs into Features (ONNX-safe)."""

from __future__ import annotations

import torch

from mmzoo.encoders.base import Features


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens only: (B, N, D), (B, N) -> (B, D)."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)  # (B, N, 1)
    # clamp keeps an all-padding row at zero instead of NaN
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def grid_tokens(feature_map: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """A feature map's cells as tokens: (B, C, H, W) or (B, H, W, C) -> (B, H*W, C)."""
    if channels_last:
        return feature_map.flatten(1, 2)
    return feature_map.flatten(2).transpose(1, 2)


def all_real(tokens: torch.Tensor) -> torch.Tensor:
    """A (B, N) all-True mask shaped like ``tokens`` (B, N, D), traced from it so ONNX keeps B and N dynamic."""
    return torch.ones_like(tokens[..., 0], dtype=torch.bool)


def image_features(tokens: torch.Tensor, pooled: torch.Tensor | None = None) -> Features:
    """Features of an image encoder whose tokens are all real; ``pooled`` defaults to their mean."""
    mask = all_real(tokens)  # (B, N)
    return Features(tokens.mean(1) if pooled is None else pooled, tokens, mask)


@torch.no_grad()
def dry_run(fn, example: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """Run ``fn(example)`` once in eval mode (to learn output widths) and restore ``module``'s mode."""
    was_training = module.training
    module.eval()
    try:
        return fn(example)
    finally:
        module.train(was_training)
