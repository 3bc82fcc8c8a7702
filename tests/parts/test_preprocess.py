"""Shared image preprocessing on generated images: 16-bit grey, EXIF orientation, PNG colour keys; the raw-image graph.

Training and prediction both go through ``ImagePreprocessor``, so each bug fixed here is fixed for both.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mmzoo import atomic
from mmzoo.data.preprocess import ImagePreprocessor, RawImagePreprocessor, decode, decode_array


def _save(tmp_path, name: str, image: Image.Image, **args):
    path = tmp_path / name
    image.save(path, **args)
    return path


def test_16bit_grey_png_scales_to_8_bits_instead_of_saturating(tmp_path):
    y, x = np.mgrid[0:40, 0:64]
    wide = (x * 1000 + y * 40).astype(np.uint16)  # 0..64560, mean about 32300
    path = _save(tmp_path, "grey16.png", Image.fromarray(wide))
    assert Image.open(path).mode == "I;16"
    got = decode_array(path)  # (40, 64, 3)
    want = np.floor(wide / 257 + 0.5).astype(np.uint8)  # round(v / 257)
    assert got.shape == (40, 64, 3) and (got == want[..., None]).all()
    assert abs(float(got.mean()) - float(wide.mean()) / 257) < 0.6  # Pillow's own convert gives about 254
    pixels = ImagePreprocessor(resize=64, crop=40, mean=(0, 0, 0), std=(1, 1, 1))([path])["pixel_values"]
    assert abs(float(pixels.mean()) * 255 - float(wide[:, 12:52].mean()) / 257) < 0.6


def test_exif_orientation_turns_the_picture_upright(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = _save(tmp_path, "phone.png", Image.fromarray(stored), exif=exif)
    got = decode_array(path)
    assert got.shape == (20, 12, 3)
    assert (got == np.rot90(stored, k=-1)).all()
    # A JPEG (lossy, so compare the shape and the bright corner) with the same tag.
    marked = np.zeros((30, 50, 3), np.uint8)
    marked[:10, :10] = 255  # stored top-left -> displayed top-right
    jpeg = _save(tmp_path, "phone.jpg", Image.fromarray(marked), exif=exif, quality=95)
    shown = decode_array(jpeg)
    assert shown.shape == (50, 30, 3) and shown[:10, -10:].mean() > 200 and shown[:10, :10].mean() < 50


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_transparency_colour_key_is_flattened_like_rgba(tmp_path, mode):
    colour = np.full((8, 8, 3), (200, 100, 50), np.uint8)
    colour[:4] = (10, 20, 30)
    if mode == "RGB":
        image, key = Image.fromarray(colour), (10, 20, 30)
    else:
        image, key = Image.fromarray(colour[..., 0]), 10
    path = _save(tmp_path, f"key_{mode}.png", image, transparency=key)
    assert Image.open(path).mode == mode and "transparency" in Image.open(path).info
    assert decode(path).mode == "RGBA"
    prep = ImagePreprocessor(resize=8, crop=8, background=(0, 255, 0))
    rgb = np.asarray(prep.to_rgb(path))
    assert (rgb[:4] == (0, 255, 0)).all()  # keyed pixels show the background
    assert (rgb[4:] == ((200, 100, 50) if mode == "RGB" else (200, 200, 200))).all()


def test_16bit_grey_with_colour_key(tmp_path):
    wide = np.full((4, 6), 40000, np.uint16)
    wide[0] = 7
    path = _save(tmp_path, "grey16_key.png", Image.fromarray(wide), transparency=7)
    got = decode_array(path)
    assert got.shape == (4, 6, 4) and (got[0, :, 3] == 0).all() and (got[1:, :, 3] == 255).all()
    assert (got[1:, :, 0] == round(40000 / 257)).all()


def test_raw_image_batches_mix_rgb_and_rgba_but_not_sizes():
    prep = RawImagePreprocessor()
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgba = np.full((5, 7, 4), 9, np.uint8)
    batch = prep([rgb, rgba])["image"]
    assert batch.shape == (2, 5, 7, 4) and batch.dtype == np.uint8 and (batch[0, ..., 3] == 255).all()
    with pytest.raises(ValueError, match="one size"):
        prep([rgb, np.zeros((6, 7, 3), np.uint8)])


def _graph_session(prep: ImagePreprocessor):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from mmzoo.onnx.rawimage import prepend

    graph = helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["probs"])], "identity",
                              [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 3, "h", "w"])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", 3, "h", "w"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model = prepend(model, [SimpleNamespace(config=prep.config, inputs={"pixel_values": "pixel_values"})])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("interpolation,resize,crop", [("bilinear", 24, 20), ("bicubic", 80, 64), ("bilinear", 40, 40)])
def test_raw_image_graph_matches_pillow_within_two_grey_levels(interpolation, resize, crop):
    prep = ImagePreprocessor(resize=resize, crop=crop, interpolation=interpolation, background=(30, 60, 90))
    session = _graph_session(prep)
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:37, 0:53]
    smooth = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).astype(np.uint8)
    alpha = np.dstack([smooth, rng.integers(0, 256, (37, 53, 1), dtype=np.uint8)])
    for image in (smooth, alpha, rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)):
        want = prep([image])["pixel_values"]
        got = session.run(None, {"image": decode_array(image)[None]})[0]
        assert got.shape == want.shape
        grey = np.abs(got - want) * np.asarray(prep.std, np.float32).reshape(1, 3, 1, 1) * 255
        assert grey.max() <= 2.01 and grey.mean() < 0.3
    # No resize needed: the flattening is Pillow's integer alpha_composite, bit for bit.
    same = ImagePreprocessor(resize=40, crop=40, background=(30, 60, 90))
    image = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    got = _graph_session(same).run(None, {"image": image[None]})[0]
    np.testing.assert_allclose(got, same([image])["pixel_values"], atol=1e-5)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
        staged = tmp_path / "staged"
        staged.mkdir(mode=0o700)
        (staged / "f.bin").write_bytes(b"1")
        os.chmod(staged / "f.bin", 0o600)
        atomic.publish(staged, tmp_path / "published")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "published").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "published" / "f.bin").stat().st_mode & 0o777 == 0o666 & ~mask
    assert atomic.umask() == old  # reading the umask does not change it
