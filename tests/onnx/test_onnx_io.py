"""ONNX for other runtimes: the raw-image export, --sidecar, --fixture, the parity rule and file modes, on tiny runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

# Two tiny digits fusions whose images are resized to different sizes (16 and 20 px): one raw
# ``image`` input must feed both members' in-graph preprocessing.
REGISTRY = textwrap.dedent("""
    models:
      io_a:
        description: tiny digits fusion, 16 px images
        text: {encoder: small_text, dim: 16, layers: 1}
        image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 16}
        fusion: concat
        head: {hidden: 16}
        task: {dataset: digits-match, label_set: digit}
        train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
      io_b:
        description: tiny digits fusion, 20 px images
        text: {encoder: small_text, dim: 16, layers: 1, max_length: 32}
        image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 20}
        fusion: gated
        head: {hidden: 16}
        task: {dataset: digits-match, label_set: digit}
        train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
""")


@pytest.fixture(scope="module")
def zoo(run_cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_io")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY)
    runs = root / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "mmzoo.cli", "--registry", str(registry), "train", model,
                               "--out", str(runs), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for model in ("io_a", "io_b")]
    trained = []
    for proc in procs:
        out, errors = proc.communicate(timeout=600)
        assert proc.returncode == 0, errors[-3000:]
        trained.append(json.loads(out)["run"])
    ens = run_cli("--registry", str(registry), "ensemble", "--runs", *trained, "--combiner", "mean",
                  "--name", "io_pair", "--out", str(runs), "--json")
    assert ens.returncode == 0, ens.stderr[-3000:]
    return SimpleNamespace(root=root, runs=runs, a=trained[0], pair=json.loads(ens.stdout)["run"])


@pytest.fixture(scope="module")
def raw(zoo):
    """The pair exported with --raw-image --sidecar --fixture under umask 027, and as a pixel_values export."""
    from mmzoo.onnx.export import export_run
    from mmzoo.runs.folders import find_run

    old = os.umask(0o027)
    try:
        result = export_run(find_run(zoo.pair, zoo.runs), zoo.root / "exports", raw_image=True, sidecar=True,
                            fixture=3)
    finally:
        os.umask(old)
    pixels = export_run(find_run(zoo.pair, zoo.runs), zoo.root / "exports")
    return SimpleNamespace(result=result, path=Path(result["path"]), pixels=Path(pixels["path"]))


def test_raw_image_export_reads_the_decoded_picture(raw):
    result = raw.result
    assert raw.path.name == "io_pair-raw-image.onnx" and result["opset"] == 18
    model = onnx.load(raw.path)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert "pixel_values" not in inputs and "m1_pixel_values" not in inputs
    image = inputs["image"]
    assert image.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param for d in image.shape.dim] == ["batch", "height", "width", "channels"]
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 4  # two members' sizes, two one-dimensional passes each
    assert all({a.name: a.i for a in n.attribute}["antialias"] == 1 for n in resizes)
    figures = result["parity"]["raw_image"]
    # All of digits-match's validation split up to the 512 cap, judged by the binomial rule.
    assert figures["samples"] == 512 == result["parity"]["fp32"]["samples"]
    assert figures["disagreements"] <= figures["allowed_disagreements"] == 9
    assert figures["argmax_agreement"] >= 0.98 and figures["max_abs_diff"] > 0


def test_raw_image_predict_agrees_with_the_pillow_path_on_any_size(run_cli, raw, tmp_path):
    from PIL import Image

    from mmzoo.data.digits_match import load_digits_match
    from mmzoo.onnx.runtime import Predictor

    samples = load_digits_match().split("test")[:12]
    images = []
    for k, sample in enumerate(samples):  # sizes vary, so the runtime batches runs of one size
        size = (32, 32) if k % 3 else (48 + k, 40)
        images.append(tmp_path / f"{k}.png")
        Image.fromarray(sample.image).resize(size, Image.NEAREST).save(images[-1])
    texts = [s.text for s in samples]
    ours = Predictor(raw.path, device="cpu").predict(texts, [str(p) for p in images], batch_size=5)
    pillow = Predictor(raw.pixels, device="cpu").predict(texts, [str(p) for p in images], batch_size=5)
    assert ours.shape == (12, 10) and np.allclose(ours.sum(1), 1, atol=1e-5)
    assert (ours.argmax(1) == pillow.argmax(1)).mean() >= 11 / 12 and np.abs(ours - pillow).max() < 0.1
    res = run_cli("predict", str(raw.path), "--text", texts[0], "--image", str(images[0]), "--json")
    assert res.returncode == 0, res.stderr
    assert abs(json.loads(res.stdout)["probabilities"][Predictor(raw.path).labels[0]] - ours[0, 0]) < 1e-5


def test_sidecar_holds_the_metadata_and_files_respect_the_umask(raw):
    from mmzoo.onnx import metadata as md

    sidecar = Path(raw.result["sidecar"])
    assert sidecar == raw.path.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    meta = md.read(raw.path)
    assert data["model"] == raw.path.name and data["labels"] == meta["labels"]
    assert data["inputs"] == meta["inputs"] and data["preprocessing"] == meta["preprocessing"]
    assert data["image_input"] == "raw"
    (image,) = [p for p in data["preprocessing"] if p["modality"] == "image"]
    assert image["config"]["kind"] == "raw_image"
    assert [s["feeds"] for s in image["config"]["graph_steps"]] == ["pixel_values", "m1_pixel_values"]
    fixture = Path(raw.result["fixture"])
    for path in (raw.path, sidecar, fixture / "fixture.json", fixture / "samples" / "000.png"):
        assert path.stat().st_mode & 0o777 == 0o640, path  # 0666 less umask 027, not mkstemp's 0600
    assert fixture.stat().st_mode & 0o777 == 0o750
    assert not [p for p in raw.path.parent.iterdir() if p.name.startswith(".")]


def test_fixture_inputs_reproduce_the_expected_outputs(raw):
    import onnxruntime as ort

    from mmzoo.data.preprocess import decode_array

    folder = Path(raw.result["fixture"])
    fixture = json.loads((folder / "fixture.json").read_text())
    assert fixture["model"] == raw.path.name and len(fixture["samples"]) == 3
    session = ort.InferenceSession(str(raw.path), providers=["CPUExecutionProvider"])
    for sample in fixture["samples"]:
        feeds = {}
        for name, desc in sample["inputs"].items():
            data = np.frombuffer((folder / desc["file"]).read_bytes(), dtype=np.dtype(desc["dtype"]).newbyteorder("<"))
            feeds[name] = data.reshape(desc["shape"])
            if "values" in desc:
                assert desc["values"] == data.tolist()
        assert set(feeds) == {i.name for i in session.get_inputs()}
        probs = session.run(["probs"], feeds)[0][0]
        assert np.abs(probs - np.asarray(sample["probs"])).max() <= fixture["probs_tolerance"]
        decoded = np.frombuffer((folder / sample["decoded"]["file"]).read_bytes(), np.uint8)
        assert (decoded.reshape(sample["decoded"]["shape"]) == feeds["image"][0]).all()
    names = {Path(c["image"]).name for c in fixture["decode_cases"]}
    assert {"grey16.png", "rgb_colour_key.png", "exif_orientation_6.png"} <= names
    for case in fixture["decode_cases"]:
        want = np.frombuffer((folder / case["decoded"]["file"]).read_bytes(), np.uint8)
        assert (decode_array(folder / case["image"]).reshape(-1) == want).all()


def test_raw_image_needs_opset_18(zoo, tmp_path, capsys):
    from mmzoo.cli import main

    assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(tmp_path / "x"), "--raw-image",
                 "--opset", "17"]) == 1
    assert "needs opset 18" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_binomial_parity_rule():
    from mmzoo.onnx.parity import allowed_disagreements

    # One disagreement in 64 (98.4%) is what a 99%-agreeing graph shows often; 3 in 64 is not.
    assert allowed_disagreements(64) == 2
    assert allowed_disagreements(512) == 9
    assert allowed_disagreements(10) == 1
    assert allowed_disagreements(100, min_agreement=1.0) == 0


def test_low_precision_failure_names_samples(zoo, tmp_path, monkeypatch, capsys):
    from mmzoo.cli import main
    from mmzoo.onnx import parity

    monkeypatch.setattr(parity, "LOW_PRECISION_MIN_AGREEMENT", 1.01)
    assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(tmp_path / "q"), "--quantize", "int8",
                 "--samples", "40"]) == 1
    err = capsys.readouterr().err
    assert "int8 parity check on 40 validation samples" in err and "--samples N" in err and "--opset" not in err
