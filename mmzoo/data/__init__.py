"""Provides the dataset shape every trainer and evaluator reads (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmzoo.zoo.partbuild import expect

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One text+image pair. ``image`` is a path, or an array/PIL image for built-in data."""

    id: str
    text: str
    image: Any
    labels: dict[str, str]  # label set name -> class name
    split: str
    group: str = ""  # samples sharing a group never straddle splits (e.g. skin-tone variants)


@dataclass
class Dataset:
    """A named collection of samples with one or more label sets and fixed splits."""

    name: str
    samples: list[Sample]
    label_sets: dict[str, list[str]]  # label set name -> class names, in output order
    default_label_set: str
    source: str = ""  # where it came from, shown to users and stored in run specs
    fingerprint: str = ""  # changes whenever the content changes; keys feature caches
    extra: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def classes(self, label_set: str | None = None) -> list[str]:
        return self.label_sets[label_set or self.default_label_set]

    def targets(self, samples: list[Sample], label_set: str | None = None) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes(label_set))}
        ls = label_set or self.default_label_set
        return [index[s.labels[ls]] for s in samples]


def load_image(sample: Sample, root: Path | None = None):
    """Open a sample's image as a PIL image (paths are relative to ``root``)."""
    import numpy as np
    from PIL import Image

    image = sample.image
    if isinstance(image, (str, Path)):
        path = Path(image) if root is None else Path(root) / image
        img = Image.open(path)
        img.load()
        return img
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    return image


expect("dataset", Dataset)  # what every registered dataset must build (checked by Part.create)
