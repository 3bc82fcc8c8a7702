"""Provides the image inputs of an image-conditioned tagger in training: pixels, or a frozen encoder's features.

A trainable image encoder reads ``pixel_values`` every batch (:class:`mmzoo.tokens.images.SentenceImages`).
A frozen one (``freeze: true``) gives the same features every epoch, so each picture is encoded
once, in eval mode and float32, and its ``Features`` are kept in memory for the run: training,
validation and the final scoring then skip the image encoder. Export always traces the pixel path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmzoo.tokens.images import SentenceImages


class PixelInputs:
    """``pixel_values`` and ``has_image`` as tensors on ``device``: the encoder runs in every step."""

    def __init__(self, model, device):
        self.pixels, self.device = SentenceImages(model.image_encoder.preprocessor.config), device

    def batch(self, images: Sequence) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v).to(self.device) for k, v in self.pixels.batch(images).items()}


class FrozenFeatures:
    """A frozen image encoder's ``image_pooled``, ``image_tokens``, ``image_mask`` per picture, encoded once."""

    def __init__(self, model, device, batch_size: int = 32):
        self.encoder, self.device, self.batch_size = model.image_encoder, device, batch_size
        self.pixels = SentenceImages(self.encoder.preprocessor.config)
        self._cache: dict[str | None, tuple[torch.Tensor, ...]] = {}  # path (None: no picture) -> features

    @torch.no_grad()
    def _fill(self, images: Sequence) -> None:
        todo = sorted({i for i in images if i is not None and i not in self._cache})
        if None not in self._cache:
            todo.insert(0, None)  # the zero picture's features give a missing picture its (unused) shapes
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            pixels = torch.from_numpy(self.pixels.batch(chunk)["pixel_values"]).to(self.device)
            was = self.encoder.training
            self.encoder.eval()
            features = self.encoder({"pixel_values": pixels})
            self.encoder.train(was)
            for k, image in enumerate(chunk):
                self._cache[image] = tuple(t[k].float() if t.is_floating_point() else t[k] for t in features)

    def batch(self, images: Sequence) -> dict[str, torch.Tensor]:
        self._fill(images)
        rows = [self._cache[i] for i in images]
        present = torch.from_numpy(np.array([i is not None for i in images], np.float32)).to(self.device)
        return {"image_pooled": torch.stack([r[0] for r in rows]), "image_tokens": torch.stack([r[1] for r in rows]),
                "image_mask": torch.stack([r[2] for r in rows]), "has_image": present}


def image_inputs(model, device) -> PixelInputs | FrozenFeatures | None:
    """How ``model`` gets its image inputs in training and scoring (None for a text-only tagger)."""
    if not model.reads_images:
        return None
    return FrozenFeatures(model, device) if getattr(model.image_encoder, "frozen", False) else PixelInputs(model, device)
