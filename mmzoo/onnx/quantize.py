"""Provides reduced-precision copies of a float32 graph: int8 MatMul/Gemm weights, or fp16 (torch-free).

Quantizing every op type was measured 4-6x SLOWER on this CPU (int8 convolutions and
the quantize/dequantize pairs around them cost more than they save), while MatMul/Gemm
only keeps the speed-up where the FLOPs are: transformer and head matmuls.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mmzoo.errors import ExportError

OP_TYPES = ["MatMul", "Gemm"]


def quantizable_nodes(model) -> list[str]:
    """Names of the MatMul/Gemm nodes whose weight onnxruntime's int8 kernels take: a 2-D initializer.

    A MatMul whose second input is a batched (3-D or more) weight, e.g. the bilinear fusion's
    (rank, in, out) factors, or an activation, stays float32: with per-channel scales its
    DynamicQuantizeMatMul is rejected at run time ("b zero point is not valid").
    """
    weights = {init.name: len(init.dims) for init in model.graph.initializer}  # the exporter folds weights here
    names = []
    for n in model.graph.node:
        if n.op_type in OP_TYPES and len(n.input) > 1 and weights.get(n.input[1]) == 2:
            names.append(n.name)
            if n.op_type == "Gemm":  # dynamic quantization first rewrites a Gemm as "<name>_MatMul" + Add
                names.append(f"{n.name}_MatMul")
    return names


def quantize_int8(src: Path, dst: Path) -> None:
    """Write an int8 (weights) copy of the float32 graph at ``src`` to ``dst``; see quantizable_nodes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = quantizable_nodes(onnx.load(str(src), load_external_data=False))
    if not nodes:  # an empty list would mean "every node" to quantize_dynamic
        raise ExportError(f"{src.name} has no MatMul/Gemm node with a 2-D constant weight to quantize",
                          hint="export without --quantize")

    # onnxruntime.quantization logs a line per skipped node at WARNING; none is actionable here.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        # Per-channel scales: with one scale per tensor, MiniLM's int8 text member disagreed with
        # fp32 on 2.3% of emoji validation samples; per output channel it was 1.6%, and 0% for the ensemble.
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=OP_TYPES, nodes_to_quantize=nodes,
                         weight_type=QuantType.QInt8, per_channel=True)
    except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many types
        raise ExportError(f"int8 quantization of {src.name} failed: {type(exc).__name__}: {exc}",
                          hint="export without --quantize") from None
    finally:
        logger.setLevel(level)


def convert_fp16(src: Path, dst: Path) -> None:
    """Write a float16 copy of ``src`` with float32 inputs and outputs, so callers feed the same arrays.

    The combiner's nodes stay float32: they are cheap, and the stacking combiner's
    log-probability floor (1e-7) is close to the smallest float16 value.
    """
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise ExportError("--fp16 needs the onnxconverter-common package, which is not installed",
                          hint="pip install onnxconverter-common") from None
    model = onnx.load(str(src))
    keep = [n.name for n in model.graph.node if n.name.startswith("combiner_")]
    try:
        half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    except Exception as exc:  # the converter raises plain exceptions of many types
        raise ExportError(f"fp16 conversion of {src.name} failed: {type(exc).__name__}: {exc}",
                          hint="export without --fp16") from None
    _retarget_casts(half)
    onnx.save(half, str(dst))


def _retarget_casts(model) -> None:
    """Make the graph's own Cast-to-float32 nodes produce float16, as the converter typed their outputs.

    The converter retypes every intermediate value to float16 but leaves a Cast's ``to``
    attribute alone, which onnxruntime rejects as a type mismatch.
    """
    from onnx import TensorProto

    half = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in half:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
