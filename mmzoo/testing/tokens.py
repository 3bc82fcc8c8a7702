"""Provides check_token_fusion: the contract of a fusion's token form (an image conditioning every token)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import mlp_head
from mmzoo.fusions.tokens import TokenFusion
from mmzoo.testing.common import (
    check_fusion_batches_and_export,
    close,
    fail,
    gradients,
    random_features,
    registered,
)


def check_token_fusion(fusion: str | TokenFusion, /, *, text_dim: int = 12, image_dim: int = 20, num_labels: int = 5,
                       export_onnx: bool = True, **params: Any) -> TokenFusion:
    """Check a fusion's token form (a registered fusion's name, built with ``params``, or an instance); returns it.

    Per-token logits (B, T, L), finite; a sentence alone and inside a batch agree; real tokens ignore the
    values of padded text tokens and of masked image tokens; gradients reach the text tokens, the image
    and every parameter; training batches do not mix samples; the ONNX export runs at other sizes.
    """
    if isinstance(fusion, str):
        part = registered("fusion", fusion)
        what = f"fusion {fusion!r} (token form)"
        if not part.supports_tokens:
            fail(what, "registers no token form (tokens=...), so token models cannot use it")
        fusion = part.token_form().create(text_dim, image_dim, num_labels, mlp_head(16, 0.0), **params)
    else:
        what = f"token fusion {type(fusion).__name__!r}"
    if not isinstance(fusion, TokenFusion):
        fail(what, f"must be a mmzoo.fusions.tokens.TokenFusion subclass, got {type(fusion).__name__}")
    text = random_features(4, 6, fusion.text_dim, 4, seed=1)  # the last 2 text tokens are padding
    image = random_features(4, 5, fusion.image_dim, 3, seed=2)  # the last 2 image tokens are masked
    torch.manual_seed(0)
    fusion.eval()
    with torch.no_grad():
        logits = fusion(text, image)
        if logits.shape != (4, 6, fusion.num_labels) or not bool(torch.isfinite(logits).all()):
            fail(what, f"forward must return finite logits (B, T, {fusion.num_labels}), got {tuple(logits.shape)}")
        alone = fusion(Features(*(t[:1] for t in text)), Features(*(t[:1] for t in image)))
        close(what, "logits of one sentence alone and inside a batch", alone[0], logits[0])
        junk_text = Features(text.pooled, text.tokens.masked_fill(~text.mask.unsqueeze(-1), 1e4), text.mask)
        close(what, "real tokens' logits with other values in padded text tokens", fusion(junk_text, image)[:, :4],
              logits[:, :4])
        junk_image = Features(image.pooled, image.tokens.masked_fill(~image.mask.unsqueeze(-1), 1e4), image.mask)
        close(what, "logits with other values in masked image tokens", fusion(text, junk_image), logits)
    fusion.train()
    inputs = [t.clone().requires_grad_(t.is_floating_point()) for t in (*text, *image)]
    out = fusion(Features(*inputs[:3]), Features(*inputs[3:]))  # (B, T, L)
    target = torch.arange(4 * 6).view(4, 6) % fusion.num_labels
    nn.functional.cross_entropy(out[:, :4].flatten(0, 1), target[:, :4].flatten()).backward()
    gradients(what, fusion)
    if inputs[1].grad is None or float(inputs[1].grad.abs().sum()) == 0.0:
        fail(what, "the logits do not depend on the text tokens")
    if sum(float(t.grad.abs().sum()) for t in inputs[3:5] if t.grad is not None) == 0.0:
        fail(what, "the logits do not depend on the image features (pooled or tokens): the image conditions nothing")
    check_fusion_batches_and_export(what, fusion, text, image, export_onnx, {0: "batch", 1: "text_tokens"})
    return fusion
