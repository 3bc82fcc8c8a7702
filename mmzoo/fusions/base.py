"""Provides the Fusion contract every fusion strategy implements, plus the default MLP head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmzoo.errors import RegistryError
from mmzoo.encoders.base import Features

HeadFactory = Callable[[int, int], nn.Module]


def mlp_head(hidden: int = 256, dropout: float = 0.1) -> HeadFactory:
    """Return ``make_head(in_dim, out_dim)`` building an MLP; ``hidden=0`` builds a single Linear."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise RegistryError(
            f"head: hidden must be a whole number >= 0, got {hidden!r}",
            "set `hidden:` under the model's `head:` section (0 means a single linear layer)",
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise RegistryError(
            f"head: dropout must be a number in [0, 1), got {dropout!r}",
            "set `dropout:` under the model's `head:` section, e.g. 0.1",
        )

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


def check_positive(fusion: str, **values: int) -> None:
    """Raise a RegistryError naming the first value that is not a positive whole number."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RegistryError(
                f"fusion {fusion!r}: {name} must be a whole number >= 1, got {value!r}",
                f"fix `{name}:` in the model's fusion params in registry.yaml",
            )


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the real tokens of each sample; a sample with none averages to zeros."""
    keep = mask.unsqueeze(-1)  # (B, N, 1)
    total = tokens.masked_fill(~keep, 0.0).sum(dim=1)  # (B, D)
    # clamp keeps an all-padding sample finite instead of dividing by zero.
    count = keep.sum(dim=1).clamp(min=1).to(tokens.dtype)  # (B, 1)
    return total / count


class Fusion(nn.Module):
    """Base of every fusion: reads text and image Features, returns logits (B, num_classes).

    Subclasses take their own keyword params after ``make_head`` and pass any they do not
    know to this constructor, which rejects them with a message for the user.
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
        **params: object,
    ) -> None:
        super().__init__()
        label = self.name or type(self).__name__
        if params:
            unknown = ", ".join(sorted(params))
            raise RegistryError(
                f"fusion {label!r} got unknown params: {unknown}",
                "remove them from the model's fusion params in registry.yaml (`mmzoo list` shows each fusion's params)",
            )
        check_positive(label, text_dim=text_dim, image_dim=image_dim, num_classes=num_classes)
        self.text_dim = text_dim
        self.image_dim = image_dim
        self.num_classes = num_classes

    def forward(self, text: Features, image: Features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
