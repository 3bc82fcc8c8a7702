"""Provides the metadata of a registered part, readable without importing torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

KINDS = ("encoder", "fusion", "combiner", "dataset")


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()

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

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"param {self.name!r}: type must be one of {sorted(PARAM_TYPES)}, not {self.type!r}")

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
            return f"expected {self.type}, got {type(value).__name__} ({value!r})"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        return None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "default": None if self.required else self.default,
            "required": self.required,
            "help": self.help,
            "choices": list(self.choices) if self.choices else None,
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
    plugin: str = ""
    task: str | None = None  # datasets: "classification" (one label per sample) or "tokens" (a tag per token)

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
        return getattr(module, attr)

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "modality": self.modality,
            **({"task": self.task} if self.kind == "dataset" else {}),
            "description": self.description,
            "plugin": self.plugin,
            "params": [p.to_dict() for p in self.params],
        }
