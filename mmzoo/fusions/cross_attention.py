"""Provides cross-attention fusion: text and image tokens attend to each other."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import Fusion, HeadFactory, masked_mean
from mmzoo.zoo.parts import ParamError


def _padding(mask: torch.Tensor) -> torch.Tensor:
    """key_padding_mask (True = ignore) for ``mask`` (True = real token)."""
    # A sample with no real token would softmax over nothing and yield NaN; letting it
    # attend to its (meaningless) tokens keeps it finite, and pooling later zeroes it anyway.
    return ~mask & mask.any(dim=1, keepdim=True)  # (B, N)


class CrossAttentionBlock(nn.Module):
    """One co-attention layer: each modality's tokens query the other's, residual + LayerNorm."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.text_to_image = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.image_to_text = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.text_norm = nn.LayerNorm(dim)
        self.image_norm = nn.LayerNorm(dim)

    def forward(
        self, t: torch.Tensor, t_pad: torch.Tensor, v: torch.Tensor, v_pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Both directions read the previous layer's tokens, so neither modality goes first.
        # Keys and values are passed as distinct tensor objects: MultiheadAttention's shared
        # key/value path (`key is value`) unflattens with sizes the legacy ONNX tracer freezes,
        # which breaks exports at any other token count.
        t_new, _ = self.text_to_image(t, v, v.view_as(v), key_padding_mask=v_pad, need_weights=False)  # (B, Nt, dim)
        v_new, _ = self.image_to_text(v, t, t.view_as(t), key_padding_mask=t_pad, need_weights=False)  # (B, Ni, dim)
        return self.text_norm(t + t_new), self.image_norm(v + v_new)


class CrossAttentionFusion(Fusion):
    """Bidirectional cross-attention over token features, masked mean-pool, concat, head.

    The co-attentional transformer layer of Lu, Batra, Parikh & Lee, "ViLBERT: Pretraining
    Task-Agnostic Visiolinguistic Representations for Vision-and-Language Tasks", NeurIPS
    2019 (also the cross-modality encoder of Tan & Bansal, "LXMERT", EMNLP 2019): text tokens
    attend to image tokens and image tokens to text tokens, each with a residual and
    LayerNorm. Both modalities are first projected to ``dim``.
    """

    name = "cross_attention"
    uses_tokens = True

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        num_classes: int,
        make_head: HeadFactory,
        *,
        dim: int,
        heads: int,
        layers: int,
        dropout: float,
    ) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        if dim % heads:
            raise ParamError(f"dim={dim} is not divisible by heads={heads}; pick heads that divide dim "
                             "(e.g. dim 128, heads 4)")
        self.text_proj = nn.Linear(text_dim, dim)
        self.image_proj = nn.Linear(image_dim, dim)
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads, float(dropout)) for _ in range(layers))
        self.head = make_head(2 * dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        t = self.text_proj(text.tokens)  # (B, Nt, dim)
        v = self.image_proj(image.tokens)  # (B, Ni, dim)
        t_pad, v_pad = _padding(text.mask), _padding(image.mask)  # (B, Nt), (B, Ni)
        for block in self.blocks:
            t, v = block(t, t_pad, v, v_pad)
        pooled = torch.cat([masked_mean(t, text.mask), masked_mean(v, image.mask)], dim=-1)  # (B, 2 * dim)
        return self.head(pooled)  # (B, C)
