"""Provides the bundled emoji dataset: Twemoji images with their names, 9 categories, ~98 subcategories."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from mmzoo.data import SPLITS, Dataset, Sample
from mmzoo.errors import DataError

FOLDER = Path(__file__).resolve().parents[1] / "datasets" / "emoji"
TILE = 64
LABEL_SETS = ("category", "subcategory")


def _tiles(png: bytes) -> np.ndarray:
    """Cut the atlas into tiles, row-major, so tile i is ``tiles[i]``."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        atlas = np.asarray(img.convert("RGBA"))  # (H, W, 4)
    rows, cols = atlas.shape[0] // TILE, atlas.shape[1] // TILE
    grid = atlas.reshape(rows, TILE, cols, TILE, 4).transpose(0, 2, 1, 3, 4)  # (rows, cols, 64, 64, 4)
    # One contiguous copy, so every sample's image is a cheap contiguous view.
    return np.ascontiguousarray(grid).reshape(rows * cols, TILE, TILE, 4)  # (N, 64, 64, 4)


def load_emoji(label_set: str = "category", folder: str | Path | None = None) -> Dataset:
    """Load the emoji dataset; ``label_set`` picks the default target (category or subcategory)."""
    if label_set not in LABEL_SETS:
        raise DataError(f"emoji has no label set {label_set!r}", hint=f"use one of: {', '.join(LABEL_SETS)}")
    folder = Path(folder) if folder is not None else FOLDER
    try:
        png = (folder / "atlas.png").read_bytes()
        table = (folder / "emoji.jsonl").read_bytes()
    except FileNotFoundError as e:
        raise DataError(
            f"the emoji dataset files are missing: {e.filename}",
            hint="reinstall mmzoo, or rebuild them with `python scripts/build_emoji.py`",
        ) from None
    tiles = _tiles(png)
    samples = []
    for line in table.decode("utf-8").splitlines():
        row = json.loads(line)
        samples.append(
            Sample(
                id=row["id"],
                text=row["text"],
                image=tiles[row["tile"]],  # (64, 64, 4) uint8 RGBA
                labels={"category": row["category"], "subcategory": row["subcategory"]},
                split=row["split"],
                group=row["group"],
            )
        )
    unknown = {s.split for s in samples} - set(SPLITS)
    if unknown:
        raise DataError(f"{folder / 'emoji.jsonl'} has unknown splits {sorted(unknown)}",
                        hint="rebuild it with `python scripts/build_emoji.py`")
    digest = hashlib.sha256(b"emoji\0" + hashlib.sha256(table).digest() + hashlib.sha256(png).digest())
    return Dataset(
        name="emoji",
        samples=samples,
        label_sets={ls: sorted({s.labels[ls] for s in samples}) for ls in LABEL_SETS},
        default_label_set=label_set,
        source="emoji-datasource-twitter@16.0.0 (Twemoji CC-BY 4.0; iamcal/emoji-data MIT)",
        fingerprint=digest.hexdigest()[:16],
        extra={"attribution": str(folder / "ATTRIBUTION.md")},
    )
