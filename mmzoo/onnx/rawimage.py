"""Provides the raw-image export: the image steps (flatten, resize, crop, normalise) moved into the graph.

The graph then reads the decoded picture itself, ``image`` uint8 (batch, height, width,
channels) with 3 (RGB) or 4 (RGBA) channels, so another runtime only has to decode the
file: no resampler to port. Resizing is ONNX ``Resize`` with ``antialias=1`` (opset 18+),
which widens the filter when downscaling as Pillow does; its agreement with the Pillow
path is measured at every export (``measure``), never assumed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mmzoo.errors import ExportError

INPUT = "image"
MIN_OPSET = 18  # Resize's antialias attribute
# Pillow filter -> ONNX Resize attributes. Pillow's bicubic uses a = -0.5 (ONNX's default is -0.75);
# its filters are centred on pixel centres (half_pixel) and clipped to the image, then renormalised
# (exclude_outside). NEAREST picks floor((x + 0.5) * scale), which is round_prefer_ceil of half_pixel.
MODES = {
    "bilinear": {"mode": "linear"},
    "bicubic": {"mode": "cubic", "cubic_coeff_a": -0.5},
    "nearest": {"mode": "nearest", "nearest_mode": "round_prefer_ceil"},
}


class _Builder:
    """Collects nodes and constants under one name prefix."""

    def __init__(self, prefix: str):
        self.prefix, self.nodes, self.inits, self.count = prefix, [], [], 0

    def const(self, name: str, value, dtype) -> str:
        full = f"{self.prefix}{name}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), full))
        return full

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        self.count += 1
        out = output or f"{self.prefix}{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{self.prefix}{op_type}_{self.count}", **attrs))
        return out


def _steps(b: _Builder, rgb: str, alpha: str, config: dict, output: str, k: int) -> None:
    """One image preprocessor's steps on int32 (B, H, W, 3) colour and (B, H, W, 1) alpha, 0-255 -> ``output``."""
    p = f"p{k}_"
    interpolation = config.get("interpolation", "bilinear")
    if interpolation not in MODES:
        raise ExportError(f"image preprocessing uses {interpolation!r} resampling, which ONNX Resize has no "
                          "filter for", hint="export without --raw-image (the pixel_values input)")
    # Flatten exactly as Pillow's alpha_composite over an opaque background (int32 maths; t < 2^25):
    # t = 128 * (rgb * a + background * (255 - a)) + 16384; out = ((t // 256 + t) // 256) // 128.
    background = np.asarray(config.get("background", (255, 255, 255)), np.int32).reshape(1, 1, 1, 3)
    mixed = b.op("Add", [b.op("Mul", [rgb, alpha]),
                         b.op("Mul", [b.const(f"{p}background", background, np.int32),
                                      b.op("Sub", [b.const(f"{p}a255", 255, np.int32), alpha])])])
    t = b.op("Add", [b.op("Mul", [mixed, b.const(f"{p}m128", 128, np.int32)]), b.const(f"{p}half", 16384, np.int32)])
    c256 = b.const(f"{p}d256", 256, np.int32)
    out = b.op("Div", [b.op("Div", [b.op("Add", [b.op("Div", [t, c256]), t]), c256]),
                       b.const(f"{p}d128", 128, np.int32)])
    flat = b.op("Cast", [out], to=TensorProto.FLOAT)  # (B, H, W, 3), 0-255
    nchw = b.op("Transpose", [flat], perm=[0, 3, 1, 2])  # (B, 3, H, W)
    # Target size as Python computes it: s = resize / min(h, w) and round(h * s), round(w * s) in float64,
    # half to even (ONNX Round), at least 1.
    shape = b.op("Shape", [nchw])  # [B, 3, H, W]
    hw = b.op("Slice", [shape, b.const(f"{p}s2", [2], np.int64), b.const(f"{p}s4", [4], np.int64)])
    hw_d = b.op("Cast", [hw], to=TensorProto.DOUBLE)
    short = b.op("ReduceMin", [hw_d], keepdims=1)
    scale = b.op("Div", [b.const(f"{p}resize", [float(config["resize"])], np.float64), short])
    new_hw_d = b.op("Max", [b.op("Round", [b.op("Mul", [hw_d, scale])]), b.const(f"{p}min1", [1.0], np.float64)])
    new_hw = b.op("Cast", [new_hw_d], to=TensorProto.INT64)
    lead = b.op("Slice", [shape, b.const(f"{p}s0", [0], np.int64), b.const(f"{p}s2b", [2], np.int64)])
    height = b.op("Slice", [hw, b.const(f"{p}h0", [0], np.int64), b.const(f"{p}h1", [1], np.int64)])
    new_h = b.op("Slice", [new_hw, b.const(f"{p}nh0", [0], np.int64), b.const(f"{p}nh1", [1], np.int64)])
    new_w = b.op("Slice", [new_hw, b.const(f"{p}nw1", [1], np.int64), b.const(f"{p}nw2", [2], np.int64)])
    attrs = dict(MODES[interpolation], coordinate_transformation_mode="half_pixel")
    if attrs["mode"] != "nearest":
        attrs.update(antialias=1, exclude_outside=1)
    lo, hi = b.const(f"{p}lo", 0.0, np.float32), b.const(f"{p}hi", 255.0, np.float32)
    # Two one-dimensional passes, width then height, each clipped to 0-255 and rounded (half to even;
    # Pillow rounds halves up, and a tie is rare), as Pillow resamples uint8 images.
    wide = b.op("Resize", [nchw, "", "", b.op("Concat", [lead, height, new_w], axis=0)], **attrs)
    wide = b.op("Round", [b.op("Clip", [wide, lo, hi])])
    tall = b.op("Resize", [wide, "", "", b.op("Concat", [lead, new_h, new_w], axis=0)], **attrs)
    pixels = b.op("Round", [b.op("Clip", [tall, lo, hi])])
    # Centre crop: top = (h - crop) // 2, left = (w - crop) // 2.
    crop = int(config["crop"])
    starts = b.op("Div", [b.op("Sub", [new_hw, b.const(f"{p}crop", [crop, crop], np.int64)]),
                          b.const(f"{p}two", [2, 2], np.int64)])
    ends = b.op("Add", [starts, b.const(f"{p}crop_b", [crop, crop], np.int64)])
    cropped = b.op("Slice", [pixels, starts, ends, b.const(f"{p}axes", [2, 3], np.int64)])
    mean = np.asarray(config["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(config["std"], np.float32).reshape(1, 3, 1, 1)
    unit = b.op("Div", [cropped, b.const(f"{p}255", 255.0, np.float32)])
    b.op("Div", [b.op("Sub", [unit, b.const(f"{p}mean", mean, np.float32)]), b.const(f"{p}std", std, np.float32)],
         output=output)


def prepend(model: onnx.ModelProto, image_preps: list) -> onnx.ModelProto:
    """``model`` with its pixel_values inputs computed in-graph from one ``image`` input.

    ``image_preps`` are the export's image Preprocessing entries (config + the graph input they feed).
    """
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise ExportError(f"--raw-image needs opset {MIN_OPSET} or newer (Resize's antialias), got {opset}",
                          hint=f"pass --opset {MIN_OPSET} (or leave --opset out)")
    b = _Builder("rawimage_")
    image = helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["batch", "height", "width", "channels"])
    x = b.op("Cast", [INPUT], to=TensorProto.INT32)  # (B, H, W, C), C = 3 or 4
    # Alpha = channel 3 when present, else 255: append an opaque channel and take index 3 of the result.
    first = b.op("Slice", [x, b.const("c0", [0], np.int64), b.const("c1", [1], np.int64),
                           b.const("caxis", [3], np.int64)])
    opaque = b.op("Add", [b.op("Mul", [first, b.const("zero", 0, np.int32)]), b.const("full", 255, np.int32)])
    padded = b.op("Concat", [x, opaque], axis=3)
    alpha = b.op("Slice", [padded, b.const("c3", [3], np.int64), b.const("c4", [4], np.int64),
                           b.const("caxis_b", [3], np.int64)])  # (B, H, W, 1)
    rgb = b.op("Slice", [x, b.const("c0b", [0], np.int64), b.const("c3b", [3], np.int64),
                         b.const("caxis_c", [3], np.int64)])  # (B, H, W, 3)
    fed = set()
    for k, prep in enumerate(image_preps):
        _steps(b, rgb, alpha, prep.config, prep.inputs["pixel_values"], k)
        fed.add(prep.inputs["pixel_values"])
    graph = model.graph
    inputs = [image] + [v for v in graph.input if v.name not in fed]
    merged = helper.make_graph(b.nodes + list(graph.node), graph.name, inputs, list(graph.output),
                               b.inits + list(graph.initializer), value_info=list(graph.value_info))
    out = helper.make_model(merged, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    out.ir_version = model.ir_version
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(out)
    return out


def feeds_for(images: list, other: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Graph feeds for a batch of images (any sizes) plus its other inputs (rows aligned with the images).

    A batch tensor holds one image size, so images of different sizes go in runs of equal size.
    """
    from mmzoo.data.preprocess import RawImagePreprocessor

    decode = RawImagePreprocessor()
    arrays = [decode([im])["image"][0] for im in images]
    out, start = [], 0
    for end in range(1, len(arrays) + 1):
        if end == len(arrays) or arrays[end].shape[:2] != arrays[start].shape[:2]:
            feed = {name: value[start:end] for name, value in other.items()}
            feed[INPUT] = decode(arrays[start:end])[INPUT]
            out.append(feed)
            start = end
    return out


def parity_feeds(ref, pixel_inputs: set[str]) -> list[dict[str, np.ndarray]]:
    """The parity samples' feeds for a raw-image graph: decoded pictures instead of Pillow's pixel_values."""
    feeds, offset = [], 0
    for batch in ref.feeds:
        size = len(next(iter(batch.values())))
        images = [s.image for s in ref.samples[offset:offset + size]]
        feeds.extend(feeds_for(images, {k: v for k, v in batch.items() if k not in pixel_inputs}))
        offset += size
    return feeds
