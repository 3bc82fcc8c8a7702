"""Provides plugin discovery: entry points loaded one at a time, failures reported, never fatal.

mmzoo's own parts arrive through the same ``mmzoo`` entry-point group as any
third-party package. ``MMZOO_PLUGINS=a,b`` limits which load;
``MMZOO_TRACE_PLUGINS=1`` prints every hook call to stderr;
``MMZOO_PLUGIN_PATH=dir/hooks.py:dir/pkg`` loads plugins under development without installing them;
``MMZOO_PREFER=a,b`` settles name collisions between third-party plugins (see ``_settle``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from mmzoo.zoo import hookspecs
from mmzoo.zoo.parts import KINDS, Param, Part

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
    tracebacks: list[str] = field(default_factory=list)  # the full reason of each failed import or hook
    source: str = ""  # the hook module: an entry point's value, or a file given by MMZOO_PLUGIN_PATH

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
            "tracebacks": self.tracebacks,
            "source": self.source,
        }


@dataclass
class Zoo:
    """Every registered part, by kind and name, plus the plugins that provided them."""

    parts: dict[str, dict[str, Part]]  # kind -> name -> Part
    plugins: list[PluginInfo]
    warnings: list[str] = field(default_factory=list)  # everything load_zoo warned about, in order

    def get(self, kind: str, name: str) -> Part | None:
        return self.parts[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.parts[kind])


def print_warning(message: str) -> None:
    print(f"mmzoo: warning: {message}", file=sys.stderr)


def _wanted() -> set[str] | None:
    raw = os.environ.get("MMZOO_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _make_register(kind: str, info: PluginInfo, claims: dict):
    def register(name, factory, *, description, params=(), modality=None, task=None, tokens=None, token_params=None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"{kind} name must be a non-empty string, got {name!r}")
        if kind == "encoder" and modality not in ("text", "image"):
            raise ValueError(f"encoder {name!r}: modality must be 'text' or 'image', got {modality!r}")
        if not all(isinstance(p, Param) for p in params):
            raise TypeError(f"{kind} {name!r}: params must be mmzoo.plugin.Param instances")
        if task not in (None, "classification", "tokens") or (task is not None and kind != "dataset"):
            raise ValueError(f"{kind} {name!r}: task is for datasets only, 'classification' or 'tokens', not {task!r}")
        if kind == "dataset":
            task = task or "classification"
        if (tokens is not None or token_params is not None) and kind != "fusion":
            raise ValueError(f"{kind} {name!r}: tokens= and token_params= are for fusions only")
        if tokens is not None and not (callable(tokens) or (isinstance(tokens, str) and _factory_path(tokens))):
            raise TypeError(f"fusion {name!r}: tokens must be a callable or a 'package.module:attr' string, "
                            f"got {tokens!r}")
        if token_params is not None and (tokens is None or not all(isinstance(p, Param) for p in token_params)):
            raise TypeError(f"fusion {name!r}: token_params must be mmzoo.plugin.Param instances, given with tokens=")
        if not isinstance(description, str):
            raise TypeError(f"{kind} {name!r}: description must be a string")
        if not (callable(factory) or (isinstance(factory, str) and _factory_path(factory))):
            raise TypeError(f"{kind} {name!r}: factory must be a callable or a 'package.module:attr' string, "
                            f"got {factory!r}")
        part = Part(kind, name, factory, description, tuple(params), modality, info.name, info.package, info.version,
                    task, tokens, None if token_params is None else tuple(token_params))
        claims.setdefault((kind, name), []).append((info, part))

    return register


def _factory_path(value: str) -> bool:
    module, sep, attr = value.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in attr.split("."))


def _fault(exc: BaseException) -> str:
    """One line for anything a plugin raised, SystemExit included."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _prefer() -> list[str]:
    return [name.strip() for name in os.environ.get("MMZOO_PREFER", "").split(",") if name.strip()]


def _settle(zoo: Zoo, claims: dict, warn: Callable[[str], None]) -> None:
    """Give each claimed name to one plugin, by the collision rule documented in docs/plugins.md.

    One claimant: it gets the name. mmzoo's own (``builtin``) always keeps its names; a plugin
    re-registering one is refused. Between third-party plugins, the first of them named in
    ``MMZOO_PREFER`` wins quietly; when none is named, every claimant is refused, so no
    installation order or entry-point name silently decides which part a registry entry builds.
    """
    prefer = _prefer()
    for (kind, name), claimants in claims.items():
        owners = [info for info, _ in claimants]
        winner = claimants[0] if len(claimants) == 1 else None
        if winner is None and len(set(map(id, owners))) == 1:
            winner = claimants[0]
            owners[0].errors.append(f"{kind} {name!r} is registered {len(claimants)} times; keeping the first")
            warn(f"plugin {owners[0].name!r}: {owners[0].errors[-1]}")
        elif winner is None:
            builtin = [c for c in claimants if c[0].name == "builtin"]
            preferred = sorted((c for c in claimants if c[0].name in prefer), key=lambda c: prefer.index(c[0].name))
            winner = (builtin or preferred or [None])[0]
            if winner is None or builtin:
                who = " and ".join(f"{i.package} ({i.name})" for i in owners)
                keeping = f"keeping {winner[0].package}'s" if winner else "refusing it from all of them"
                fix = ("uninstall one, or pick one with MMZOO_PREFER=" + owners[0].name
                       + " (or limit plugins with MMZOO_PLUGINS)") if not builtin else \
                      "rename the plugin's part, or limit plugins with MMZOO_PLUGINS"
                message = f"{kind} {name!r} is registered by both {who}; {keeping}. {fix}"
                for info in {id(i): i for i in owners if winner is None or i is not winner[0]}.values():
                    info.errors.append(message)
                warn(message)
        if winner is not None:
            info, part = winner
            zoo.parts[kind][name] = part
            info.registered.setdefault(kind, []).append(name)


def _dev_modules(warn: Callable[[str], None]) -> list[tuple[str, str, str]]:
    """(plugin name, module name, path) of each hook module in MMZOO_PLUGIN_PATH (a .py file or package folder).

    The plugin is named after its module less a leading ``mmzoo_``, as ``mmzoo plugin new`` names
    them (module ``mmzoo_NAME``, entry point ``NAME``), so it has the same name installed or not.
    """
    found = []
    for raw in os.environ.get("MMZOO_PLUGIN_PATH", "").split(os.pathsep):
        if not raw.strip():
            continue
        path = os.path.abspath(os.path.expanduser(raw.strip()))
        is_package = os.path.isfile(os.path.join(path, "__init__.py"))
        module = os.path.basename(path.rstrip(os.sep)).removesuffix(".py")
        name = module.removeprefix("mmzoo_") or module
        if not (is_package or (path.endswith(".py") and os.path.isfile(path))):
            warn(f"MMZOO_PLUGIN_PATH names {raw!r}, which is neither a .py file nor a folder with __init__.py")
        elif name == "builtin" or module == "mmzoo":
            warn(f"MMZOO_PLUGIN_PATH names {raw!r}, whose name is mmzoo's own; rename the module")
        else:
            found.append((name, module, path))
    return found


def _import_path(name: str, path: str):
    """Import a hook module from a file or package folder under its own name (so "name.parts:X" resolves)."""
    loaded = getattr(sys.modules.get(name), "__file__", None)
    if loaded in (path, os.path.join(path, "__init__.py")):
        return sys.modules[name]
    is_package = os.path.isdir(path)
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(path, "__init__.py") if is_package else path,
        submodule_search_locations=[path] if is_package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _failure(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def load_zoo(on_warning: Callable[[str], None] | None = None) -> Zoo:
    """Discover plugins, call their hooks one plugin at a time, and collect the parts.

    Every warning is kept on ``zoo.warnings`` and passed to ``on_warning`` (default: stderr), so a
    full-screen front end can show them without capturing the process's stderr.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    zoo = Zoo(parts={kind: {} for kind in KINDS}, plugins=[])
    report = on_warning or print_warning

    def warn(message: str) -> None:
        zoo.warnings.append(message)
        report(message)

    trace = os.environ.get("MMZOO_TRACE_PLUGINS") == "1"
    wanted = _wanted()
    seen: set[str] = set()
    loaders = []
    def package(ep) -> str:
        return getattr(getattr(ep, "dist", None), "name", None) or "?"

    # mmzoo's own package first, so its reserved names are taken before anyone else can claim them.
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (package(e) != OWN_PACKAGE,
                                                                          e.name != "builtin", e.name)):
        version = getattr(getattr(ep, "dist", None), "version", None) or "?"
        loaders.append((ep.name, package(ep), version, ep.value, ep.load))
    # Under development, loaded from its file: before installed plugins, so it replaces an installed copy.
    dev = [(name, f"{path} (MMZOO_PLUGIN_PATH)", "dev", path, lambda m=module, p=path: _import_path(m, p))
           for name, module, path in _dev_modules(warn)]
    loaders[1 if loaders and loaders[0][0] == "builtin" else 0:0] = dev
    dev_names = {name for name, *_ in dev}
    for name, package, version, source, load in loaders:
        if wanted is not None and name not in wanted:
            continue
        if name in seen and name in dev_names and version != "dev":
            warn(f"plugin {name!r} from MMZOO_PLUGIN_PATH replaces the installed {package} {version}")
            continue
        info = PluginInfo(name, package, version, source=source)
        zoo.plugins.append(info)
        if name in RESERVED and package != OWN_PACKAGE:
            info.errors.append(f"uses the entry-point name {name!r}, which is reserved for mmzoo's own parts; "
                               "rename the entry point in its pyproject.toml")
        elif name in seen:
            info.errors.append(f"uses the entry-point name {name!r}, which another installed package already "
                               "uses; uninstall one of them")
        if info.errors:
            warn(f"plugin {name!r} ({package}) skipped: {info.errors[-1]}")
            continue
        seen.add(name)
        try:
            pm.register(load(), name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must never take the rest down
            info.errors.append(f"failed to load {source}: {_fault(exc)}")
            info.tracebacks.append(_failure(exc))
            warn(f"plugin {name!r} ({info.package}) skipped: {info.errors[-1]}")
    if wanted:
        for name in sorted(wanted - seen):
            warn(f"MMZOO_PLUGINS names {name!r}, which is not installed")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        warn(str(exc))
    claims: dict = {}
    by_name = {info.name: info for info in zoo.plugins if info.name in seen and info.ok}
    for hook_name, kind in HOOKS.items():
        order = {name: i for i, name in enumerate(by_name)}
        impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(), key=lambda impl: order[impl.plugin_name])
        for impl in impls:  # discovery order: builtin first, so its names win collisions
            info = by_name[impl.plugin_name]
            if trace:
                print(f"mmzoo: trace: {impl.plugin_name}.{hook_name}(register)", file=sys.stderr)
            try:
                impl.function(register=_make_register(kind, info, claims))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit included: a plugin must not end mmzoo
                info.errors.append(f"{hook_name} {_fault(exc)}" if isinstance(exc, SystemExit)
                                   else f"{hook_name} raised {_fault(exc)}")
                info.tracebacks.append(_failure(exc))
                warn(f"plugin {info.name!r} ({info.package}): {info.errors[-1]}")
    _settle(zoo, claims, warn)
    return zoo


_ZOO: Zoo | None = None


def get_zoo(refresh: bool = False, on_warning: Callable[[str], None] | None = None) -> Zoo:
    """The process-wide zoo, loaded on first use (nothing loads at import time)."""
    global _ZOO
    if _ZOO is None or refresh:
        _ZOO = load_zoo(on_warning)
    return _ZOO
