"""Provides the two baseline fusions over pooled features: early concatenation and late averaging."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import Fusion, HeadFactory


class ConcatFusion(Fusion):
    """Early fusion: concatenate pooled text and image features, then one head.

    The standard early-fusion baseline (e.g. Snoek, Worring & Smeulders, "Early versus late
    fusion in semantic video analysis", ACM Multimedia 2005). ``dim > 0`` first projects each
    modality to ``dim`` so neither dominates the head merely by being wider.
    """

    name = "concat"

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
        *,
        dim: int,
    ) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        if dim:
            self.text_proj: nn.Module = nn.Linear(text_dim, dim)
            self.image_proj: nn.Module = nn.Linear(image_dim, dim)
            width = 2 * dim
        else:
            self.text_proj = nn.Identity()
            self.image_proj = nn.Identity()
            width = text_dim + image_dim
        self.head = make_head(width, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        joined = torch.cat([self.text_proj(text.pooled), self.image_proj(image.pooled)], dim=-1)  # (B, Dt' + Di')
        return self.head(joined)  # (B, C)


class LateFusion(Fusion):
    """Late fusion: a separate head per modality, logits averaged.

    Decision-level fusion as in Snoek, Worring & Smeulders, "Early versus late fusion in
    semantic video analysis", ACM Multimedia 2005. Its logits are a sum of a text-only and an
    image-only function, so it cannot model interactions between the two; it is the
    reference point that shows what the other fusions gain.
    """

    name = "late"

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
    ) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        self.text_head = make_head(text_dim, num_classes)
        self.image_head = make_head(image_dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        text_logits = self.text_head(text.pooled)  # (B, C)
        image_logits = self.image_head(image.pooled)  # (B, C)
        return (text_logits + image_logits) / 2
