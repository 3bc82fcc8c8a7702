"""examples/node/ (onnxruntime-node, @huggingface/tokenizers, pngjs) against `mmzoo predict` and the export's fixture.

Runs when node and npm are on PATH; node_modules is installed once (`npm ci`) under examples/node/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]

NODE_DIR = ROOT / "examples" / "node"
SAMPLES = NODE_DIR / "samples" / "samples.jsonl"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                       reason="node and npm are not on PATH; install Node.js 18+ to run the JavaScript example"),
]

REGISTRY = textwrap.dedent("""
    models:
      node_tiny:
        description: tiny digits fusion for the Node example test
        text: {encoder: small_text, dim: 16, layers: 1}
        image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 20}
        fusion: concat
        head: {hidden: 16}
        task: {dataset: digits-match, label_set: digit}
        train: {epochs: 1, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
""")


@pytest.fixture(scope="module")
def node_modules():
    if not (NODE_DIR / "node_modules" / "onnxruntime-node" / "package.json").exists():
        res = subprocess.run(["npm", "ci"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from mmzoo.cli import main

    root = tmp_path_factory.mktemp("node")
    (root / "registry.yaml").write_text(REGISTRY)
    train = subprocess.run([sys.executable, "-m", "mmzoo.cli", "--registry", str(root / "registry.yaml"), "train",
                            "node_tiny", "--out", str(root / "runs"), "--json"], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    run = json.loads(train.stdout)["run"]
    assert main(["export", run, "--out", str(root / "runs"), "-o", str(root / "exports"), "--raw-image",
                 "--fixture", "3", "--samples", "128"]) == 0
    assert main(["export", run, "--out", str(root / "runs"), "-o", str(root / "exports"), "--samples", "32"]) == 0
    return SimpleNamespace(raw=root / "exports" / "node_tiny-raw-image.onnx", pixels=root / "exports" / "node_tiny.onnx",
                           fixture=root / "exports" / "node_tiny-raw-image.fixture")


def _node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(NODE_DIR / "predict.mjs"), *args], capture_output=True, text=True,
                          cwd=NODE_DIR, timeout=300)


def test_node_passes_the_export_fixture(node_modules, exported):
    res = _node(str(exported.raw), "--fixture", str(exported.fixture))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["ok"] and len(report["samples"]) == 3 and len(report["decode_cases"]) >= 5
    for row in report["samples"]:
        assert row["token_mismatches"] == [] and row["decoded_byte_mismatches"] == 0
        assert row["max_abs_diff_own_preprocessing"] <= 1e-5


def test_node_matches_mmzoo_predict_on_the_bundled_samples(node_modules, exported, capsys):
    from mmzoo.cli import main

    res = _node(str(exported.raw), "--samples", str(SAMPLES))
    assert res.returncode == 0, res.stderr[-3000:]
    theirs = [json.loads(line) for line in res.stdout.splitlines()]
    rows = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    assert len(theirs) == len(rows) == 6
    worst = 0.0
    for row, node in zip(rows, theirs, strict=True):
        image = str(SAMPLES.parent / row["image"])
        assert main(["predict", str(exported.raw), "--text", row["text"], "--image", image, "--json"]) == 0
        ours = json.loads(capsys.readouterr().out)["probabilities"]
        probs = list(ours.values())
        assert max(range(len(probs)), key=probs.__getitem__) == max(range(len(probs)), key=node["probabilities"].__getitem__)
        worst = max(worst, max(abs(a - b) for a, b in zip(probs, node["probabilities"], strict=True)))
    assert worst <= 1e-5  # same decoded bytes, same graph: onnxruntime-node vs onnxruntime in Python


def test_node_refuses_a_pixel_values_export(node_modules, exported):
    row = json.loads(SAMPLES.read_text().splitlines()[0])
    res = _node(str(exported.pixels), "--text", row["text"], "--image", str(SAMPLES.parent / row["image"]))
    assert res.returncode == 2 and "--raw-image" in res.stderr


def test_node_reads_metadata_from_the_protobuf(node_modules, exported):
    from mmzoo.onnx import metadata as md

    script = ("import { readMetadata } from './predict.mjs';"
              f"console.log(JSON.stringify(readMetadata({json.dumps(str(exported.raw))})));")
    res = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True,
                         cwd=NODE_DIR, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    theirs = json.loads(res.stdout)
    ours = md.read(Path(exported.raw))
    assert theirs["labels"] == ours["labels"] and theirs["preprocessing"] == ours["preprocessing"]
    assert int(theirs["format_version"]) == ours["format_version"]
