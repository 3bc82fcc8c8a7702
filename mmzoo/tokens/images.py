"""Provides the image inputs of image-conditioned taggers (numpy and Pillow only, no torch).

Every row (window) of a sentence gets its sentence's picture, preprocessed by the image
encoder's ``mmzoo.data.preprocess`` steps, and ``has_image`` 1. A sentence without an image
gets zero pixels and ``has_image`` 0: the tagger then reads its learned "no image" embedding
(mmzoo.tokens.model), so the zeros never reach a fusion. Training, parity and the torch-free
runtime all build these two arrays here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmzoo.data.preprocess import ImagePreprocessor, from_config

INPUTS = ("pixel_values", "has_image")


class SentenceImages:
    """Images (paths or PIL images, None for none) -> ``pixel_values`` (B, 3, S, S) and ``has_image`` (B,)."""

    def __init__(self, config: dict):
        prep = from_config(config)
        if not isinstance(prep, ImagePreprocessor):
            raise ValueError(f"an image-conditioned tagger needs resize-and-crop image preprocessing, not "
                             f"{config.get('kind')!r}")
        self.prep, self.config = prep, dict(config)
        self._cache: dict[str, np.ndarray] = {}  # path -> pixels: a sentence's windows share one picture

    def pixels(self, image) -> np.ndarray:
        if not isinstance(image, str):
            return self.prep.one(image)
        if image not in self._cache:
            self._cache[image] = self.prep.one(image)
        return self._cache[image]

    def batch(self, images: Sequence) -> dict[str, np.ndarray]:
        size = self.prep.crop
        pixels = np.zeros((len(images), 3, size, size), np.float32)
        present = np.zeros(len(images), np.float32)
        for i, image in enumerate(images):
            if image is not None:
                pixels[i] = self.pixels(image)
                present[i] = 1.0
        return {"pixel_values": pixels, "has_image": present}
