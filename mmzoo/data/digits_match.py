"""Provides digits-match: does the text name the handwritten digit? Needs both modalities to solve."""

from __future__ import annotations

import hashlib
import random

import numpy as np

from mmzoo.data import Dataset, Sample
from mmzoo.errors import DataError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = (
    "{word}",
    "{num}",
    "a handwritten {word}",
    "the digit {num}",
    "number {word}",
    "a picture of the number {num}",
    "digit {word}",
    "this is a {num}",
)
CLASSES = ["no_match", "match"]
FRACTIONS = (0.70, 0.15, 0.15)


def describe(digit: int, rng: random.Random) -> str:
    """A random phrasing that names ``digit`` (as a word or a numeral)."""
    return rng.choice(TEMPLATES).format(word=WORDS[digit], num=digit)


def image_splits(targets: np.ndarray, rng: random.Random) -> list[str]:
    """Split image indices 70/15/15 within each digit, so every split sees every digit equally."""
    splits = [""] * len(targets)
    for digit in range(10):
        idx = [int(i) for i in np.flatnonzero(targets == digit)]
        rng.shuffle(idx)
        n_train = round(FRACTIONS[0] * len(idx))
        n_val = round(FRACTIONS[1] * len(idx))
        for k, i in enumerate(idx):
            splits[i] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return splits


def to_rgb(pixels: np.ndarray, size: int) -> np.ndarray:
    """Scale one 8x8 image (values 0..16) to a ``size`` x ``size`` uint8 RGB array, nearest neighbour."""
    gray = np.rint(pixels.reshape(8, 8) * (255.0 / 16.0)).astype(np.uint8)  # (8, 8)
    rows = np.arange(size) * 8 // size
    big = gray[rows][:, rows]  # (size, size)
    return np.repeat(big[:, :, None], 3, axis=2)  # (size, size, 3)


def load_digits_match(seed: int = 0, pairs_per_image: int = 2, image_size: int = 32) -> Dataset:
    """Build digits-match from scikit-learn's bundled 8x8 digits: one half matching texts, one half not."""
    if isinstance(pairs_per_image, bool) or not isinstance(pairs_per_image, int) or pairs_per_image < 2 \
            or pairs_per_image % 2:
        raise DataError(
            f"digits-match: pairs_per_image must be an even number >= 2, got {pairs_per_image!r}",
            hint="each image gets as many matching texts as non-matching ones, so text alone stays at chance",
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise DataError(f"digits-match: image_size must be an integer >= 8, got {image_size!r}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, targets = digits.data, digits.target  # (1797, 64) values 0..16, (1797,)
    rng = random.Random(seed)
    splits = image_splits(targets, rng)
    half = pairs_per_image // 2
    samples: list[Sample] = []
    digest = hashlib.sha256(f"digits-match\0{seed}\0{pairs_per_image}\0{image_size}\0".encode())
    for i, (pixels, digit) in enumerate(zip(images, targets, strict=True)):
        digit = int(digit)
        image = to_rgb(pixels, image_size)  # (S, S, 3) uint8, shared by this image's pairs
        digest.update(image.tobytes())
        others = rng.sample([d for d in range(10) if d != digit], half)
        named = [(digit, "match")] * half + [(d, "no_match") for d in others]
        for k, (d, label) in enumerate(named):
            text = describe(d, rng)
            digest.update(f"{i}\0{text}\0{label}\0{splits[i]}\n".encode())
            samples.append(
                Sample(
                    id=f"img{i:04d}-{k}",
                    text=text,
                    image=image,
                    labels={"match": label, "digit": str(digit)},
                    split=splits[i],
                    group=f"img{i:04d}",
                )
            )
    return Dataset(
        name="digits-match",
        samples=samples,
        label_sets={"match": list(CLASSES), "digit": [str(d) for d in range(10)]},
        default_label_set="match",
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits), paired with number words",
        fingerprint=digest.hexdigest()[:16],
        extra={"seed": seed, "pairs_per_image": pairs_per_image, "image_size": image_size},
    )
