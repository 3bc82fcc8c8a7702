"""Provides Low-rank Multimodal Fusion, a factorised bilinear (outer-product) fusion."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import Fusion, HeadFactory


class BilinearFusion(Fusion):
    """Low-rank Multimodal Fusion (LMF) over pooled features, then a head.

    Liu, Shen, Lakshminarasimhan, Liang, Zadeh & Morency, "Efficient Low-rank Multimodal
    Fusion with Modality-Specific Factors", ACL 2018. Each modality gets a 1 appended, so
    the implied tensor [t; 1] ⊗ [v; 1] keeps the unimodal terms next to the bilinear ones;
    the weight on that tensor is a sum of ``rank`` outer products of per-modality factors::

        h = sum_r w_r * ((W_t^r [t; 1]) * (W_v^r [v; 1])) + b
    """

    name = "bilinear"

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
        *,
        rank: int,
        dim: int,
    ) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        self.text_factor = nn.Parameter(torch.empty(rank, text_dim + 1, dim))
        self.image_factor = nn.Parameter(torch.empty(rank, image_dim + 1, dim))
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(1, dim))
        # Xavier-normal factors, as in the authors' release, keep the product's scale near 1.
        for weight in (self.text_factor, self.image_factor, self.rank_weights):
            nn.init.xavier_normal_(weight)
        self.head = make_head(dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        t, v = text.pooled, image.pooled  # (B, Dt), (B, Di)
        # ones_like on a slice keeps the batch axis dynamic in ONNX exports.
        t1 = torch.cat([t, torch.ones_like(t[:, :1])], dim=-1)  # (B, Dt + 1)
        v1 = torch.cat([v, torch.ones_like(v[:, :1])], dim=-1)  # (B, Di + 1)
        text_r = torch.matmul(t1.unsqueeze(0), self.text_factor)  # (R, B, dim)
        image_r = torch.matmul(v1.unsqueeze(0), self.image_factor)  # (R, B, dim)
        joint = (text_r * image_r).permute(1, 0, 2)  # (B, R, dim)
        fused = torch.matmul(self.rank_weights, joint).squeeze(1) + self.bias  # (B, dim)
        return self.head(fused)  # (B, C)
