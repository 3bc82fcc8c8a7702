"""Provides the record of which plugin package (and version) provided each part of a run or an export.

Run specs (``spec.yaml``) and ONNX metadata carry it under ``plugins``, e.g.
``{"encoder:minilm": {"plugin": "offline_weights", "package": "mmzoo-offline-weights", "version": "0.1.0"}}``,
so a part that is missing later is named with what to install ("install mmzoo-foo >= 1.2").
"""

from __future__ import annotations

from mmzoo.errors import PluginError


def model_parts(spec: dict) -> list[tuple[str, str]]:
    """(kind, name) of every registered part a resolved model spec uses."""
    parts = [("encoder", spec[m]["encoder"]) for m in ("text", "image") if isinstance(spec.get(m), dict)]
    if isinstance(spec.get("fusion"), dict):
        parts.append(("fusion", spec["fusion"]["name"]))
    dataset = (spec.get("task") or {}).get("dataset")
    if isinstance(dataset, str):
        parts.append(("dataset", dataset))  # kept only when it is a registered name, not a folder
    return parts


def record(parts: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """``{"kind:name": {plugin, package, version}}`` for each registered part among ``parts``."""
    from mmzoo.zoo.plugins import get_zoo

    zoo = get_zoo()
    out = {}
    for kind, name in parts:
        part = zoo.get(kind, name)
        if part is not None:
            out[f"{kind}:{name}"] = {"plugin": part.plugin, "package": part.package, "version": part.version}
    return out


def require(recorded: dict | None, what: str) -> None:
    """Raise a PluginError naming the package to install when a recorded part is no longer registered."""
    from mmzoo.zoo.plugins import get_zoo

    if not isinstance(recorded, dict):
        return  # written before mmzoo recorded provenance
    zoo = get_zoo()
    for key, origin in recorded.items():
        kind, _, name = str(key).partition(":")
        if kind not in zoo.parts or zoo.get(kind, name) is not None or not isinstance(origin, dict):
            continue
        package, version = origin.get("package") or "?", origin.get("version") or "?"
        raise PluginError(f"{what} needs {kind} {name!r}, which {package} {version} (plugin "
                          f"{origin.get('plugin', '?')!r}) provided and which is not installed now",
                          hint=f"install {package} >= {version}" if package != "?" else
                          "install the plugin that provides it; see `mmzoo plugins`")
