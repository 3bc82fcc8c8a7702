"""Provides torch-free preprocessing shared by training and ONNX inference.

An encoder owns one preprocessor; its ``config`` is plain JSON, so the same
steps travel inside an ONNX export and can be replayed by any runtime with
``tokenizers``, numpy and Pillow only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}


class TextPreprocessor:
    """Tokenizes with a ``tokenizers`` tokenizer.json, padding to the longest in the batch."""

    kind = "text"

    def __init__(self, tokenizer_json: str, max_length: int = 64, pad_id: int = 0):
        from tokenizers import Tokenizer

        self.tokenizer_json = tokenizer_json
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self._tok = Tokenizer.from_str(tokenizer_json)
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "tokenizer_json": self.tokenizer_json,
            "max_length": self.max_length,
            "padding": "longest",
            "truncation": True,
            "pad_id": self.pad_id,
        }

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self._tok.encode_batch(list(texts))
        width = max(1, max(len(e.ids) for e in encodings))
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class ImagePreprocessor:
    """Resize the short side, centre-crop, scale to [0, 1], normalise; RGBA is flattened on a background."""

    kind = "image"

    def __init__(
        self,
        resize: int,
        crop: int,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        interpolation: str = "bilinear",
        background: Sequence[int] = (255, 255, 255),
    ):
        if interpolation not in RESAMPLE:
            raise ValueError(f"interpolation must be one of {sorted(RESAMPLE)}, got {interpolation!r}")
        self.resize, self.crop = int(resize), int(crop)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.interpolation = interpolation
        self.background = [int(b) for b in background]

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "resize": self.resize,
            "crop": self.crop,
            "mean": self.mean,
            "std": self.std,
            "interpolation": self.interpolation,
            "background": self.background,
            "layout": "NCHW",
            "scale": "divide by 255, then (x - mean) / std",
        }

    def to_rgb(self, image) -> "Image.Image":  # noqa: F821
        from PIL import Image

        if isinstance(image, (str, Path)):
            image = Image.open(image)
            image.load()
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            canvas = Image.new("RGBA", image.size, tuple(self.background) + (255,))
            image = Image.alpha_composite(canvas, image)
        return image.convert("RGB")

    def one(self, image) -> np.ndarray:
        img = self.to_rgb(image)
        w, h = img.size
        scale = self.resize / min(w, h)
        if (w, h) != (round(w * scale), round(h * scale)):
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), RESAMPLE[self.interpolation])
        w, h = img.size
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        img = img.crop((left, top, left + self.crop, top + self.crop))
        x = np.asarray(img, dtype=np.float32) / 255.0  # (H, W, 3)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return x.transpose(2, 0, 1)

    def __call__(self, images: Sequence) -> dict[str, np.ndarray]:
        return {"pixel_values": np.stack([self.one(im) for im in images]).astype(np.float32)}


def from_config(config: dict[str, Any]) -> TextPreprocessor | ImagePreprocessor:
    """Rebuild a preprocessor from its ``config`` (as stored in checkpoints and ONNX sidecars)."""
    cfg = dict(config)
    kind = cfg.pop("kind")
    if kind == "text":
        return TextPreprocessor(cfg["tokenizer_json"], cfg["max_length"], cfg.get("pad_id", 0))
    if kind == "image":
        keys = ("resize", "crop", "mean", "std", "interpolation", "background")
        return ImagePreprocessor(**{k: cfg[k] for k in keys if k in cfg})
    raise ValueError(f"unknown preprocessor kind {kind!r}")


def char_tokenizer_json(alphabet: str | None = None) -> str:
    """A character-level tokenizer.json for from-scratch text encoders (lowercased)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    alphabet = alphabet or "abcdefghijklmnopqrstuvwxyz0123456789 .,:;!?'\"-_&()/+#*%$@"
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return tok.to_str()
