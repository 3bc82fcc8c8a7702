"""Provides the toy multimodal token dataset of the image-conditioned tagging tests.

Every sentence names one entity from a pool of made-up words ("i saw zorbel today"); whether that word
is a PER or a LOC is decided by the sentence's picture alone (reddish: PER, bluish: LOC; no picture:
PER), so a text-only tagger can only guess the type.
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np

WORDS = ["zorbel", "quant", "mirova", "tesk", "belun", "farro", "gilm", "hovat", "kresh", "lumo", "nadir", "oskel"]
TEMPLATES = [["i", "saw", "{}", "today"], ["we", "met", "{}", "there"], ["{}", "was", "great"],
             ["photos", "of", "{}", "again"], ["look", "at", "{}"], ["they", "called", "{}", "yesterday"]]

REGISTRY = textwrap.dedent("""
    models:
      pic_text:
        description: text-only tagger (cannot see the picture)
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
      pic_film:
        description: the picture scales and shifts every token (FiLM)
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        image: {{encoder: small_cnn, dim: 16, image_size: 16, channels: [8, 16]}}
        fusion: {{name: film, dim: 32}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
      pic_xattn:
        description: each token attends to the picture's grid cells
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        image: {{encoder: small_cnn, dim: 16, image_size: 16, channels: [8, 16]}}
        fusion: {{name: cross_attention, dim: 32, heads: 2, dropout: 0.0}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32, seed: 1}}
      pic_gated:
        description: gated has no token form
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        fusion: gated
        task: {{dataset: {data}, type: tokens}}
      pic_nofusion:
        description: an image without a fusion
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        task: {{dataset: {data}, type: tokens}}
      pic_film_condition:
        description: the classification FiLM's condition param is not a token FiLM param
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        fusion: {{name: film, condition: text}}
        task: {{dataset: {data}, type: tokens}}
""")


def picture(path: Path, colour: str, rng: np.random.Generator) -> None:
    from PIL import Image

    base = {"red": (200, 40, 40), "blue": (40, 60, 200)}[colour]
    noise = rng.integers(-40, 40, (16, 16, 3))
    Image.fromarray(np.clip(np.array(base) + noise, 0, 255).astype(np.uint8)).save(path)


def make_dataset(folder: Path, seed: int = 0, sizes=(("train", 240), ("val", 60), ("test", 60))) -> None:
    """manifest.jsonl rows whose one entity's type is the picture's: red PER, blue LOC, none PER."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True)
    pictures = {colour: [] for colour in ("red", "blue")}
    for colour, paths in pictures.items():
        for i in range(12):
            path = f"img/{colour}{i}.png"
            picture(folder / path, colour, nprng)
            paths.append(path)
    rows = []
    for split, n in sizes:
        for k in range(n):
            template = rng.choice(TEMPLATES)
            words = [rng.choice(WORDS) if t == "{}" else t for t in template]
            colour = None if k % 10 == 9 else rng.choice(["red", "blue"])  # one sentence in ten has no picture
            kind = "LOC" if colour == "blue" else "PER"
            tags = [f"B-{kind}" if t == "{}" else "O" for t in template]
            row = {"id": f"{split}-{k}", "tokens": words, "tags": tags, "split": split}
            if colour:
                row["image"] = rng.choice(pictures[colour])
            rows.append(json.dumps(row))
    (folder / "manifest.jsonl").write_text("\n".join(rows) + "\n")


def make_pics(root: Path) -> SimpleNamespace:
    """The toy dataset under ``root/pics`` and a registry of taggers on it."""
    make_dataset(root / "pics")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY.format(data=root / "pics"))
    return SimpleNamespace(root=root, data=root / "pics", registry=registry, runs=root / "runs")
