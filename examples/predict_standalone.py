"""Provides a standalone predictor for mmzoo ONNX exports: onnxruntime, tokenizers, numpy and Pillow only.

It does not import mmzoo: everything it needs (labels, inputs, the tokenizer and image
steps) is read from the file's metadata, as docs/onnx.md describes.

    python examples/predict_standalone.py model.onnx --text "a red apple" --image apple.png [--top-k 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps
from tokenizers import Tokenizer

SUPPORTED_FORMAT = 1
RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "lanczos": Image.LANCZOS}


def text_inputs(config: dict, texts: list[str]) -> dict[str, np.ndarray]:
    """Tokenize, truncate to max_length, pad to the longest text with pad_id; mask is 1 on real tokens."""
    tok = Tokenizer.from_str(config["tokenizer_json"])
    tok.no_padding()
    tok.enable_truncation(config["max_length"])
    encodings = tok.encode_batch(texts)
    width = max(1, max(len(e.ids) for e in encodings))
    ids = np.full((len(texts), width), config["pad_id"], dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, :len(enc.ids)] = enc.ids
        mask[row, :len(enc.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def decode(path: str) -> Image.Image:
    """The decoded picture: upright by EXIF, 16-bit grey -> round(v / 257), alpha or colour key -> RGBA, else RGB."""
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        wide = np.asarray(img).astype(np.int64)
        grey = ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)
        key = img.info.get("transparency")
        if isinstance(key, int):  # tRNS colour key on 16-bit grey
            img = Image.fromarray(np.stack([grey, np.where(wide == key, 0, 255).astype(np.uint8)], -1), "LA")
        else:
            img = Image.fromarray(grey, "L")
    if img.mode in ("RGBA", "LA", "P", "PA", "La", "RGBa") or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("RGB")


def raw_image_input(paths: list[str]) -> np.ndarray:
    """A --raw-image export's input: decoded pictures of one size, uint8 (batch, height, width, 3 or 4)."""
    arrays = [np.asarray(decode(p)) for p in paths]
    if len({a.shape[2] for a in arrays}) > 1:
        arrays = [a if a.shape[2] == 4 else np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]) for a in arrays]
    return np.stack(arrays)


def image_input(config: dict, path: str) -> np.ndarray:
    """RGB (alpha flattened on the background), short side to `resize`, centre crop, /255, normalise, CHW."""
    img = decode(path)
    if img.mode == "RGBA":
        canvas = Image.new("RGBA", img.size, tuple(config["background"]) + (255,))
        img = Image.alpha_composite(canvas, img).convert("RGB")
    w, h = img.size
    scale = config["resize"] / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, RESAMPLE[config["interpolation"]])
    w, h = img.size
    crop = config["crop"]
    left, top = (w - crop) // 2, (h - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    x = np.asarray(img, dtype=np.float32) / 255.0  # (H, W, 3)
    x = (x - np.asarray(config["mean"], np.float32)) / np.asarray(config["std"], np.float32)
    return x.transpose(2, 0, 1)[None]  # (1, 3, H, W)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--text")
    parser.add_argument("--image")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    session = ort.InferenceSession(args.file, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "mmzoo.format_version" not in meta:
        sys.exit(f"{args.file} is not an mmzoo export")
    if int(meta["mmzoo.format_version"]) > SUPPORTED_FORMAT:
        sys.exit(f"{args.file} uses mmzoo export format {meta['mmzoo.format_version']}; this script reads "
                 f"{SUPPORTED_FORMAT}")
    labels = json.loads(meta["mmzoo.labels"])
    feeds = {}
    for prep in json.loads(meta["mmzoo.preprocessing"]):
        config = prep["config"]
        if prep["modality"] == "text":
            if not args.text:
                sys.exit("this model reads text: pass --text")
            produced = text_inputs(config, [args.text])
        else:
            if not args.image:
                sys.exit("this model reads an image: pass --image")
            if config["kind"] == "raw_image":  # the graph resizes, crops, flattens and normalises
                produced = {"image": raw_image_input([args.image])}
            else:
                produced = {"pixel_values": image_input(config, args.image)}
        # Each preprocessor output feeds the graph input named in "inputs".
        feeds.update({name: produced[field] for field, name in prep["inputs"].items()})
    probs = session.run(["probs"], feeds)[0][0]  # (C,)
    order = np.argsort(-probs, kind="stable")[:args.top_k]
    if args.json:
        top = [{"label": labels[i], "probability": float(probs[i])} for i in order]
        every = {label: float(p) for label, p in zip(labels, probs, strict=True)}
        print(json.dumps({"top_k": top, "probabilities": every}, indent=2))
    else:
        for i in order:
            print(f"{labels[i]:<30} {probs[i]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
