"""Provides the self-description stored in every mmzoo ONNX file, and its checked reading (torch-free).

Every value lives in the model's ``metadata_props`` as a string (JSON where structured),
so any ONNX runtime can read it without mmzoo; docs/onnx.md documents each key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmzoo.errors import ExportError

# Bump when a key changes meaning or a required key is added; readers refuse newer files.
FORMAT_VERSION = 1
PREFIX = "mmzoo."
# Keys holding JSON; the rest are plain strings.
JSON_KEYS = ("labels", "inputs", "outputs", "preprocessing", "members", "spec", "parity", "plugins", "tokens")
# What each modality's preprocessor produces (mmzoo.data.preprocess), i.e. what its graph inputs may be fed from.
# has_image: an image-conditioned tagger's "this sentence has a picture" flag (mmzoo.tokens.images).
FIELDS = {"text": ("input_ids", "attention_mask", "word_positions"),
          "image": ("pixel_values", "image", "has_image")}
# The preprocessor kinds (mmzoo.data.preprocess, mmzoo.tokens) each modality may use.
KINDS = {"text": ("text", "tokens"), "image": ("image", "raw_image")}
REQUIRED = ("format_version", "version", "kind", "precision", "labels", "inputs", "outputs", "preprocessing")


def to_props(meta: dict[str, Any]) -> dict[str, str]:
    """``{"labels": [...], ...}`` -> ``{"mmzoo.labels": "[...]", ...}``, ready for metadata_props."""
    props = {}
    for key, value in meta.items():
        props[PREFIX + key] = json.dumps(value, sort_keys=False) if key in JSON_KEYS else str(value)
    return props


def set_props(model, meta: dict[str, Any]) -> None:
    """Replace any mmzoo keys in an onnx ModelProto's metadata_props with ``meta``."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in keep + sorted(to_props(meta).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def write_sidecar(path: Path, meta: dict[str, Any]) -> Path:
    """The metadata as one JSON document (keys without the ``mmzoo.`` prefix, JSON values parsed), for
    runtimes that cannot read ``metadata_props`` (onnxruntime-node, onnxruntime-web)."""
    from mmzoo import atomic

    atomic.write_json(path, {"mmzoo_sidecar": 1, "model": path.with_suffix(".onnx").name, **meta})
    return path


def from_props(props: dict[str, str], where: str) -> dict[str, Any]:
    """Parse and check mmzoo metadata; raises ExportError for foreign, damaged or newer files."""
    if PREFIX + "format_version" not in props:
        raise ExportError(f"{where} is an ONNX file but not an mmzoo export (no mmzoo.format_version metadata)",
                          hint="export a run with `mmzoo export RUN -o DIR`, or pass the .onnx file it wrote")
    raw = props[PREFIX + "format_version"]
    try:
        version = int(raw)
    except ValueError:
        raise ExportError(f"{where} has an unreadable mmzoo.format_version {raw!r}",
                          hint="re-export the run with `mmzoo export`") from None
    if version < 1:
        raise ExportError(f"{where} has an impossible mmzoo.format_version {version} (versions start at 1)",
                          hint="the file was damaged after export; export the run again")
    if version > FORMAT_VERSION:
        from mmzoo import __version__

        writer = props.get(PREFIX + "version", "a newer mmzoo")
        raise ExportError(f"{where} uses export format {version}, written by mmzoo {writer}; this mmzoo "
                          f"({__version__}) reads formats up to {FORMAT_VERSION}",
                          hint="upgrade mmzoo (pip install -U mmzoo) to read this file")
    meta: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        try:
            meta[name] = json.loads(value) if name in JSON_KEYS else value
        except json.JSONDecodeError as exc:
            raise ExportError(f"{where}: metadata {key} is not valid JSON ({exc})",
                              hint="the file was damaged after export; export the run again") from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ExportError(f"{where}: mmzoo metadata lacks {', '.join(PREFIX + k for k in missing)}",
                          hint="the file was damaged after export; export the run again")
    meta["format_version"] = version
    problem = check(meta)
    if problem:
        raise ExportError(f"{where}: its mmzoo metadata is unusable: {problem}",
                          hint="the file was damaged or edited after export; export the run again")
    return meta


def check(meta: dict[str, Any]) -> str | None:
    """What is wrong with parsed metadata (labels, inputs, outputs, preprocessing), or None when it is usable."""
    labels = meta["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        return "mmzoo.labels must be a list of at least two non-empty strings"
    if len(set(labels)) != len(labels):
        return "mmzoo.labels lists a label twice"
    if meta["kind"] not in ("model", "ensemble"):
        return f"mmzoo.kind must be 'model' or 'ensemble', not {meta['kind']!r}"
    inputs, outputs, preprocessing = meta["inputs"], meta["outputs"], meta["preprocessing"]
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in inputs):
        return "mmzoo.inputs must be a list of {name: ...} objects"
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                               for o in outputs):
        return "mmzoo.outputs must be a non-empty list of {name: ...} objects"
    shape = outputs[0].get("shape")
    columns = shape[-1] if isinstance(shape, list) and shape else None
    if isinstance(columns, int) and not isinstance(columns, bool) and columns > 0 and columns != len(labels):
        return f"mmzoo.labels has {len(labels)} labels but the output has {columns} columns"
    if not isinstance(preprocessing, list) or not preprocessing:
        return "mmzoo.preprocessing must be a non-empty list"
    graph_inputs = {i["name"] for i in inputs}
    fed: set[str] = set()
    for k, step in enumerate(preprocessing):
        if not isinstance(step, dict) or step.get("modality") not in FIELDS:
            return f"mmzoo.preprocessing[{k}] must be an object with modality 'text' or 'image'"
        config, feeds = step.get("config"), step.get("inputs")
        if not isinstance(config, dict) or config.get("kind") not in KINDS[step["modality"]]:
            return (f"mmzoo.preprocessing[{k}].config must be an object of kind "
                    f"{' or '.join(map(repr, KINDS[step['modality']]))}")
        if not isinstance(feeds, dict) or not feeds or not all(
                f in FIELDS[step["modality"]] and isinstance(n, str) for f, n in feeds.items()):
            return (f"mmzoo.preprocessing[{k}].inputs must map {' or '.join(FIELDS[step['modality']])} to graph input "
                    "names")
        unknown = sorted(set(feeds.values()) - graph_inputs)
        if unknown:
            return f"mmzoo.preprocessing[{k}] feeds {', '.join(unknown)}, which mmzoo.inputs does not list"
        fed |= set(feeds.values())
    unfed = sorted(graph_inputs - fed)
    if unfed:
        return f"no preprocessing step feeds the graph input(s) {', '.join(unfed)}"
    return None


def _varint(buf, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf, start: int, end: int):
    """Yield (field number, wire type, value or (offset, end)) of one protobuf message."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = (pos, pos + size), pos + size
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if number == 0 or pos > end:
            raise ValueError("truncated or malformed message")
        yield number, wire, value


def read_props(path: Path) -> dict[str, str]:
    """ModelProto.metadata_props without parsing the graph: a 100 MB model reads in milliseconds.

    Walks the top-level protobuf fields (ONNX's ModelProto: ir_version = 1, graph = 7,
    metadata_props = 14 as StringStringEntryProto {key = 1, value = 2}) and skips the rest.
    """
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        props, seen = {}, set()
        for number, wire, value in _fields(buf, 0, len(buf)):
            seen.add(number)
            if number == 14 and wire == 2:
                entry = {n: bytes(buf[v[0]:v[1]]).decode("utf-8") for n, w, v in _fields(buf, *value) if w == 2}
                props[entry.get(1, "")] = entry.get(2, "")
        if not {1, 7} <= seen:
            raise ValueError("no ir_version or graph")
        return props


def read(path: str | Path) -> dict[str, Any]:
    """The checked mmzoo metadata of an ONNX file, read without building a session or importing onnx."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist", hint="pass the .onnx file that `mmzoo export` wrote")
    try:
        props = read_props(path)
    except (ValueError, IndexError, UnicodeDecodeError, OSError) as exc:
        raise ExportError(f"{path} is not an ONNX file (it does not parse as an ONNX model: {exc})",
                          hint="pass the .onnx file that `mmzoo export` wrote") from None
    return from_props(props, str(path))
