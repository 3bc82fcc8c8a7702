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
OWN_PACKAGE = "mmzoo"
# Entry-point names only mmzoo itself may use: another package's entry point with one of these is refused.
RESERVED = frozenset({"builtin", "mmzoo", "core"})
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
    def register(name, factory, *, description, params=(), modality=None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"{kind} name must be a non-empty string, got {name!r}")
        if kind == "encoder" and modality not in ("text", "image"):
            raise ValueError(f"encoder {name!r}: modality must be 'text' or 'image', got {modality!r}")
        if not all(isinstance(p, Param) for p in params):
            raise TypeError(f"{kind} {name!r}: params must be mmzoo.parts.Param instances")
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
        if not isinstance(description, str):
            raise TypeError(f"{kind} {name!r}: description must be a string")
        if not (callable(factory) or (isinstance(factory, str) and _factory_path(factory))):
            raise TypeError(f"{kind} {name!r}: factory must be a callable or a 'package.module:attr' string, "
                            f"got {factory!r}")
        part = Part(kind, name, factory, description, tuple(params), modality, info.name, info.package, info.version)
        zoo.parts[kind][name] = part
        owners[(kind, name)] = info
        info.registered.setdefault(kind, []).append(name)

    return register


def _factory_path(value: str) -> bool:
    module, sep, attr = value.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in attr.split("."))


def _package(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def _fault(exc: BaseException) -> str:
    """One line for anything a plugin raised, SystemExit included."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def load_zoo() -> Zoo:
    """Discover plugins, call their hooks one plugin at a time, and collect the parts."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    zoo = Zoo(parts={kind: {} for kind in KINDS}, plugins=[])
    trace = os.environ.get("MMZOO_TRACE_PLUGINS") == "1"
    wanted = _wanted()
    seen: dict[str, PluginInfo] = {}  # entry-point name -> the plugin loaded under it
    own_first = lambda e: (_package(e) != OWN_PACKAGE, e.name != "builtin", e.name)  # noqa: E731
    for ep in sorted(metadata.entry_points(group=GROUP), key=own_first):
        if wanted is not None and ep.name not in wanted:
            continue
        info = PluginInfo(ep.name, _package(ep), getattr(getattr(ep, "dist", None), "version", None) or "?")
        zoo.plugins.append(info)
        if ep.name in RESERVED and info.package != OWN_PACKAGE:
            info.errors.append(f"uses the entry-point name {ep.name!r}, which is reserved for mmzoo's own parts; "
                               "rename the entry point in its pyproject.toml")
        elif ep.name in seen:
            info.errors.append(f"uses the entry-point name {ep.name!r}, which {seen[ep.name].package} already uses; "
                               "uninstall one of them")
        if info.errors:
            warn(f"plugin {ep.name!r} ({info.package}) skipped: {info.errors[-1]}")
            continue
        seen[ep.name] = info
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must never take the rest down
            info.errors.append(f"failed to load {ep.value}: {_fault(exc)}")
            warn(f"plugin {ep.name!r} ({info.package}) skipped: {info.errors[-1]}")
    if wanted:
        for name in sorted(wanted - set(seen)):
            warn(f"MMZOO_PLUGINS names {name!r}, which is not installed")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        warn(str(exc))
    owners: dict = {}
    by_name = seen
    for hook_name, kind in HOOKS.items():
        order = {name: i for i, name in enumerate(seen)}
        impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(), key=lambda impl: order[impl.plugin_name])
        for impl in impls:  # discovery order: builtin first, so its names win collisions
            info = by_name[impl.plugin_name]
            if trace:
                print(f"mmzoo: trace: {impl.plugin_name}.{hook_name}(register)", file=sys.stderr)
            try:
                impl.function(register=_make_register(kind, info, zoo, owners))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                info.errors.append(f"{hook_name} raised {_fault(exc)}" if not isinstance(exc, SystemExit)
                                   else f"{hook_name} {_fault(exc)}")
                warn(f"plugin {info.name!r} ({info.package}): {info.errors[-1]}")
    return zoo


_ZOO: Zoo | None = None


def get_zoo(refresh: bool = False) -> Zoo:
    """The process-wide zoo, loaded on first use (nothing loads at import time)."""
    global _ZOO
    if _ZOO is None or refresh:
        _ZOO = load_zoo()
    return _ZOO
