"""Provides plugin discovery: entry points loaded one at a time, failures reported, never fatal.

mmzoo's own parts arrive through the same ``mmzoo`` entry-point group as any
third-party package. ``MMZOO_PLUGINS=a,b`` limits which load;
``MMZOO_TRACE_PLUGINS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from mmzoo import hookspecs
from mmzoo.parts import KINDS, Param, Part

GROUP = "mmzoo"
HOOKS = {  # hook name -> the kind of part its register callback creates
    "register_encoders": "encoder",
    "register_fusions": "fusion",
    "register_combiners": "combiner",
    "register_datasets": "dataset",
}


@dataclass
class PluginInfo:
    """What one entry point is, what it registered, and why it failed if it did."""

    name: str
    package: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "registered": self.registered,
            "errors": self.errors,
        }


@dataclass
class Zoo:
    """Every registered part, by kind and name, plus the plugins that provided them."""

    parts: dict[str, dict[str, Part]]  # kind -> name -> Part
    plugins: list[PluginInfo]

    def get(self, kind: str, name: str) -> Part | None:
        return self.parts[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.parts[kind])


def warn(message: str) -> None:
    print(f"mmzoo: warning: {message}", file=sys.stderr)


def _wanted() -> set[str] | None:
    raw = os.environ.get("MMZOO_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _make_register(kind: str, info: PluginInfo, zoo: Zoo, owners: dict):
    def register(name, factory, *, description, params=(), modality=None, task=None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"{kind} name must be a non-empty string, got {name!r}")
        if kind == "encoder" and modality not in ("text", "image"):
            raise ValueError(f"encoder {name!r}: modality must be 'text' or 'image', got {modality!r}")
        if not all(isinstance(p, Param) for p in params):
            raise TypeError(f"{kind} {name!r}: params must be mmzoo.parts.Param instances")
        if task not in (None, "classification", "tokens") or (task is not None and kind != "dataset"):
            raise ValueError(f"{kind} {name!r}: task is for datasets only, 'classification' or 'tokens', not {task!r}")
        previous = owners.get((kind, name))
        if previous is not None:
            # Keep the first and report both, so neither package silently shadows the other.
            message = (
                f"{kind} {name!r} is registered by both {previous.package} ({previous.name}) "
                f"and {info.package} ({info.name}); keeping {previous.package}'s. Uninstall one of them "
                f"or limit plugins with MMZOO_PLUGINS."
            )
            info.errors.append(message)
            warn(message)
            return
        if kind == "dataset":
            task = task or "classification"
        part = Part(kind, name, factory, description, tuple(params), modality, info.name, task)
        zoo.parts[kind][name] = part
        owners[(kind, name)] = info
        info.registered.setdefault(kind, []).append(name)

    return register


def load_zoo() -> Zoo:
    """Discover plugins, call their hooks one plugin at a time, and collect the parts."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    zoo = Zoo(parts={kind: {} for kind in KINDS}, plugins=[])
    trace = os.environ.get("MMZOO_TRACE_PLUGINS") == "1"
    wanted = _wanted()
    seen: set[str] = set()
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name != "builtin", e.name)):
        if ep.name in seen or (wanted is not None and ep.name not in wanted):
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")
        zoo.plugins.append(info)
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must never take the rest down
            info.errors.append(f"failed to load {ep.value}: {type(exc).__name__}: {exc}")
            warn(f"plugin {ep.name!r} ({info.package}) skipped: {info.errors[-1]}")
    if wanted:
        for name in sorted(wanted - seen):
            warn(f"MMZOO_PLUGINS names {name!r}, which is not installed")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        warn(str(exc))
    owners: dict = {}
    by_name = {info.name: info for info in zoo.plugins}
    for hook_name, kind in HOOKS.items():
        order = {info.name: i for i, info in enumerate(zoo.plugins)}
        impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(), key=lambda impl: order[impl.plugin_name])
        for impl in impls:  # discovery order: builtin first, so its names win collisions
            info = by_name[impl.plugin_name]
            if trace:
                print(f"mmzoo: trace: {impl.plugin_name}.{hook_name}(register)", file=sys.stderr)
            try:
                impl.function(register=_make_register(kind, info, zoo, owners))
            except Exception as exc:
                info.errors.append(f"{hook_name} raised {type(exc).__name__}: {exc}")
                warn(f"plugin {info.name!r} ({info.package}): {info.errors[-1]}")
    return zoo


_ZOO: Zoo | None = None


def get_zoo(refresh: bool = False) -> Zoo:
    """The process-wide zoo, loaded on first use (nothing loads at import time)."""
    global _ZOO
    if _ZOO is None or refresh:
        _ZOO = load_zoo()
    return _ZOO
