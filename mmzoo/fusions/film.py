"""Provides FiLM fusion: one modality scales and shifts the other's features."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import Fusion, HeadFactory


class FilmFusion(Fusion):
    """Feature-wise Linear Modulation over pooled features, then a head.

    Perez, Strub, de Vries, Dumoulin & Courville, "FiLM: Visual Reasoning with a General
    Conditioning Layer", AAAI 2018. The ``condition`` modality c produces gamma and beta;
    the other modality x is projected to ``dim`` and modulated, followed by a ReLU as in the
    paper's FiLM-ed residual blocks::

        gamma, beta = W_c c;   h = relu(gamma * (W_x x) + beta)
    """

    name = "film"

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
        *,
        condition: str,
        dim: int,
    ) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        self.condition = condition
        cond_dim, target_dim = (text_dim, image_dim) if condition == "text" else (image_dim, text_dim)
        self.film = nn.Linear(cond_dim, 2 * dim)
        self.proj = nn.Linear(target_dim, dim)
        self.head = make_head(dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        if self.condition == "text":
            cond, target = text.pooled, image.pooled
        else:
            cond, target = image.pooled, text.pooled
        gamma, beta = self.film(cond).chunk(2, dim=-1)  # (B, dim) each
        modulated = torch.relu(gamma * self.proj(target) + beta)  # (B, dim)
        return self.head(modulated)  # (B, C)
