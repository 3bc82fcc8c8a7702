"""ONNX export, the torch-free runtime, `mmzoo predict`, the standalone example and `mmzoo bench` on tiny runs."""

from __future__ import annotations

import json
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

# Two tiny fusions on digits-match's 10-class "digit" labels (confident after 2 epochs), with
# different tokenizer lengths and image sizes so the merged ensemble needs two input sets.
REGISTRY = textwrap.dedent("""
    models:
      tiny_a:
        description: tiny digits fusion for the ONNX tests
        text: {encoder: small_text, dim: 16, layers: 1}
        image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 16}
        fusion: concat
        head: {hidden: 16}
        task: {dataset: digits-match, label_set: digit}
        train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
      tiny_b:
        description: tiny digits fusion with its own preprocessing (20 px images, 32 characters)
        text: {encoder: small_text, dim: 16, layers: 1, max_length: 32}
        image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 20}
        fusion: gated
        head: {hidden: 16}
        task: {dataset: digits-match, label_set: digit}
        train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
""")
FORBIDDEN = ("torch", "transformers", "timm")


@pytest.fixture(scope="module")
def zoo(run_cli, tmp_path_factory):
    """Two trained members (trained side by side) and their stacking ensemble."""
    root = tmp_path_factory.mktemp("onnx")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY)
    runs = root / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "mmzoo.cli", "--registry", str(registry), "train", model,
                               "--out", str(runs), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for model in ("tiny_a", "tiny_b")]
    trained = []
    for proc in procs:
        out, errors = proc.communicate(timeout=600)
        assert proc.returncode == 0, errors[-3000:]
        trained.append(json.loads(out)["run"])
    ens = run_cli("--registry", str(registry), "ensemble", "--runs", *trained, "--combiner", "stacking",
                  "--name", "tiny_pair", "--out", str(runs), "--json")
    assert ens.returncode == 0, ens.stderr[-3000:]
    return SimpleNamespace(root=root, runs=runs, a=trained[0], b=trained[1], pair=json.loads(ens.stdout)["run"])


@pytest.fixture(scope="module")
def exported(zoo):
    from mmzoo.onnx.export import export_run
    from mmzoo.runs.folders import find_run

    member = export_run(find_run(zoo.a, zoo.runs), zoo.root / "exports")
    pair = export_run(find_run(zoo.pair, zoo.runs), zoo.root / "exports")
    return SimpleNamespace(member=member, pair=pair)


@pytest.fixture(scope="module")
def images(zoo):
    """A digit as a plain RGB PNG and as a non-square, partly transparent RGBA PNG."""
    from PIL import Image

    from mmzoo.data.digits_match import load_digits_match

    sample = load_digits_match().split("test")[0]
    rgb = zoo.root / "digit.png"
    Image.fromarray(sample.image).save(rgb)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[:, 4:36, :3] = np.asarray(Image.fromarray(sample.image).resize((32, 30)))
    rgba[:, :, 3] = 255
    rgba[:, :4, 3] = 0
    rgba[:10, :, 3] = 128
    odd = zoo.root / "digit_rgba.png"
    Image.fromarray(rgba, "RGBA").save(odd)
    return SimpleNamespace(rgb=rgb, rgba=odd, text=sample.text)


def _load_source(ref, runs):
    from mmzoo.onnx.source import load_source
    from mmzoo.runs.folders import find_run

    return load_source(find_run(ref, runs))


def test_member_export_passes_parity_and_describes_itself(exported, zoo):
    from mmzoo import __version__
    from mmzoo.onnx import metadata

    fp32 = exported.member["parity"]["fp32"]
    # All of digits-match's validation split (538 samples), up to the 512 cap.
    assert fp32["samples"] == 512 and fp32["max_abs_diff"] <= 1e-4 and fp32["argmax_agreement"] == 1.0
    path = Path(exported.member["path"])
    assert path.name == "tiny_a.onnx" and not list(path.parent.glob(".mmzoo-export-*"))
    onnx.checker.check_model(str(path))
    meta = metadata.read(path)
    assert meta["format_version"] == metadata.FORMAT_VERSION and meta["version"] == __version__
    assert meta["kind"] == "model" and meta["precision"] == "fp32"
    assert meta["labels"] == [str(d) for d in range(10)]
    assert [(i["name"], i["type"], i["shape"]) for i in meta["inputs"]] == [
        ("input_ids", "int64", ["batch", "sequence"]), ("attention_mask", "int64", ["batch", "sequence"]),
        ("pixel_values", "float32", ["batch", 3, 16, 16])]
    text, image = meta["preprocessing"]
    assert json.loads(text["config"]["tokenizer_json"])["model"]["type"] == "WordLevel"
    tc, ic = text["config"], image["config"]
    assert (tc["max_length"], tc["padding"], tc["truncation"]) == (64, "longest", True)
    assert (ic["resize"], ic["crop"], ic["interpolation"]) == (16, 16, "bilinear")
    assert len(ic["mean"]) == len(ic["std"]) == 3 and ic["background"]
    assert meta["spec"]["model"]["name"] == "tiny_a" and meta["parity"]["fp32"] == fp32
    assert meta["outputs"][0]["name"] == "probs" and meta["outputs"][0]["shape"] == ["batch", 10]


def test_dynamic_batch_and_sequence_match_torch(exported, zoo):
    from mmzoo.onnx.runtime import Predictor

    source = _load_source(zoo.a, zoo.runs)
    samples, _ = source.validation(7)
    texts, imgs = [s.text for s in samples], [s.image for s in samples]
    assert len({len(t) for t in texts}) > 1  # padding to the longest is exercised
    predictor = Predictor(exported.member["path"], device="cpu")
    batch7 = predictor.predict(texts, imgs)  # (7, C)
    one_by_one = np.concatenate([predictor.predict([t], [i]) for t, i in zip(texts, imgs, strict=True)])
    want = source.probs(source.feeds(texts, imgs))
    assert batch7.shape == (7, 10)
    assert np.abs(batch7 - want).max() <= 1e-4
    assert np.abs(one_by_one - want).max() <= 1e-4


def test_ensemble_exports_as_one_merged_graph(exported, zoo):
    import onnxruntime as ort

    from mmzoo.onnx import metadata

    path = exported.pair["path"]
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "pixel_values", "m1_input_ids",
                                             "m1_attention_mask", "m1_pixel_values"]
    assert [o.name for o in graph.output] == ["probs", "member_probs"]
    meta = metadata.read(path)
    assert meta["kind"] == "ensemble" and meta["combiner"] == "stacking"
    assert [m["run"] for m in meta["members"]] == [zoo.a, zoo.b]
    by_id = {p["id"]: p for p in meta["preprocessing"]}
    assert by_id["m1_image"]["config"]["resize"] == 20 and by_id["image"]["config"]["resize"] == 16
    assert by_id["m1_text"]["config"]["max_length"] == 32 and by_id["m1_text"]["inputs"]["input_ids"] == "m1_input_ids"

    source = _load_source(zoo.pair, zoo.runs)
    samples, _ = source.validation(40)
    feeds = source.feeds([s.text for s in samples], [s.image for s in samples])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    probs, members = session.run(["probs", "member_probs"], feeds)
    assert probs.shape == (40, 10) and members.shape == (40, 2, 10)
    assert np.abs(probs - source.probs(feeds)).max() <= 1e-4
    assert np.abs(members - source.member_probs(feeds).numpy()).max() <= 1e-4
    assert exported.pair["parity"]["fp32"]["max_abs_diff"] <= 1e-4


def test_members_sharing_weights_are_stored_once(exported, zoo):
    import onnxruntime as ort

    from mmzoo.combiners.mean import MeanCombiner
    from mmzoo.onnx import graphs, merge

    member = onnx.load(exported.member["path"])
    combiner = graphs.combiner_graph(MeanCombiner(2, 10), 2, 10, graphs.DEFAULT_OPSET)
    merged = merge.merge_ensemble([member, member], combiner)

    def weight_bytes(model):
        return sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)

    assert weight_bytes(member) <= weight_bytes(merged) <= weight_bytes(member) + 64
    source = _load_source(zoo.a, zoo.runs)
    samples, _ = source.validation(5)
    feeds = source.feeds([s.text for s in samples], [s.image for s in samples])
    session = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    probs, members = session.run(["probs", "member_probs"], feeds)
    want = source.probs(feeds)
    assert np.abs(probs - want).max() <= 1e-5 and np.abs(members - want[:, None]).max() <= 1e-5


def test_int8_export_quantizes_matmul_and_gemm_only(zoo, capsys):
    from mmzoo.cli import main

    out = zoo.root / "int8"
    assert main(["export", zoo.pair, "--out", str(zoo.runs), "-o", str(out), "--quantize", "int8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    int8 = result["parity"]["int8"]
    assert int8["argmax_agreement"] >= 0.99 and "val_accuracy_change" in int8
    assert result["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    ops = {n.op_type for n in onnx.load(result["path"]).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops and "ConvInteger" not in ops
    assert Path(result["path"]).name == "tiny_pair-int8.onnx"


def test_fp16_export_keeps_float32_io(zoo, capsys):
    from mmzoo.cli import main

    out = zoo.root / "fp16"
    assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(out), "--fp16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["parity"]["fp16"]["argmax_agreement"] >= 0.99
    model = onnx.load(result["path"])
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    pixel = next(i for i in model.graph.input if i.name == "pixel_values")
    assert pixel.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_opset_option(zoo, tmp_path, capsys):
    from mmzoo.cli import main

    assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(tmp_path), "--opset", "18", "--json"]) == 0
    model = onnx.load(json.loads(capsys.readouterr().out)["path"])
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(tmp_path / "old"), "--opset", "11"]) == 1
    assert "outside what mmzoo exports (13-20)" in capsys.readouterr().err and not (tmp_path / "old").exists()


@pytest.mark.parametrize("knob,value,flag", [("FP32_MAX_ABS_DIFF", -1.0, []),
                                             ("LOW_PRECISION_MIN_AGREEMENT", 1.01, ["--quantize", "int8"])])
def test_failed_parity_writes_nothing_and_fails(zoo, tmp_path, monkeypatch, capsys, knob, value, flag):
    from mmzoo.cli import main
    from mmzoo.onnx import parity

    monkeypatch.setattr(parity, knob, value)
    fresh = tmp_path / "new" / "dir"
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    for target in (fresh, existing):
        assert main(["export", zoo.a, "--out", str(zoo.runs), "-o", str(target), *flag]) == 1
        assert "parity check" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def _digits_manifest(folder: Path, rows: int) -> Path:
    """A manifest folder of digits-match test samples labelled with their digit."""
    from PIL import Image

    from mmzoo.data.digits_match import load_digits_match

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, sample in enumerate(load_digits_match().split("test")[:rows]):
        Image.fromarray(sample.image).save(folder / f"{k}.png")
        lines.append(json.dumps({"text": sample.text, "image": f"{k}.png", "label": sample.labels["digit"]}) + "\n")
    (folder / "manifest.jsonl").write_text("".join(lines))
    return folder


def test_predict_never_imports_torch(exported, images, tmp_path):
    manifest = _digits_manifest(tmp_path / "data", 3)
    path = exported.pair["path"]
    script = textwrap.dedent(f"""
        import sys
        from mmzoo.cli import main
        one = main(["predict", {path!r}, "--text", "seven", "--image", {str(images.rgb)!r}, "--json"])
        many = main(["predict", {path!r}, "--manifest", {str(manifest)!r}])
        print("LOADED", [m for m in {FORBIDDEN!r} if m in sys.modules], one, many)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "LOADED [] 0 0"
    report = json.loads(res.stdout[:res.stdout.index("\n}\n") + 2])
    assert len(report["top_k"]) == 5 and abs(sum(report["probabilities"].values()) - 1) < 1e-4
    assert "3 samples" in res.stdout


def test_standalone_example_matches_mmzoo_predict(run_cli, exported, images):
    args = ["--text", images.text, "--image", str(images.rgba), "--top-k", "3", "--json"]
    ours = run_cli("predict", exported.pair["path"], *args)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run([sys.executable, str(ROOT / "examples" / "predict_standalone.py"), exported.pair["path"],
                             *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert theirs.returncode == 0, theirs.stderr
    a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert [t["label"] for t in a["top_k"]] == [t["label"] for t in b["top_k"]]
    assert a["probabilities"].keys() == b["probabilities"].keys()
    assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= 1e-6


def test_predict_manifest_reports_metrics(run_cli, exported, tmp_path):
    folder = _digits_manifest(tmp_path, 8)
    res = run_cli("predict", exported.member["path"], "--manifest", str(folder), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    preds = report["predictions"]
    assert report["metrics"]["n"] == 8 and len(preds) == 8
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean([p["label"] == p["predicted"] for p in preds]))
    text = run_cli("predict", exported.member["path"], "--manifest", str(folder))
    assert "accuracy" in text.stdout and "macro avg" in text.stdout


@pytest.fixture(scope="module")
def foreign_files(exported, zoo):
    """A text file, an ONNX model without mmzoo metadata, and an export claiming a newer format."""
    from mmzoo.onnx import metadata

    folder = zoo.root / "foreign"
    folder.mkdir()
    (folder / "notes.onnx").write_text("this is not a model\n" * 20)
    model = onnx.load(exported.member["path"])
    newer = onnx.ModelProto()
    newer.CopyFrom(model)
    del model.metadata_props[:]
    onnx.save(model, str(folder / "plain.onnx"))
    meta = metadata.read(exported.member["path"])
    meta["format_version"] = metadata.FORMAT_VERSION + 1
    metadata.set_props(newer, meta)
    onnx.save(newer, str(folder / "newer.onnx"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    return folder


@pytest.mark.parametrize("case,expected", [
    ("missing image", "not found"),
    ("unreadable image", "could not be read"),
    ("empty text", "text is empty"),
    ("no image given", "reads an image"),
    ("not onnx", "is not an ONNX file"),
    ("not mmzoo", "not an mmzoo export"),
    ("newer format", "upgrade mmzoo"),
])
def test_predict_bad_input_gets_a_clear_error(run_cli, exported, images, foreign_files, case, expected):
    good = exported.member["path"]
    args = {
        "missing image": [good, "--text", "one", "--image", str(foreign_files / "nope.png")],
        "unreadable image": [good, "--text", "one", "--image", str(foreign_files / "broken.png")],
        "empty text": [good, "--text", "   ", "--image", str(images.rgb)],
        "no image given": [good, "--text", "one"],
        "not onnx": [str(foreign_files / "notes.onnx"), "--text", "one", "--image", str(images.rgb)],
        "not mmzoo": [str(foreign_files / "plain.onnx"), "--text", "one", "--image", str(images.rgb)],
        "newer format": [str(foreign_files / "newer.onnx"), "--text", "one", "--image", str(images.rgb)],
    }[case]
    res = run_cli("predict", *args)
    assert res.returncode == 1
    assert res.stderr.startswith("mmzoo: ") and expected in res.stderr and "Traceback" not in res.stderr


def test_bench_reports_every_setting_side_by_side(zoo, capsys):
    from mmzoo.cli import main

    assert main(["bench", zoo.pair, "--out", str(zoo.runs), "--repeats", "3", "--batch-size", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["setting"]: r for r in report["rows"]}
    assert list(rows) == ["torch eager", "onnxruntime, 2 sessions", "onnxruntime merged", "onnxruntime merged int8"]
    torch_row = rows["torch eager"]
    assert torch_row["batch1_speedup"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["batch1_speedup"] == pytest.approx(torch_row["batch1_ms"] / row["batch1_ms"])
        assert row["batch_per_s"] > 0 and 0 < row["batch1_peak_fraction"] < 1
        assert row["batch1_gflops"] == pytest.approx(row["batch1_peak_fraction"] * report["peak_gflops"])
    assert report["peak_gflops"] > 1 and report["gflop_per_sample_batch1"] > 0
    assert report["int8_vs_fp32_batch1"] == pytest.approx(rows["onnxruntime merged"]["batch1_ms"]
                                                          / rows["onnxruntime merged int8"]["batch1_ms"])
    assert report["fp32_parity"]["max_abs_diff"] <= 1e-4
