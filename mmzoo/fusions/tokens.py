"""Provides the token forms of fusions: an image conditions every token of a tagger (FiLM, cross-attention).

A fusion declares its token form at registration (``tokens="module:attr"``); mmzoo builds it as
``cls(text_dim, image_dim, num_labels, make_head, **token_params)``. Its forward reads the text
encoder's token features and the image's features and returns per-token logits (B, T, L).
Sentences without an image reach it with the tagger's learned "no image" embedding in place of
the image features (see mmzoo.tokens.model), so a fusion never sees a missing image.
"""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import HeadFactory
from mmzoo.fusions.cross_attention import _padding
from mmzoo.zoo.partbuild import expect
from mmzoo.zoo.parts import ParamError


class TokenFusion(nn.Module):
    """Base of every token fusion: (text tokens, image features) -> logits per text token (B, T, L)."""

    name: str = ""

    def __init__(self, text_dim: int, image_dim: int, num_labels: int, make_head: HeadFactory) -> None:
        super().__init__()
        self.text_dim, self.image_dim, self.num_labels = text_dim, image_dim, num_labels

    def forward(self, text: Features, image: Features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class TokenFilm(TokenFusion):
    """FiLM (Perez et al. 2018) of every token by the pooled image, then the per-token head::

        gamma, beta = W_c image.pooled;   h_t = relu((1 + gamma) * (W_x text_t) + beta)

    ``1 + gamma`` starts the modulation at the identity, so the tagger reads its text from the first
    step and learns what the picture changes.
    """

    name = "film"

    def __init__(self, text_dim: int, image_dim: int, num_labels: int, make_head: HeadFactory, *, dim: int) -> None:
        super().__init__(text_dim, image_dim, num_labels, make_head)
        self.film = nn.Linear(image_dim, 2 * dim)
        self.proj = nn.Linear(text_dim, dim)
        self.head = make_head(dim, num_labels)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        gamma, beta = self.film(image.pooled).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, dim) each
        h = torch.relu((1 + gamma) * self.proj(text.tokens) + beta)  # (B, T, dim)
        return self.head(h)  # (B, T, L)


class TokenCrossAttention(TokenFusion):
    """Each text token attends to the image's patches (or grid cells), residual + LayerNorm per layer::

        t = W_t text;   t = LayerNorm(t + Attention(q=t, k=v=W_v image.tokens))   (``layers`` times)

    then the per-token head over ``[t, W_t text]``: the attended vector and the token itself. Only
    tokens query the image; patches are not updated, since only tokens are tagged.
    """

    name = "cross_attention"

    def __init__(self, text_dim: int, image_dim: int, num_labels: int, make_head: HeadFactory, *, dim: int,
                 heads: int, layers: int, dropout: float) -> None:
        super().__init__(text_dim, image_dim, num_labels, make_head)
        if dim % heads:
            raise ParamError(f"dim={dim} is not divisible by heads={heads}; pick heads that divide dim "
                             "(e.g. dim 128, heads 4)")
        self.text_proj = nn.Linear(text_dim, dim)
        self.image_proj = nn.Linear(image_dim, dim)
        self.attend = nn.ModuleList(nn.MultiheadAttention(dim, heads, dropout=float(dropout), batch_first=True)
                                    for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.head = make_head(2 * dim, num_labels)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        own = self.text_proj(text.tokens)  # (B, T, dim)
        v = self.image_proj(image.tokens)  # (B, P, dim)
        v_pad = _padding(image.mask)  # (B, P)
        t = own
        for attend, norm in zip(self.attend, self.norms, strict=True):
            # distinct key and value objects: see mmzoo.fusions.cross_attention (legacy ONNX tracer)
            seen, _ = attend(t, v, v.view_as(v), key_padding_mask=v_pad, need_weights=False)  # (B, T, dim)
            t = norm(t + seen)
        return self.head(torch.cat([t, own], dim=-1))  # (B, T, L)


expect("fusion:tokens", TokenFusion)  # what a fusion's token form must build (checked by Part.create)
