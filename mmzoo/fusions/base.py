"""Provides the Fusion contract every fusion strategy implements, plus the default MLP head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.zoo.partbuild import expect

HeadFactory = Callable[[int, int], nn.Module]


def mlp_head(hidden: int, dropout: float) -> HeadFactory:
    """Return ``make_head(in_dim, out_dim)`` building an MLP; ``hidden=0`` builds a single Linear.

    The registry checks ``hidden`` and ``dropout`` against the model's ``head:`` params (mmzoo.zoo.schema).
    """

    def make_head(in_dim: int, out_dim: int) -> nn.Sequential:
        if hidden == 0:
            return nn.Sequential(nn.Linear(in_dim, out_dim))
        return nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    return make_head


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the real tokens of each sample; a sample with none averages to zeros."""
    keep = mask.unsqueeze(-1)  # (B, N, 1)
    total = tokens.masked_fill(~keep, 0.0).sum(dim=1)  # (B, D)
    # clamp keeps an all-padding sample finite instead of dividing by zero.
    count = keep.sum(dim=1).clamp(min=1).to(tokens.dtype)  # (B, 1)
    return total / count


class Fusion(nn.Module):
    """Base of every fusion: reads text and image Features, returns logits (B, num_classes).

    mmzoo builds a fusion as ``cls(text_dim, image_dim, num_classes, make_head, **params)``
    through ``Part.create``, which has already checked every param against its declared
    Param; subclasses take their params as keyword-only arguments and do not re-check them.
    """

    name: str = ""
    # True when forward reads tokens/mask, so the frozen-feature cache must keep them.
    uses_tokens: bool = False

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
    ) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.image_dim = image_dim
        self.num_classes = num_classes

    def forward(self, text: Features, image: Features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


expect("fusion", Fusion)  # what every registered fusion must build (checked by Part.create)
