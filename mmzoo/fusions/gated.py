"""Provides the Gated Multimodal Unit fusion."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import Fusion, HeadFactory


class GatedFusion(Fusion):
    """Gated Multimodal Unit (GMU) over pooled features, then a head.

    Arevalo, Solorio, Montes-y-Gómez & González, "Gated Multimodal Units for Information
    Fusion", ICLR Workshop 2017 (arXiv:1702.01992)::

        h_t = tanh(W_t t),  h_v = tanh(W_v v),  z = sigmoid(W_z [t; v]),
        h = z * h_t + (1 - z) * h_v

    The gate is per dimension and per sample, so the mix depends on both inputs.
    """

    name = "gated"

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
        # The paper's equations have no biases; keeping them out stays faithful to it.
        self.text_proj = nn.Linear(text_dim, dim, bias=False)
        self.image_proj = nn.Linear(image_dim, dim, bias=False)
        self.gate = nn.Linear(text_dim + image_dim, dim, bias=False)
        self.head = make_head(dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        t, v = text.pooled, image.pooled  # (B, Dt), (B, Di)
        h_t = torch.tanh(self.text_proj(t))  # (B, dim)
        h_v = torch.tanh(self.image_proj(v))  # (B, dim)
        z = torch.sigmoid(self.gate(torch.cat([t, v], dim=-1)))  # (B, dim)
        return self.head(z * h_t + (1 - z) * h_v)  # (B, C)
