"""Provides export_run: a finished run (model or ensemble) -> one parity-checked, self-describing .onnx file.

Everything is built in a hidden temporary folder inside the output folder and only
renamed into place after every parity check has passed, so a failed export leaves
nothing behind: it removes only what it wrote, and the folders it created if they are
empty (another export may have finished a file there meanwhile). A killed export's work
folder carries its pid, and the next export into that folder removes it (mmzoo.runlock).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnx

from mmzoo import atomic, runlock
from mmzoo.errors import ExportError
from mmzoo.onnx import graphs, merge, parity, selfcheck
from mmzoo.onnx import metadata as md
from mmzoo.onnx.runtime import make_session

PRECISIONS = ("fp32", "int8", "fp16")
MIN_OPSET, MAX_OPSET = 13, 20
DEFAULT_SAMPLES = 64


def build_graph(source, example: dict, opset: int) -> onnx.ModelProto:
    """The whole model or ensemble as one float32 graph: members, then the combiner."""
    parts = zip(source.models, source.member_inputs, source.member_names, strict=True)
    members = [graphs.member_graph(model, names, example, opset, what=f"member {name}") for model, names, name in parts]
    if source.combiner is None:
        return members[0]
    combiner = graphs.combiner_graph(source.combiner, len(members), len(source.classes), opset)
    return merge.merge_ensemble(members, combiner)


def _value_desc(value: onnx.ValueInfoProto) -> dict:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    return {"name": value.name, "type": str(dtype), "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim]}


def describe(source, model: onnx.ModelProto, precision: str, opset: int, figures: dict) -> dict:
    """The metadata stored in the file: everything another runtime needs, plus provenance."""
    from mmzoo import __version__

    owner = {name: (p.id, fld) for p in source.preprocessing for fld, name in p.inputs.items()}
    inputs = []
    for value in model.graph.input:
        desc = _value_desc(value)
        desc["preprocessing"], desc["field"] = owner[value.name]
        inputs.append(desc)
    outputs = [_value_desc(v) for v in model.graph.output]
    outputs[0]["description"] = "class probabilities; column j is mmzoo.labels[j]; rows sum to 1"
    if len(outputs) > 1:
        outputs[1]["description"] = "each member's probabilities (batch, member, class), in mmzoo.members order"
    spec = source.run.spec
    meta = {
        "format_version": md.FORMAT_VERSION,
        "version": __version__,
        "kind": source.kind,
        "precision": precision,
        "opset": opset,
        "run": source.run.name,
        "labels": source.classes,
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": [p.describe() for p in source.preprocessing],
        "members": [{"index": k, "run": name, "inputs": sorted(source.member_inputs[k])}
                    for k, name in enumerate(source.member_names)],
        "spec": spec if source.kind == "model" else {**spec, "member_specs": [m.spec for m in source.models]},
        "parity": figures,
    }
    if source.combiner is not None:
        meta["combiner"] = source.combiner.name
    return meta


def export_run(run, out_dir: str | Path, opset: int = graphs.DEFAULT_OPSET, precision: str = "fp32",
               samples: int = DEFAULT_SAMPLES, say: Callable[[str], None] = lambda msg: None,
               strict: bool = True) -> dict:
    """Export ``run`` into ``out_dir``; returns {"path", "precision", "parity", "seconds", ...}.

    ``strict=False`` (benchmarks only) records int8/fp16 parity figures without enforcing
    them; the float32 graph is always enforced, since nothing derived from a wrong graph is worth timing.
    """
    from mmzoo.onnx.source import load_source

    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        # Below 13 Unsqueeze takes its axes as an attribute (the merge feeds them as an input);
        # above 20 the TorchScript exporter has no symbolic functions.
        raise ExportError(f"--opset {opset} is outside what mmzoo exports ({MIN_OPSET}-{MAX_OPSET})",
                          hint=f"the default is {graphs.DEFAULT_OPSET}")
    if samples < 1:
        raise ExportError(f"--samples must be at least 1, got {samples}")
    started = time.perf_counter()
    source = load_source(run)
    val, labels = source.validation(samples)
    ref = parity.reference(source, val, labels)
    for note in selfcheck.check_stored(source, val, ref, f"{run.name} ({source.kind})"):
        say(note)
    out_dir = Path(out_dir).absolute()
    created = [p for p in [out_dir, *out_dir.parents] if not p.exists()]  # deepest first
    runlock.sweep(out_dir)  # work folders and staged files of killed exports
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".mmzoo-export-{os.getpid()}-", dir=out_dir))
    except OSError as exc:
        raise ExportError(f"cannot write to {out_dir}: {exc.strerror}", hint="pass a writable -o DIR") from None
    try:
        result = _export(source, ref, work, out_dir, opset, precision, say, strict)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:  # the export made these folders: remove them only if nothing else is inside
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = time.perf_counter() - started
    return result


def _export(source, ref, work: Path, out_dir: Path, opset: int, precision: str, say, strict: bool) -> dict:
    # Trace on a small real batch; lengths vary within it, and the axes are declared dynamic.
    example = {k: v[:2] for k, v in ref.feeds[0].items()}
    what = f"{source.run.name} ({source.kind}, {len(source.models)} member{'s' * (len(source.models) > 1)})"
    fp32 = work / "fp32.onnx"
    onnx.save(build_graph(source, example, opset), str(fp32))
    figures = {"fp32": parity.measure(make_session(fp32), ref)}
    parity.check(figures["fp32"], "fp32", what)
    say(f"fp32 parity: {parity.summary(figures['fp32'])}")
    chosen = fp32
    if precision != "fp32":
        from mmzoo.onnx.quantize import convert_fp16, quantize_int8

        chosen = work / f"{precision}.onnx"
        (quantize_int8 if precision == "int8" else convert_fp16)(fp32, chosen)
    if chosen is not fp32:
        figures[precision] = parity.measure(make_session(chosen), ref)
        if strict:
            parity.check(figures[precision], precision, what)
        say(f"{precision} parity: {parity.summary(figures[precision])}")
    model = onnx.load(str(chosen))
    meta = describe(source, model, precision, opset, figures)
    md.set_props(model, meta)
    onnx.checker.check_model(model)
    name = source.run.model + ("" if precision == "fp32" else f"-{precision}") + ".onnx"
    final = out_dir / name
    with atomic.atomic_path(final) as staged:
        onnx.save(model, str(staged))
    return {"path": str(final.resolve()), "run": source.run.name, "kind": source.kind, "precision": precision,
            "opset": opset, "members": source.member_names, "inputs": [i["name"] for i in meta["inputs"]],
            "parity": figures, "bytes": final.stat().st_size}
