"""Provides the conformance fixture written by ``mmzoo export --fixture``: inputs and expected outputs.

Someone porting the preprocessing to another language checks each step against it: the
image file -> the decoded picture (uint8 bytes), text -> token ids, -> every graph input
(raw little-endian files), -> the probabilities this very .onnx file gives on them.
docs/onnx.md describes the layout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from mmzoo import atomic
from mmzoo.data.preprocess import decode_array

FORMAT = 1
PROBS_TOLERANCE = 1e-4  # the same inputs through another onnxruntime build


def _array_file(folder: Path, name: str, value: np.ndarray) -> dict:
    """Write ``value`` as raw little-endian bytes (C order); describe it for the JSON."""
    value = np.ascontiguousarray(value)
    little = value.astype(value.dtype.newbyteorder("<"), copy=False)
    (folder / name).write_bytes(little.tobytes())
    desc = {"file": f"{folder.name}/{name}", "dtype": str(value.dtype), "shape": list(value.shape),
            "byteorder": "little", "order": "C (row-major)"}
    if value.dtype == np.int64 and value.size <= 4096:
        desc["values"] = value.reshape(-1).tolist()
    return desc


def _image_file(folder: Path, stem: str, image) -> str:
    """The sample's image as a file: a path is copied byte for byte, an array saved as PNG."""
    if isinstance(image, (str, Path)):
        name = stem + Path(image).suffix.lower()
        shutil.copyfile(image, folder / name)
    else:
        from PIL import Image

        name = f"{stem}.png"
        (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(folder / name)
    return f"{folder.name}/{name}"


def decode_cases() -> list[tuple[str, object, dict]]:
    """Small generated images for the decoding rules that bit real users: (file name, PIL image, save args)."""
    from PIL import Image

    y, x = np.mgrid[0:12, 0:20]
    grey16 = Image.fromarray((x * 3000 + y * 400).astype(np.uint16))  # mode I;16, up to 61400
    colour = np.stack([x * 12, y * 20, (x + y) * 8], axis=-1).astype(np.uint8)  # (12, 20, 3)
    colour[:3, :3] = (10, 20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    palette = Image.fromarray(colour).quantize(16)
    return [
        ("grey16.png", grey16, {}),
        ("rgb_colour_key.png", Image.fromarray(colour), {"transparency": (10, 20, 30)}),
        ("grey_colour_key.png", Image.fromarray((x * 12).astype(np.uint8)), {"transparency": 0}),
        ("palette_alpha.png", palette, {"transparency": 0}),
        ("exif_orientation_6.png", Image.fromarray(colour), {"exif": exif}),
    ]


def write_fixture(folder: Path, model_path: Path, source, ref, count: int) -> Path:
    """Write ``count`` validation samples (and the decoding cases) for ``model_path`` into ``folder``."""
    from mmzoo.onnx.runtime import Predictor

    predictor = Predictor(model_path, device="cpu")
    folder.mkdir()
    samples_dir = folder / "samples"
    samples_dir.mkdir()
    entries = []
    for k, sample in enumerate(ref.samples[:count]):
        stem = f"{k:03d}"
        texts = [sample.text] if "text" in predictor.modalities else None
        images = [sample.image] if "image" in predictor.modalities else None
        feeds = predictor.feeds(texts, images)
        probs = predictor.run(feeds)[0]  # (C,)
        entry = {"index": k, "text": sample.text, "label": predictor.labels[int(ref.labels[k])],
                 "inputs": {name: _array_file(samples_dir, f"{stem}.{name}.bin", value)
                            for name, value in feeds.items()},
                 "probs": [float(p) for p in probs], "top1": predictor.labels[int(probs.argmax())]}
        if images is not None:
            entry["image"] = _image_file(samples_dir, stem, sample.image)
            entry["decoded"] = _array_file(samples_dir, f"{stem}.decoded.bin", decode_array(sample.image))
        entries.append(entry)
    cases_dir = folder / "decode"
    cases_dir.mkdir()
    cases = []
    for name, image, args in decode_cases():
        image.save(cases_dir / name, **args)
        decoded = decode_array(cases_dir / name)
        cases.append({"image": f"decode/{name}",
                      "decoded": _array_file(cases_dir, Path(name).stem + ".decoded.bin", decoded)})
    atomic.write_json(folder / "fixture.json", {
        "mmzoo_fixture": FORMAT,
        "model": model_path.name,
        "image_input": predictor.meta.get("image_input", "pixel_values"),
        "labels": predictor.labels,
        "probs_tolerance": PROBS_TOLERANCE,
        "samples": entries,
        "decode_cases": cases,
    })
    return folder
