"""Provides the one checked way a registered part is built: every fault of a plugin becomes a PluginError naming it.

``Part.create`` lands here once the params are checked. Before the factory runs, its import and its signature are checked
against the declared params; afterwards, the result must be what the kind promises (an
Encoder of the registered modality, a Fusion, a Combiner, a Dataset). Exceptions that are the
part's own business (an MmzooError such as a DataError) pass through unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mmzoo.errors import MmzooError, PluginError
from mmzoo.zoo.parts import Part

# Arguments mmzoo passes positionally before a part's declared params, per kind.
LEADING = {"encoder": 0, "fusion": 4, "combiner": 2, "dataset": 0}
HINT = "fix or reinstall the plugin (see `mmzoo plugins`), or pick a part from another plugin"


def who(part: Part) -> str:
    """``encoder 'x' (plugin 'example', mmzoo-example 0.1)``: how every message names a part."""
    origin = f"plugin {part.plugin!r}" if part.plugin else "an unnamed plugin"
    if part.package:
        origin += f", {part.package} {part.version}".rstrip()
    return f"{part.kind} {part.name!r} ({origin})"


def _fault(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def load_factory(part: Part) -> Callable:
    """The part's factory, imported; a PluginError when it cannot be."""
    try:
        factory = part.load()
    except KeyboardInterrupt:
        raise
    except ImportError as exc:
        raise PluginError(f"{who(part)}: its factory {part.factory} cannot be imported ({exc})",
                          hint="install what the plugin needs, or reinstall the plugin") from None
    except AttributeError as exc:
        raise PluginError(f"{who(part)}: its factory {part.factory} does not exist ({exc})", hint=HINT) from None
    except BaseException as exc:  # SystemExit included: a plugin must not end mmzoo
        raise PluginError(f"{who(part)}: importing its factory {part.factory} failed: {_fault(exc)}",
                          hint=HINT) from None
    if not callable(factory):
        raise PluginError(f"{who(part)}: its factory {part.factory} is a {type(factory).__name__}, not a callable",
                          hint=HINT)
    return factory


def check_signature(part: Part, factory: Callable) -> None:
    """Every declared param must be a keyword the factory accepts, after the kind's positional arguments."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to compare
    accepted = list(signature.parameters.values())
    positional = [p for p in accepted if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in accepted)
    if len(positional) < LEADING[part.kind] and not takes_varargs:
        raise PluginError(f"{who(part)}: its factory takes {len(positional)} positional argument(s), but mmzoo "
                          f"passes {LEADING[part.kind]} to every {part.kind}", hint=HINT)
    named = {p.name for p in accepted[LEADING[part.kind]:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD,
                                                                             p.POSITIONAL_ONLY)}
    if any(p.kind == p.VAR_KEYWORD for p in accepted):
        return
    extra = [p.name for p in part.params if p.name not in named]
    if extra:
        raise PluginError(f"{who(part)} declares param(s) {', '.join(map(repr, extra))}, but its factory "
                          f"{getattr(factory, '__qualname__', factory)} does not accept them "
                          f"(it accepts: {', '.join(sorted(named)) or 'none'})", hint=HINT)


# The base class each kind's factory must build, registered by the base modules themselves when they are
# imported (importing a factory imports its base), so this torch-free module names none of them.
BASES: dict[str, type] = {}


def expect(kind: str, base: type) -> None:
    """Declare that every registered part of ``kind`` (or ``"dataset:tokens"``, by task) must build a ``base``."""
    BASES[kind] = base


def check_result(part: Part, built: Any) -> None:
    """The built object must be what the kind promises."""
    task = getattr(part, "task", None)
    expected = BASES.get(f"{part.kind}:{task}") or BASES.get(part.kind) if task not in (None, "classification") \
        else BASES.get(part.kind)
    if expected is not None and not isinstance(built, expected):
        raise PluginError(f"{who(part)}: its factory returned a {type(built).__name__}, not a "
                          f"{expected.__module__}.{expected.__name__}", hint=HINT)
    if part.kind == "encoder":
        modality = getattr(built, "modality", None)
        if modality != part.modality:
            raise PluginError(f"{who(part)} is registered as a {part.modality} encoder, but what it builds reads "
                              f"{modality!r}", hint="make the registration's modality= and the class's modality agree")
        dim = getattr(built, "output_dim", None)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise PluginError(f"{who(part)}: output_dim must be a positive int, got {dim!r}", hint=HINT)


def build(part: Part, *args: Any, **params: Any) -> Any:
    """Import, check and call the part's factory, then check what it returned."""
    factory = load_factory(part)
    check_signature(part, factory)
    try:
        built = factory(*args, **params)
    except (MmzooError, KeyboardInterrupt):
        raise
    except ImportError as exc:
        raise PluginError(f"{who(part)} could not be built: {exc}",
                          hint="install the package it needs, or pick another part") from exc
    except SystemExit as exc:
        raise PluginError(f"{who(part)} could not be built: {_fault(exc)}", hint=HINT) from None
    except TypeError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            raise  # raised inside the factory: a bug, for the CLI's safety net
        # raised by the call itself: the declaration and the constructor disagree
        raise PluginError(f"{who(part)} could not be built with {sorted(params) or 'no params'}: {exc}",
                          hint=HINT) from exc
    check_result(part, built)
    return built
