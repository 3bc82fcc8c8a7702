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
    trained_blocks: int = 0  # trailing blocks that train while the rest is frozen (``train_last``)

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

    # Partial fine-tuning (a registry entry's ``train_last: N``): an encoder that can run as a frozen prefix
    # and a trainable suffix of its last N blocks overrides the four methods below; the base cannot.
    # ``forward_suffix(forward_prefix(x, n), n)`` must equal ``forward(x)``, so training can cache the prefix.

    def trainable_blocks(self) -> int:
        """How many trailing blocks ``train_last`` may unfreeze (0: this encoder cannot be split)."""
        return 0

    def suffix_modules(self, n: int) -> list[torch.nn.Module]:  # pragma: no cover - abstract
        """The modules of the last ``n`` blocks (and whatever follows them), whose weights then train."""
        raise NotImplementedError

    def forward_prefix(self, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:  # pragma: no cover
        """The state entering the last ``n`` blocks, as tensors with the batch first (cacheable per sample)."""
        raise NotImplementedError

    def forward_suffix(self, state: dict[str, torch.Tensor], n: int) -> Features:  # pragma: no cover - abstract
        """Features from the state ``forward_prefix`` returned."""
        raise NotImplementedError

    def unfreeze_last(self, n: int) -> None:
        """After :meth:`freeze`: train the last ``n`` blocks, with the rest frozen.

        Their parameters get gradients; the encoder stays in eval mode (dropout off, BatchNorm
        statistics as pretrained), so a step depends only on the weights and the batch.
        """
        from mmzoo.zoo.parts import ParamError

        available = self.trainable_blocks()
        if not available:
            raise ParamError(f"train_last: {type(self).__name__} cannot train only its last layers; "
                             "use train_last: 0, or freeze: false to train all of it")
        if not 0 < n <= available:
            raise ParamError(f"train_last: {n} is more than the {available} blocks {type(self).__name__} has "
                             f"(use 1 to {available})")
        for module in self.suffix_modules(n):
            for p in module.parameters():
                p.requires_grad_(True)
        self.trained_blocks = n

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError


expect("encoder", Encoder)  # what every registered encoder must build (checked by Part.create)
