"""Provides ONNX graph merging: encoder, member and combiner graphs become one ensemble graph.

Encoder graphs (``e<j>_``-prefixed) read the graph inputs and produce features under
their own output names; each member graph (``m<k>_``-prefixed) reads graph inputs and/or
those feature names, so an encoder shared by several members runs once and feeds them
all (mmzoo.onnx.shared decides which members share). Members with the same
preprocessing read the same graph inputs. The members' probabilities are stacked to
(B, M, C) and handed to the combiner graph.
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
    """Keep one copy of byte-identical weights; returns how many copies were dropped.

    This only shrinks the file: the nodes that read a weight still run once per copy of
    them. Computing a shared encoder once is done explicitly, by merging it as one encoder
    graph (see merge_ensemble's ``encoders``).
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


def _subgraph_inputs(node: onnx.NodeProto) -> list[str]:
    """Every value name ``node`` reads, including outer-scope names read inside control-flow bodies."""
    names = list(node.input)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                names.extend(_subgraph_inputs(inner))
    return names


def prune(graph: onnx.GraphProto) -> int:
    """Drop nodes (and then initializers) that no graph output depends on; returns how many nodes went.

    An encoder graph returns pooled features, tokens and a mask; a value that no member
    reads would otherwise still be computed.
    """
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):  # nodes are in topological order
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(_subgraph_inputs(node))
    dropped = len(graph.node) - len(keep)
    if dropped:
        del graph.node[:]
        graph.node.extend(reversed(keep))
        inits = [i for i in graph.initializer if i.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(inits)
        infos = [v for v in graph.value_info if v.name in needed]
        del graph.value_info[:]
        graph.value_info.extend(infos)
    return dropped


def _add_inputs(inputs: dict[str, onnx.ValueInfoProto], graph: onnx.GraphProto, produced: set[str]) -> None:
    """Record ``graph``'s inputs as graph inputs of the merge, except features an encoder graph produces."""
    for value in graph.input:
        if value.name in produced:
            continue
        seen = inputs.get(value.name)
        if seen is not None and _input_type(seen) != _input_type(value):
            raise ExportError(f"members disagree on graph input {value.name!r}: "
                              f"{_input_type(seen)} vs {_input_type(value)}")
        inputs.setdefault(value.name, value)


def merge_ensemble(members: list[onnx.ModelProto], combiner: onnx.ModelProto,
                   encoders: list[onnx.ModelProto] = ()) -> onnx.ModelProto:
    """One model: the encoders' graphs, every member's graph, their (B, M, C) stack, then the combiner.

    ``encoders`` are whole-encoder graphs whose outputs carry their final names (they are
    not prefixed); a member graph whose input has such a name reads that encoder's output.
    The result maps the graph inputs to ``probs`` (B, C) and ``member_probs`` (B, M, C).
    """
    opsets = {(o.domain, o.version) for m in [*encoders, *members, combiner] for o in m.opset_import}
    if len({d for d, _ in opsets}) != len(opsets):
        raise ExportError(f"member and combiner graphs use different opsets {sorted(opsets)}",
                          hint="export every part with the same --opset")
    nodes, initializers, value_info = [], [], []
    inputs: dict[str, onnx.ValueInfoProto] = {}
    stacked_parts = []
    axis = helper.make_tensor("merge_axis_1", TensorProto.INT64, [1], [1])
    initializers.append(axis)
    produced: set[str] = set()
    for j, encoder in enumerate(encoders):
        graph = _prefixed(encoder, f"e{j}_", rename_outputs=False)
        _add_inputs(inputs, graph, produced)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        value_info.extend([*graph.value_info, *graph.output])  # the features become intermediate values
        produced.update(o.name for o in graph.output)
    for k, member in enumerate(members):
        graph = _prefixed(member, f"m{k}_")
        _add_inputs(inputs, graph, produced)
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
    prune(graph)
    share_identical_initializers(graph)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets)],
                               producer_name="mmzoo")
    merged.ir_version = max(m.ir_version for m in [*encoders, *members, combiner])
    try:
        onnx.checker.check_model(merged, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the merged ensemble graph failed onnx.checker: {exc}") from None
    return merged
