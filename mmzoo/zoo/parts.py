"""Provides the metadata of a registered part, readable without importing torch."""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("encoder", "fusion", "combiner", "dataset")


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


class ParamError(ValueError):
    """A constructor's complaint about a combination of params that no single Param can state.

    Raise it for constraints across params (``dim`` divisible by ``heads``); ``Part.create``
    reports it as a RegistryError naming the part. Single-value ranges belong in the Param.
    """

# The types a registry.yaml value may declare, by name, so metadata stays plain data.
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Param:
    """One constructor argument of a part: its type, default and meaning."""

    name: str
    type: str
    default: Any = REQUIRED
    help: str = ""
    choices: tuple | None = None
    nullable: bool = False
    # Inclusive bounds of an int or float (None: unbounded); floats must also be finite.
    min: float | None = None
    max: float | None = None
    # Exclusive lower bound, for values that must be strictly positive (a learning rate).
    above: float | None = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"param {self.name!r}: type must be one of {sorted(PARAM_TYPES)}, not {self.type!r}")
        if (self.min, self.max, self.above) != (None, None, None) and self.type not in ("int", "float"):
            raise ValueError(f"param {self.name!r}: min, max and above apply to int and float params only")

    def range_text(self) -> str:
        """The allowed range in words, e.g. ``>= 1`` or ``0 to 1``; empty when unbounded."""
        low = f"> {self.above:g}" if self.above is not None else None
        if self.min is not None and self.max is not None and low is None:
            return f"{self.min:g} to {self.max:g}"
        parts = [low or (f">= {self.min:g}" if self.min is not None else None),
                 f"<= {self.max:g}" if self.max is not None else None]
        return ", ".join(p for p in parts if p)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> str | None:
        """Return a user-facing complaint about ``value``, or None when it fits."""
        if value is None and (self.nullable or self.default is None):
            return None
        types = PARAM_TYPES[self.type]
        # bool is an int subclass; `lr: true` is a mistake, not 1.
        if isinstance(value, bool) and self.type != "bool":
            return f"expected {self.type}, got a boolean ({value!r})"
        if not isinstance(value, types):
            return f"expected {self.type}, got {type(value).__name__} ({value!r})" + _number_text_hint(self.type, value)
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.type in ("int", "float"):
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be a finite number, got {value!r}"
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max) \
                    or (self.above is not None and value <= self.above):
                return f"must be {self.range_text()}, got {value!r}"
        return None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "default": None if self.required else self.default,
            "required": self.required,
            "help": self.help,
            "choices": list(self.choices) if self.choices else None,
            "min": self.min,
            "max": self.max,
            "above": self.above,
            "range": self.range_text() or None,
        }


@dataclass(frozen=True)
class Part:
    """A registered encoder, fusion, combiner or dataset: metadata plus a lazy factory."""

    kind: str
    name: str
    factory: str | Callable = field(repr=False)
    description: str
    params: tuple[Param, ...] = ()
    modality: str | None = None
    plugin: str = ""  # the entry point that registered it
    package: str = ""  # ...its distribution and version, recorded in run specs and ONNX metadata
    version: str = ""
    task: str | None = None  # datasets: "classification" (one label per sample) or "tokens" (a tag per token)
    # Fusions: the factory of the fusion's token form (a tag per word, conditioned on the image), or None when it
    # has none; its params are ``token_params`` (None: the same as ``params``).
    tokens: str | Callable | None = field(default=None, repr=False)
    token_params: tuple[Param, ...] | None = None

    @property
    def supports_tokens(self) -> bool:
        return self.tokens is not None

    def token_form(self) -> Part:
        """The part that builds this fusion's token form: ``tokens`` as factory, ``token_params`` as params."""
        if self.tokens is None:
            raise ValueError(f"{self.kind} {self.name!r} has no token form")
        params = self.params if self.token_params is None else self.token_params
        return Part(self.kind, self.name, self.tokens, self.description, tuple(params), self.modality, self.plugin,
                    self.package, self.version, "tokens")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if not p.required}

    def load(self) -> Callable:
        """Import and return the factory; this is where heavy imports happen."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        module = importlib.import_module(module_name)
        target: Any = module
        for name in attr.split("."):
            target = getattr(target, name)
        return target

    def create(self, *positional: Any, **params: Any) -> Any:
        """Build the part: the one place a part is made from its params.

        ``positional`` are what mmzoo passes first for the kind (a fusion's dims and head
        factory, a combiner's member and class counts). Every param missing from ``params``
        takes its declared default; each value is checked against its Param, and a breach
        raises RegistryError naming the part and the param. Constructors then receive plain,
        valid values and need not check them again.
        """
        from mmzoo.errors import RegistryError

        what = f"{self.kind} {self.name!r}"
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise RegistryError(f"{what} got unknown param(s): {', '.join(unknown)}",
                                hint=f"its params are: {', '.join(declared) or 'none'} (see `mmzoo show {self.name}`)")
        values = {}
        for p in self.params:
            if p.name in params:
                value = params[p.name]
            elif p.required:
                raise RegistryError(f"{what}: missing required param {p.name!r} ({p.type}: {p.help})",
                                    hint=f"set `{p.name}:` in its registry.yaml entry")
            else:
                value = copy.deepcopy(p.default)
            complaint = p.check(value)
            if complaint:
                raise RegistryError(f"{what}: param {p.name!r} {complaint}", hint=p.help or None)
            values[p.name] = value
        from mmzoo.zoo.partbuild import build

        try:
            return build(self, *positional, **values)  # a plugin's own fault becomes a PluginError naming it
        except ParamError as exc:
            raise RegistryError(f"{what}: {exc}", hint=f"fix its params (`mmzoo show {self.name}` lists them)") from exc

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "modality": self.modality,
            **({"task": self.task} if self.kind == "dataset" else {}),
            **({"tokens": self.supports_tokens} if self.kind == "fusion" else {}),
            **({"token_params": [p.to_dict() for p in self.token_params]}
               if self.kind == "fusion" and self.token_params is not None else {}),
            "description": self.description,
            "plugin": self.plugin,
            "package": self.package,
            "version": self.version,
            "params": [p.to_dict() for p in self.params],
        }


def _number_text_hint(kind: str, value: Any) -> str:
    """Why a number reached us as text: it was quoted (mmzoo's YAML reads 1e-3 and 1.0e2 unquoted as numbers)."""
    if kind not in ("int", "float") or not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    return f"; it is text: write {value.strip()} without quotes"
