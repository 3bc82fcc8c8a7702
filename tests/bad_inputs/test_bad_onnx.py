"""ONNX files whose mmzoo metadata is wrong are refused before use, naming the file and the key."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from badinput import assert_refused, run, workspace  # noqa: F401
from onnx import TensorProto, helper
from PIL import Image

from mmzoo.onnx import metadata

GOOD = {
    "format_version": metadata.FORMAT_VERSION,
    "version": "test",
    "kind": "model",
    "precision": "fp32",
    "labels": ["dark", "light"],
    "inputs": [{"name": "pixel_values", "type": "float32", "shape": ["batch", 3, 4, 4], "preprocessing": 0,
                "field": "pixel_values"}],
    "outputs": [{"name": "probs", "type": "float32", "shape": ["batch", 2]}],
    "preprocessing": [{"id": 0, "modality": "image", "inputs": {"pixel_values": "pixel_values"}, "members": [0],
                       "config": {"kind": "image", "resize": 4, "crop": 4, "mean": [0, 0, 0], "std": [1, 1, 1]}}],
    "members": [{"index": 0, "run": "tiny/1", "inputs": ["pixel_values"]}],
    "spec": {},
    "parity": {},
}


def tiny_model(meta: dict) -> onnx.ModelProto:
    """pixel_values (B, 3, 4, 4) -> mean per channel -> (B, 3) @ W (3, 2) -> softmax: a real 2-class graph."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], np.array([[4, -4], [0, 0], [0, 0]], np.float32)
                                 .ravel().tolist())
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "tiny",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata.set_props(model, meta)
    return model


def write(ws, meta: dict, name: str = "tiny.onnx"):
    path = ws.root / name
    onnx.save(tiny_model(meta), str(path))
    return path


@pytest.fixture
def image(ws):
    path = ws.root / "red.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    return path


def test_the_well_formed_file_predicts(ws, capsys, image):
    result = run(capsys, "predict", write(ws, GOOD), "--image", image, "--json")
    assert result.rc == 0, result.err
    assert "dark" in result.out


def _broken(change):
    meta = copy.deepcopy(GOOD)
    change(meta)
    return meta


CASES = {
    "negative format_version": (lambda m: m.update(format_version=-1), "format_version -1"),
    "zero format_version": (lambda m: m.update(format_version=0), "format_version 0"),
    "labels not a list": (lambda m: m.update(labels="dark,light"), "mmzoo.labels"),
    "one label": (lambda m: m.update(labels=["dark"]), "at least two"),
    "duplicate labels": (lambda m: m.update(labels=["dark", "dark"]), "twice"),
    "label not a string": (lambda m: m.update(labels=["dark", 7]), "mmzoo.labels"),
    "more labels than columns": (lambda m: m.update(labels=["a", "b", "c"]), "3 labels but the output has 2"),
    "unknown kind": (lambda m: m.update(kind="pipeline"), "mmzoo.kind"),
    "preprocessing empty": (lambda m: m.update(preprocessing=[]), "mmzoo.preprocessing"),
    "preprocessing not objects": (lambda m: m.update(preprocessing=["image"]), "mmzoo.preprocessing[0]"),
    "unknown modality": (lambda m: m["preprocessing"][0].update(modality="audio"), "modality"),
    "config of another kind": (lambda m: m["preprocessing"][0]["config"].update(kind="text"), "config"),
    "config unusable": (lambda m: m["preprocessing"][0]["config"].update(interpolation="sideways"),
                        "mmzoo.preprocessing metadata is unusable"),
    "config missing resize": (lambda m: m["preprocessing"][0]["config"].pop("resize"),
                              "mmzoo.preprocessing metadata is unusable"),
    "feeds an unknown field": (lambda m: m["preprocessing"][0].update(inputs={"input_ids": "pixel_values"}),
                               "inputs must map pixel_values"),
    "feeds an unlisted input": (lambda m: m["preprocessing"][0].update(inputs={"pixel_values": "px"}),
                                "does not list"),
    "inputs unlike the graph": (lambda m: (m["inputs"][0].update(name="px"),
                                           m["preprocessing"][0].update(inputs={"pixel_values": "px"})),
                                "graph's inputs are"),
    "inputs not a list": (lambda m: m.update(inputs={"name": "pixel_values"}), "mmzoo.inputs"),
    "outputs empty": (lambda m: m.update(outputs=[]), "mmzoo.outputs"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_metadata_is_refused_naming_file_and_key(ws, capsys, image, case):
    change, says = CASES[case]
    path = write(ws, _broken(change))
    ws.freeze()
    assert_refused(run(capsys, "predict", path, "--image", image), "tiny.onnx", says)
    ws.assert_unchanged()


def test_metadata_that_is_not_json_is_refused(ws, capsys, image):
    model = tiny_model(GOOD)
    for prop in model.metadata_props:
        if prop.key == "mmzoo.labels":
            prop.value = "[dark, light"
    path = ws.root / "tiny.onnx"
    onnx.save(model, str(path))
    assert_refused(run(capsys, "predict", path, "--image", image), "tiny.onnx", "mmzoo.labels is not valid JSON")
