"""Provides the one shape every encoder returns and every fusion reads."""

from __future__ import annotations

from typing import NamedTuple

import torch

from mmzoo.zoo.partbuild import expect


class Features(NamedTuple):
    """An encoder's output for a batch.

    pooled: (B, D) one vector per sample.
    tokens: (B, N, D) text tokens, image patches or grid cells.
    mask:   (B, N) bool, True where a token is real (padding is False).
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor


class Encoder(torch.nn.Module):
    """Base of every encoder: ``output_dim``, ``modality``, a torch-free ``preprocessor``.

    ``forward(inputs)`` takes the dict the preprocessor makes (as tensors):
    text: ``input_ids`` (B, T) int64 and ``attention_mask`` (B, T) int64;
    image: ``pixel_values`` (B, 3, H, W) float32.
    """

    modality: str = ""
    output_dim: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.preprocessor = None  # a mmzoo.data.preprocess.TextPreprocessor / ImagePreprocessor

    def freeze(self) -> None:
        """Stop training this encoder: no gradients, eval-mode dropout and BatchNorm."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.frozen = True
        self.eval()

    def train(self, mode: bool = True):  # noqa: D102 - keeps frozen encoders in eval mode
        return super().train(mode and not getattr(self, "frozen", False))

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError


expect("encoder", Encoder)  # what every registered encoder must build (checked by Part.create)
