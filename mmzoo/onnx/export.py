"""Provides export_run: a finished run (model or ensemble) -> one parity-checked, self-describing .onnx file.

Everything is built in a hidden temporary folder inside the output folder and only
renamed into place after every parity check has passed, so a failed export leaves
nothing behind: it removes only what it wrote, and the folders it created if they are
empty (another export may have finished a file there meanwhile). A killed export's work
folder carries its pid, and the next export into that folder removes it (mmzoo.runs.lock).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnx

from mmzoo import atomic
from mmzoo.errors import ExportError
from mmzoo.onnx import graphs, parity, rawimage, selfcheck, shared
from mmzoo.onnx import metadata as md
from mmzoo.onnx.runtime import make_session
from mmzoo.runs import lock as runlock

PRECISIONS = ("fp32", "int8", "fp16")
MIN_OPSET, MAX_OPSET = 13, 20
DEFAULT_SAMPLES = parity.MAX_DEFAULT_SAMPLES  # all of val, up to this many


def build_graph(source, example: dict, opset: int) -> onnx.ModelProto:
    """The whole model or ensemble as one float32 graph (an ensemble runs each shared frozen encoder once)."""
    if source.combiner is None:
        return graphs.member_graph(source.models[0], source.member_inputs[0], example, opset,
                                   what=f"member {source.member_names[0]}")
    return shared.build_graph(source, example, opset)


def _value_desc(value: onnx.ValueInfoProto) -> dict:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    return {"name": value.name, "type": str(dtype), "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim]}


def _plugins(source) -> dict:
    """Which plugin package and version provided each part of the export (mmzoo.zoo.provenance)."""
    from mmzoo.zoo import provenance

    parts = [p for member in source.models for p in provenance.model_parts(member.spec)]
    if source.combiner is not None:
        parts.append(("combiner", source.combiner.name))
    return provenance.record(parts)


def describe(source, model: onnx.ModelProto, precision: str, opset: int, figures: dict,
             raw_image: bool = False) -> dict:
    """The metadata stored in the file: everything another runtime needs, plus provenance."""
    from mmzoo import __version__

    preprocessing = [p.describe() for p in source.preprocessing]
    if raw_image:
        preprocessing = _raw_preprocessing(preprocessing)
    owner = {name: (p["id"], fld) for p in preprocessing for fld, name in p["inputs"].items()}
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
        "image_input": "raw" if raw_image else "pixel_values",
        "preprocessing": preprocessing,
        "members": [{"index": k, "run": name, "inputs": sorted(source.member_inputs[k])}
                    for k, name in enumerate(source.member_names)],
        "spec": spec if source.kind == "model" else {**spec, "member_specs": [m.spec for m in source.models]},
        "parity": figures,
        "plugins": _plugins(source),
    }
    if source.combiner is not None:
        meta["combiner"] = source.combiner.name
    return meta


def _raw_preprocessing(preprocessing: list[dict]) -> list[dict]:
    """The image entries replaced by one ``raw_image`` entry feeding the graph's ``image`` input."""
    from mmzoo.data.preprocess import RawImagePreprocessor

    images = [p for p in preprocessing if p["modality"] == "image"]
    if not images:
        return preprocessing
    steps = [{"feeds": p["inputs"]["pixel_values"], **p["config"]} for p in images]
    raw = {"id": "image", "modality": "image", "inputs": {"image": rawimage.INPUT},
           "members": sorted(m for p in images for m in p["members"]), "config": RawImagePreprocessor(steps).config}
    return [p for p in preprocessing if p["modality"] != "image"] + [raw]


def resolve_opset(opset: int | None, raw_image: bool) -> int:
    """The opset to export at: the default (17, or 18 for --raw-image), or ``opset`` once checked."""
    if opset is None:
        return max(graphs.DEFAULT_OPSET, rawimage.MIN_OPSET) if raw_image else graphs.DEFAULT_OPSET
    if not MIN_OPSET <= opset <= MAX_OPSET:
        # Below 13 Unsqueeze takes its axes as an attribute (the merge feeds them as an input);
        # above 20 the TorchScript exporter has no symbolic functions.
        raise ExportError(f"--opset {opset} is outside what mmzoo exports ({MIN_OPSET}-{MAX_OPSET})",
                          hint=f"the default is {graphs.DEFAULT_OPSET}")
    if raw_image and opset < rawimage.MIN_OPSET:
        raise ExportError(f"--raw-image needs opset {rawimage.MIN_OPSET} or newer (Resize's antialias), got "
                          f"--opset {opset}", hint=f"pass --opset {rawimage.MIN_OPSET}, or leave --opset out")
    return opset


def file_stem(source, precision: str, raw_image: bool) -> str:
    return source.run.model + ("" if precision == "fp32" else f"-{precision}") + ("-raw-image" if raw_image else "")


def export_run(run, out_dir: str | Path, opset: int | None = None, precision: str = "fp32",
               samples: int | None = None, say: Callable[[str], None] = lambda msg: None,
               strict: bool = True, raw_image: bool = False, sidecar: bool = False, fixture: int = 0) -> dict:
    """Export ``run`` into ``out_dir``; returns {"path", "precision", "parity", "seconds", ...}.

    ``samples``: validation samples for the parity checks (default: all of val up to 512).
    ``raw_image``: the graph reads the decoded picture (uint8 NHWC) and resizes, crops, flattens and
    normalises itself; its agreement with the Pillow path is checked like a reduced precision.
    ``sidecar``: also write the metadata as ``<stem>.json``; ``fixture``: also write that many
    conformance samples (inputs and expected outputs) to ``<stem>.fixture/``.
    ``strict=False`` (benchmarks only) records int8/fp16 parity figures without enforcing
    them; the float32 graph is always enforced, since nothing derived from a wrong graph is worth timing.
    """
    from mmzoo.onnx.source import load_source

    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    opset = resolve_opset(opset, raw_image)
    if samples is not None and samples < 1:
        raise ExportError(f"--samples must be at least 1, got {samples}")
    if fixture < 0:
        raise ExportError(f"--fixture must be at least 1 sample, got {fixture}")
    started = time.perf_counter()
    source = load_source(run)
    if raw_image and not any(p.modality == "image" for p in source.preprocessing):
        raise ExportError(f"{run.name} reads no images, so --raw-image has nothing to do",
                          hint="export without --raw-image")
    val, labels = source.validation(samples or DEFAULT_SAMPLES)
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
        result = _export(source, ref, work, out_dir, opset, precision, say, strict,
                         {"raw_image": raw_image, "sidecar": sidecar, "fixture": fixture})
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


def _export(source, ref, work: Path, out_dir: Path, opset: int, precision: str, say, strict: bool,
            extras: dict) -> dict:
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
    if extras["raw_image"]:
        model = _raw_image_model(source, model, ref, work, figures, what, say)
    meta = describe(source, model, precision, opset, figures, raw_image=extras["raw_image"])
    md.set_props(model, meta)
    onnx.checker.check_model(model)
    stem = file_stem(source, precision, extras["raw_image"])
    staged_model = work / f"{stem}.onnx"
    onnx.save(model, str(staged_model))
    written = {}
    if extras["sidecar"]:
        written["sidecar"] = md.write_sidecar(work / f"{stem}.json", meta)
    if extras["fixture"]:
        from mmzoo.onnx.fixture import write_fixture

        written["fixture"] = write_fixture(work / f"{stem}.fixture", staged_model, source, ref, extras["fixture"])
    final = out_dir / f"{stem}.onnx"
    atomic.publish(staged_model, final)
    result = {"path": str(final.resolve()), "run": source.run.name, "kind": source.kind, "precision": precision,
              "opset": opset, "members": source.member_names, "inputs": [i["name"] for i in meta["inputs"]],
              "image_input": meta["image_input"], "parity": figures, "bytes": final.stat().st_size}
    for key, staged in written.items():
        atomic.publish(staged, out_dir / staged.name)
        result[key] = str((out_dir / staged.name).resolve())
    return result


def _raw_image_model(source, model: onnx.ModelProto, ref, work: Path, figures: dict, what: str, say):
    """``model`` reading the decoded picture, checked against torch (on the Pillow path) like a reduced precision."""
    images = [p for p in source.preprocessing if p.modality == "image"]
    raw = rawimage.prepend(model, images)
    staged = work / "raw-image.onnx"
    onnx.save(raw, str(staged))
    feeds = rawimage.parity_feeds(ref, {p.inputs["pixel_values"] for p in images})
    figures["raw_image"] = parity.measure(make_session(staged), ref, feeds)
    parity.check(figures["raw_image"], "raw-image", what,
                 hint="--samples N checks more validation samples; or export without --raw-image")
    say(f"raw-image parity (vs torch on Pillow-resized pixels): {parity.summary(figures['raw_image'])}")
    return raw
