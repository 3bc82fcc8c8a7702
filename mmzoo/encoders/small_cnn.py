"""Provides the `small_cnn` encoder: a from-scratch convolutional network for small images."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.data.preprocess import ImagePreprocessor
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.pooling import grid_tokens, image_features
from mmzoo.zoo.parts import ParamError


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convs then a stride-2 downsample: halves the grid."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, stride=2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class SmallCNNEncoder(Encoder):
    """Conv blocks that each halve the grid, a 1x1 projection to ``dim``; tokens are the final grid cells."""

    modality = "image"

    def __init__(self, *, dim: int, image_size: int, channels: list):
        super().__init__()
        channels = list(channels)
        if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise ParamError(f"channels must be a non-empty list of positive ints, got {channels!r}")
        if image_size < 2 ** len(channels):
            raise ParamError(f"image_size {image_size} is too small for {len(channels)} blocks; each block halves "
                             f"the image: use image_size >= {2 ** len(channels)} or fewer channels")
        widths = [3, *channels]
        self.blocks = nn.Sequential(*[_block(a, b) for a, b in zip(widths, widths[1:], strict=False)])
        self.project = nn.Conv2d(channels[-1], dim, 1)
        self.output_dim = dim
        # ImageNet statistics: a neutral, well-known choice for natural images from scratch
        self.preprocessor = ImagePreprocessor(resize=image_size, crop=image_size)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        fmap = self.project(self.blocks(inputs["pixel_values"]))  # (B, dim, h, w)
        return image_features(grid_tokens(fmap))  # tokens (B, h*w, dim), pooled (B, dim)

    def trainable_blocks(self) -> int:
        return len(self.blocks)

    def suffix_modules(self, n: int) -> list[nn.Module]:
        return [*self.blocks[len(self.blocks) - n:], self.project]

    def forward_prefix(self, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        return {"fmap": self.blocks[:len(self.blocks) - n](inputs["pixel_values"])}  # (B, c, h', w')

    def forward_suffix(self, state: dict[str, torch.Tensor], n: int) -> Features:
        fmap = self.project(self.blocks[len(self.blocks) - n:](state["fmap"]))  # (B, dim, h, w)
        return image_features(grid_tokens(fmap))
