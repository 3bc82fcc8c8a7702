"""Merged ensemble graphs compute each shared frozen encoder once; int8 exports of every fusion load and run.

Tiny untrained models (small_text + small_cnn) built in memory: no training, seconds per test.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
import onnx
import pytest

# One frozen text and image encoder for every member (their weights are copied from the first
# member, as a frozen pretrained encoder would be), plus a member that fine-tuned its text encoder.
ENCODERS = """
    text: {encoder: small_text, dim: 16, layers: 1, max_length: 24, freeze: FREEZE}
    image: {encoder: small_cnn, dim: 16, channels: [8, 16], image_size: 16, freeze: true}
    head: {hidden: 16}
    task: {dataset: digits-match, label_set: digit}
"""
REGISTRY = "models:\n" + "".join(
    textwrap.indent(f"{name}:\n  description: tiny {name}\n" + textwrap.indent(
        textwrap.dedent(ENCODERS).replace("FREEZE", freeze) + extra, "  "), "  ")
    for name, freeze, extra in [
        ("t_concat", "true", "fusion: concat\n"),
        ("t_gated", "true", "fusion: gated\n"),
        ("t_bilinear", "true", "fusion: {name: bilinear, rank: 4}\n"),
        ("t_cross", "true", "fusion: {name: cross_attention, dim: 16, heads: 2}\n"),
        ("t_tuned", "false", "fusion: concat\n"),
    ])
CLASSES = 10


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    path = tmp_path_factory.mktemp("shared") / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def _model(name: str, registry, seed: int, text_only: bool = False):
    import torch

    from mmzoo.train.factory import create_model, resolve_spec

    spec = resolve_spec(name, str(registry))
    if text_only:
        spec = {**spec, "image": None, "fusion": None}
    torch.manual_seed(seed)
    return create_model(spec, num_classes=CLASSES).eval()


def _source(models):
    """An in-memory ensemble Source over ``models`` with a mean combiner (no run folder needed)."""
    from mmzoo.combiners.mean import MeanCombiner
    from mmzoo.onnx.source import Source, plan_inputs

    first: dict = {}
    for model in models:  # frozen encoders are shared pretrained weights: make them identical
        for modality in model.modalities:
            encoder = getattr(model, f"{modality}_encoder")
            if getattr(encoder, "frozen", False):
                encoder.load_state_dict(first.setdefault(modality, encoder).state_dict())
    groups, member_inputs = plan_inputs(models)
    return Source(run=None, kind="ensemble", member_names=[f"member{k}" for k in range(len(models))], models=models,
                  combiner=MeanCombiner(len(models), CLASSES).eval(), classes=[str(c) for c in range(CLASSES)],
                  preprocessing=groups, member_inputs=member_inputs, dataset_spec="digits-match", label_set="digit")


@pytest.fixture(scope="module")
def feeds():
    """Two batches of real digits-match samples: sizes 2 (traced) and 7 (texts of different lengths)."""
    from mmzoo.data.digits_match import load_digits_match

    samples = load_digits_match().split("val")[:9]
    return samples[:2], samples[2:]


def _batch(source, samples):
    return source.feeds([s.text for s in samples], [s.image for s in samples])


def _run(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(["probs"], feed)[0]


def _encoder_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """Encoder-graph prefix (e<j>) -> node count in a merged graph."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        head = node.name.split("_", 1)[0]
        if head[:1] == "e" and head[1:].isdigit():
            counts[head] = counts.get(head, 0) + 1
    return counts


def test_three_members_sharing_frozen_encoders_hold_one_copy_and_match_torch(registry, feeds, tmp_path):
    from mmzoo.onnx import graphs, shared
    from mmzoo.onnx.quantize import convert_fp16, quantize_int8

    models = [_model(n, registry, seed) for seed, n in enumerate(["t_concat", "t_gated", "t_cross"])]
    source = _source(models)
    example = _batch(source, feeds[0])
    plans = shared.plan_encoders(source.models, source.member_inputs)
    assert [(p.modality, p.members) for p in plans] == [("text", [0, 1, 2]), ("image", [0, 1, 2])]
    merged = shared.build_graph(source, example, graphs.DEFAULT_OPSET)
    before = shared.build_graph(source, example, graphs.DEFAULT_OPSET, share_encoders=False)
    # The merged graph holds exactly one copy of each encoder's nodes: as many as a lone trace of it.
    alone = [graphs.encoder_graph(p.encoder, p.inputs, example, list(p.outputs), graphs.DEFAULT_OPSET, "x")
             for p in plans]
    counts = _encoder_nodes(merged)
    assert sorted(counts) == ["e0", "e1"]
    for j, graph in enumerate(alone):
        assert 0 < counts[f"e{j}"] <= len(graph.graph.node)
    assert len(merged.graph.node) < len(before.graph.node) - sum(counts.values())
    # Nothing but the member heads reads an encoder's features, and each encoder op reads its inputs once.
    n_text_ops = sum(1 for n in merged.graph.node if "input_ids" in n.input)
    assert n_text_ops == sum(1 for n in alone[0].graph.node if "input_ids" in n.input)
    for samples in feeds:
        batch = _batch(source, samples)
        want = source.probs(batch)
        for graph in (merged, before):
            got = _run(graph, batch)
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-4  # the export's fp32 parity threshold
    # The reduced-precision copies of the shared graph load and run too.
    onnx.save(merged, str(tmp_path / "fp32.onnx"))
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    convert_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    batch = _batch(source, feeds[1])
    for name in ("int8", "fp16"):
        got = _run(onnx.load(str(tmp_path / f"{name}.onnx")), batch)
        assert np.abs(got - source.probs(batch)).max() < 0.05


def test_a_fine_tuned_encoder_keeps_its_own_copy(registry, feeds):
    from mmzoo.onnx import graphs, shared

    models = [_model("t_concat", registry, 0), _model("t_tuned", registry, 1), _model("t_gated", registry, 2)]
    source = _source(models)
    plans = shared.plan_encoders(source.models, source.member_inputs)
    # text: shared by 0 and 2, the fine-tuned member 1 has its own; image: frozen in all three.
    assert [(p.modality, p.members, p.shared_key is not None) for p in plans] == [
        ("text", [0, 2], True), ("image", [0, 1, 2], True), ("text", [1], False)]
    example = _batch(source, feeds[0])
    merged = shared.build_graph(source, example, graphs.DEFAULT_OPSET)
    assert sorted(_encoder_nodes(merged)) == ["e0", "e1", "e2"]
    batch = _batch(source, feeds[1])
    assert np.abs(_run(merged, batch) - source.probs(batch)).max() <= 1e-4


def test_different_weights_or_preprocessing_are_not_shared(registry):
    import torch

    from mmzoo.onnx import shared

    a, b = _model("t_concat", registry, 0), _model("t_gated", registry, 1)
    with torch.no_grad():  # a frozen encoder with other weights (e.g. another checkpoint) is another encoder
        next(b.image_encoder.parameters()).add_(1.0)
    source = _source([a, b])
    with torch.no_grad():
        next(b.image_encoder.parameters()).add_(1.0)
    plans = shared.plan_encoders(source.models, source.member_inputs)
    assert [(p.modality, p.members) for p in plans] == [("text", [0, 1]), ("image", [0]), ("image", [1])]


def test_text_only_and_fused_members_share_the_text_encoder(registry, feeds):
    from mmzoo.onnx import graphs, shared

    models = [_model("t_concat", registry, 0, text_only=True), _model("t_concat", registry, 1)]
    source = _source(models)
    plans = shared.plan_encoders(source.models, source.member_inputs)
    assert [(p.modality, p.members) for p in plans] == [("text", [0, 1]), ("image", [1])]
    merged = shared.build_graph(source, _batch(source, feeds[0]), graphs.DEFAULT_OPSET)
    batch = _batch(source, feeds[1])
    assert np.abs(_run(merged, batch) - source.probs(batch)).max() <= 1e-4


def _fusion_entries():
    from mmzoo.zoo.plugins import get_zoo

    return sorted(get_zoo().names("fusion"))


@pytest.mark.parametrize("fusion", _fusion_entries())
def test_every_registered_fusion_exports_to_int8(fusion, tmp_path, feeds):
    """Each fusion's tiny member, fp32 -> int8: onnxruntime loads and runs it, close to fp32."""
    from mmzoo.onnx import graphs
    from mmzoo.onnx.quantize import quantize_int8
    from mmzoo.onnx.source import plan_inputs
    from mmzoo.train.factory import create_model, resolve_spec

    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n  one:\n    description: tiny\n" + textwrap.indent(
        textwrap.dedent(ENCODERS).replace("FREEZE", "true") + f"fusion: {fusion}\n", "    "))
    model = create_model(resolve_spec("one", str(registry)), num_classes=CLASSES).eval()
    _, (inputs,) = plan_inputs([model])
    source = _source([model])
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(graphs.member_graph(model, inputs, _batch(source, feeds[0]), graphs.DEFAULT_OPSET), str(fp32))
    quantize_int8(fp32, int8)
    batch = _batch(source, feeds[1])
    want = _run(onnx.load(str(fp32)), batch)
    quantized = onnx.load(str(int8))
    assert any(n.op_type == "MatMulInteger" for n in quantized.graph.node)  # int8 where the kernel allows
    got = _run(quantized, batch)
    assert got.shape == want.shape and np.allclose(got.sum(1), 1.0, atol=1e-4)
    assert np.abs(got - want).max() < 0.1


def test_bench_times_the_other_settings_when_one_fails():
    from mmzoo.onnx.bench import _round_robin, render

    calls = {"ok": 0}

    def ok():
        calls["ok"] += 1

    def crashes():
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : MatmulInteger :\n b zero point is not valid")

    failed: dict[str, str] = {}
    times = _round_robin({"torch eager": ok, "onnxruntime merged int8": crashes}, rounds=4, failed=failed)
    assert list(times) == ["torch eager"] and len(times["torch eager"]) == 4 and calls["ok"] == 3 + 4
    assert failed == {"onnxruntime merged int8": "RuntimeError: [ONNXRuntimeError] : 1 : FAIL : MatmulInteger : "
                                                 "b zero point is not valid"}
    row = {"setting": "torch eager", "batch1_ms": 2.0, "batch1_speedup": 1.0, "batch_per_s": 100.0,
           "batch_speedup": 1.0, "batch1_gflops": 1.0, "batch_gflops": 2.0, "batch1_peak_fraction": 0.01,
           "batch_peak_fraction": 0.02}
    report = {"run": "r/1", "kind": "model", "members": ["r/1"], "threads": 1, "torch": "t", "onnxruntime": "o",
              "cpu": "cpu", "load_average": (1.0, 1.0), "batch_size": 8, "peak_gflops": 100.0,
              "gflop_per_sample_batch1": 0.1, "rows": [row, {"setting": "onnxruntime merged int8",
                                                              "failed": failed["onnxruntime merged int8"]}],
              "failed": [{"setting": k, "error": v} for k, v in failed.items()], "int8_parity": None,
              "int8_vs_fp32_batch1": None}
    text = render(report)
    assert re.search(r"^onnxruntime merged int8 +FAILED$", text, re.MULTILINE)
    assert text.splitlines()[-1] == f"FAILED onnxruntime merged int8: {failed['onnxruntime merged int8']}"
