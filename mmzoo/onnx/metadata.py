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
JSON_KEYS = ("labels", "inputs", "outputs", "preprocessing", "members", "spec", "parity")
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
    return meta


def read(path: str | Path) -> dict[str, Any]:
    """The checked mmzoo metadata of an ONNX file, read without building a session."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist", hint="pass the .onnx file that `mmzoo export` wrote")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ExportError(f"{path} is not an ONNX file ({type(exc).__name__}: {exc})",
                          hint="pass the .onnx file that `mmzoo export` wrote") from None
    if not model.graph.node:
        raise ExportError(f"{path} is not an ONNX model (it parses to an empty graph)",
                          hint="pass the .onnx file that `mmzoo export` wrote")
    return from_props({p.key: p.value for p in model.metadata_props}, str(path))
