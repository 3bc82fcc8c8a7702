"""Provides ONNX graph merging: member graphs plus a combiner graph become one ensemble graph.

Each member keeps its own (``m<k>_``-prefixed) weights and nodes but reads the shared
graph inputs by name, so members with the same preprocessing are fed once. The
members' probabilities are stacked to (B, M, C) and handed to the combiner graph.
"""

from __future__ import annotations

import hashlib

import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from mmzoo.errors import ExportError

STACKED = "member_probs"
OUTPUT = "probs"


def _prefixed(model: onnx.ModelProto, prefix: str, rename_outputs: bool = True) -> onnx.GraphProto:
    # Inputs keep their names so that members with identical preprocessing share them.
    return compose.add_prefix(model, prefix, rename_inputs=False, rename_outputs=rename_outputs).graph


def _input_type(value: onnx.ValueInfoProto) -> tuple[int, tuple]:
    tensor = value.type.tensor_type
    return tensor.elem_type, tuple(d.dim_param or d.dim_value for d in tensor.shape.dim)


def _rename_inputs(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for attr in node.attribute:  # control-flow bodies may read outer-scope weights
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_inputs(sub, renames)


def share_identical_initializers(graph: onnx.GraphProto) -> int:
    """Keep one copy of byte-identical weights (e.g. a frozen encoder shared by several members).

    Besides halving the file for members that share a frozen encoder, this gives their encoder
    nodes identical inputs, so onnxruntime's common-subexpression elimination runs the shared
    encoder once per batch instead of once per member. Returns how many copies were dropped.
    """
    first: dict[tuple, str] = {}
    renames: dict[str, str] = {}
    keep = []
    for init in graph.initializer:
        data = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), hashlib.sha256(data.tobytes()).hexdigest())
        if key in first:
            renames[init.name] = first[key]
        else:
            first[key] = init.name
            keep.append(init)
    if renames:
        del graph.initializer[:]
        graph.initializer.extend(keep)
        _rename_inputs(graph, renames)
    return len(renames)


def merge_ensemble(members: list[onnx.ModelProto], combiner: onnx.ModelProto) -> onnx.ModelProto:
    """One model: every member's graph, their (B, M, C) stack, then the combiner -> ``probs`` (B, C)."""
    opsets = {(o.domain, o.version) for m in [*members, combiner] for o in m.opset_import}
    if len({d for d, _ in opsets}) != len(opsets):
        raise ExportError(f"member and combiner graphs use different opsets {sorted(opsets)}",
                          hint="export every part with the same --opset")
    nodes, initializers, value_info = [], [], []
    inputs: dict[str, onnx.ValueInfoProto] = {}
    stacked_parts = []
    axis = helper.make_tensor("merge_axis_1", TensorProto.INT64, [1], [1])
    initializers.append(axis)
    for k, member in enumerate(members):
        graph = _prefixed(member, f"m{k}_")
        for value in graph.input:
            seen = inputs.get(value.name)
            if seen is not None and _input_type(seen) != _input_type(value):
                raise ExportError(f"members disagree on graph input {value.name!r}: "
                                  f"{_input_type(seen)} vs {_input_type(value)}")
            inputs.setdefault(value.name, value)
        (out,) = graph.output
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        value_info.extend(graph.value_info)
        part = f"m{k}_{OUTPUT}_stacked"
        nodes.append(helper.make_node("Unsqueeze", [out.name, axis.name], [part], name=f"merge_unsqueeze_{k}"))
        stacked_parts.append(part)
    nodes.append(helper.make_node("Concat", stacked_parts, [STACKED], axis=1, name="merge_concat"))
    head = _prefixed(combiner, "combiner_", rename_outputs=False)
    if [i.name for i in head.input] != [STACKED] or [o.name for o in head.output] != [OUTPUT]:
        raise ExportError(f"combiner graph must map {STACKED!r} to {OUTPUT!r}, got "
                          f"{[i.name for i in head.input]} -> {[o.name for o in head.output]}")
    nodes.extend(head.node)
    initializers.extend(head.initializer)
    value_info.extend(head.value_info)
    classes = _input_type(members[0].graph.output[0])[1][-1]
    outputs = [
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", classes]),
        helper.make_tensor_value_info(STACKED, TensorProto.FLOAT, ["batch", len(members), classes]),
    ]
    graph = helper.make_graph(nodes, "mmzoo_ensemble", list(inputs.values()), outputs, initializers,
                              value_info=value_info)
    share_identical_initializers(graph)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets)],
                               producer_name="mmzoo")
    merged.ir_version = max(m.ir_version for m in [*members, combiner])
    try:
        onnx.checker.check_model(merged, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the merged ensemble graph failed onnx.checker: {exc}") from None
    return merged
