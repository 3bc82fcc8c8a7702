"""Provides torch-free preprocessing shared by training and ONNX inference.

An encoder owns one preprocessor; its ``config`` is plain JSON, so the same
steps travel inside an ONNX export and can be replayed by any runtime with
``tokenizers``, numpy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}
DECODE_VERSION = 2
# Modes holding more than 8 bits per sample; mmzoo reads them as 16-bit values (see ``decode``).
WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Modes whose alpha (or colour key) is kept, to be flattened onto the background.
ALPHA_MODES = ("RGBA", "LA", "P", "PA", "La", "RGBa")


def open_image(image) -> Image.Image:
    """A path, uint8/uint16 array or PIL image as a loaded PIL image, turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps

    if isinstance(image, (str, Path)):
        path = image
        try:
            image = Image.open(path)
            image.load()
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a cut-short or damaged file
            from mmzoo.errors import DataError

            raise DataError(f"image {path} could not be decoded: {exc}",
                            hint="replace or remove the file; `mmzoo data check` decodes every image") from None
    elif isinstance(image, np.ndarray):
        return Image.fromarray(image)  # arrays carry no EXIF
    return ImageOps.exif_transpose(image)


def _wide_to_8bit(image) -> Image.Image:
    """16-bit greyscale (mode I;16*, or I read as 16-bit) -> L with v8 = round(v16 / 257); a tRNS key -> LA."""
    from PIL import Image

    wide = np.asarray(image).astype(np.int64)  # (H, W)
    grey = ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)  # round(v / 257): never a tie
    key = image.info.get("transparency")
    if isinstance(key, int):  # PNG tRNS on greyscale: pixels equal to the key are transparent
        alpha = np.where(wide == key, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey, alpha], axis=-1), "LA")
    return Image.fromarray(grey, "L")


def decode(image) -> Image.Image:
    """The decoded picture shared by training, prediction and the raw-image export: RGB, or RGBA when it has alpha.

    Steps (docs/onnx.md spells each out for other runtimes): EXIF orientation applied;
    16-bit greyscale scaled to 8 bits by round(v / 257); palette, grey+alpha and PNG
    transparency colour keys (tRNS) become RGBA with straight (not premultiplied) alpha;
    everything else (L, 1, CMYK, YCbCr, ...) is converted to RGB by Pillow.
    """
    image = open_image(image)
    if image.mode in WIDE_GREY:
        image = _wide_to_8bit(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def decode_array(image) -> np.ndarray:
    """``decode`` as a uint8 array (H, W, 3) or (H, W, 4): the input of a raw-image export."""
    return np.asarray(decode(image), dtype=np.uint8)


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
        from mmzoo.textfile import require_utf8

        require_utf8(texts)  # else the tokenizers library fails with a bare TypeError
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
            # Version of ``decode``'s rules; 2 added EXIF orientation, 16-bit grey and tRNS. Part of the
            # feature-cache key, so features cached under the old rules are not reused.
            "decode": DECODE_VERSION,
        }

    def to_rgb(self, image) -> Image.Image:
        """The decoded picture (see ``decode``) with any alpha composited over ``background``."""
        from PIL import Image

        image = decode(image)
        if image.mode == "RGBA":
            canvas = Image.new("RGBA", image.size, tuple(self.background) + (255,))
            image = Image.alpha_composite(canvas, image).convert("RGB")
        return image

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


class RawImagePreprocessor:
    """Only ``decode``: a raw-image export resizes, crops, flattens and normalises inside its graph.

    Images in one batch must share one size; RGB and RGBA images may be mixed (RGB gets alpha 255).
    """

    kind = "raw_image"

    def __init__(self, graph_steps: Sequence[dict[str, Any]] = ()):
        self.graph_steps = [dict(step) for step in graph_steps]

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "raw_image",
            "dtype": "uint8",
            "layout": "NHWC",
            "channels": "3 (RGB) or 4 (RGBA, straight alpha)",
            "decode": "EXIF orientation applied; 16-bit grey -> round(v / 257); palette, grey+alpha and tRNS "
                      "colour keys -> RGBA; other modes -> RGB",
            "graph_steps": self.graph_steps,
        }

    def __call__(self, images: Sequence) -> dict[str, np.ndarray]:
        arrays = [decode_array(im) for im in images]
        sizes = {a.shape[:2] for a in arrays}
        if len(sizes) > 1:
            raise ValueError(f"a raw-image batch needs images of one size, got {sorted(sizes)}")
        if len({a.shape[2] for a in arrays}) > 1:  # mixed RGB and RGBA: opaque alpha for the RGB ones
            arrays = [a if a.shape[2] == 4 else np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
                      for a in arrays]
        return {"image": np.stack(arrays)}


def from_config(config: dict[str, Any]) -> TextPreprocessor | ImagePreprocessor | RawImagePreprocessor:
    """Rebuild a preprocessor from its ``config`` (as stored in checkpoints and ONNX sidecars)."""
    cfg = dict(config)
    kind = cfg.pop("kind")
    if kind == "text":
        return TextPreprocessor(cfg["tokenizer_json"], cfg["max_length"], cfg.get("pad_id", 0))
    if kind == "image":
        keys = ("resize", "crop", "mean", "std", "interpolation", "background")
        return ImagePreprocessor(**{k: cfg[k] for k in keys if k in cfg})
    if kind == "raw_image":
        return RawImagePreprocessor(cfg.get("graph_steps", ()))
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


def load_tokenizer_json(folder: str | Path) -> str:
    """Read ``tokenizer.json`` from a HF model folder, with a clear error when it is absent."""
    import json

    from mmzoo.errors import DataError

    path = Path(folder) / "tokenizer.json"
    if not path.exists():
        raise DataError(f"{path} not found: mmzoo needs a fast tokenizer's tokenizer.json",
                        hint="save the tokenizer with save_pretrained() from a fast (Rust) tokenizer")
    return json.dumps(json.loads(path.read_text()))
