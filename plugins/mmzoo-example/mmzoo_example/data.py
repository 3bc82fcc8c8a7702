"""Provides colour-match: does the text name the colour of the drawn square? Needs both modalities."""

from __future__ import annotations

import hashlib
import random

import numpy as np

from mmzoo.plugin import Dataset, Sample

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}
TEMPLATES = ("{c}", "a {c} square", "something {c}", "the square is {c}", "{c} on grey", "it looks {c}")
CLASSES = ["no_match", "match"]
FRACTIONS = (0.70, 0.15, 0.15)


def draw(colour: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy light-grey ``size`` x ``size`` RGB uint8 image with one square of ``colour``."""
    image = rng.normal(200.0, 12.0, (size, size, 3))  # (S, S, 3)
    side = int(rng.integers(max(2, size // 4), max(3, size // 2) + 1))
    top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
    image[top:top + side, left:left + side] = np.asarray(colour) + rng.normal(0.0, 12.0, (side, side, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def load_colour_match(*, seed: int, images: int, image_size: int) -> Dataset:
    """Draw ``images`` squares; each gets one text naming its colour and one naming another colour.

    mmzoo calls this through the registered part, which has checked each value against its Param.
    """
    rng = random.Random(seed)
    pixels = np.random.default_rng(seed)
    names = list(COLOURS)
    order = list(range(images))
    rng.shuffle(order)
    cut = (round(FRACTIONS[0] * images), round((FRACTIONS[0] + FRACTIONS[1]) * images))
    split_of = {i: "train" if k < cut[0] else "val" if k < cut[1] else "test" for k, i in enumerate(order)}
    digest = hashlib.sha256(f"colour-match\0{seed}\0{images}\0{image_size}\0".encode())
    samples: list[Sample] = []
    for i in range(images):
        colour = names[i % len(names)]  # every colour equally often
        image = draw(COLOURS[colour], image_size, pixels)
        digest.update(image.tobytes())
        other = rng.choice([c for c in names if c != colour])
        # one matching and one non-matching text per image, so the text alone is at chance
        for k, (named, label) in enumerate(((colour, "match"), (other, "no_match"))):
            text = rng.choice(TEMPLATES).format(c=named)
            digest.update(f"{i}\0{text}\0{label}\0{split_of[i]}\n".encode())
            samples.append(Sample(id=f"sq{i:04d}-{k}", text=text, image=image,
                                  labels={"match": label, "colour": colour}, split=split_of[i], group=f"sq{i:04d}"))
    return Dataset(
        name="colour-match",
        samples=samples,
        label_sets={"match": list(CLASSES), "colour": names},
        default_label_set="match",
        source="drawn by mmzoo-example: one coloured square on noisy grey per image",
        fingerprint=digest.hexdigest()[:16],
        extra={"seed": seed, "images": images, "image_size": image_size},
    )
