"""Provides `mmzoo fit` presets: search spaces written as data in registry.yaml, checked torch-free.

A preset names the encoders, the fusions to try, each head family's hyperparameter grid, the
number of cross-validation folds and the combiners to try. `mmzoo validate` reports a bad
preset by file and line, like any model entry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

HEAD_FAMILIES = ("linear", "mlp")
# Grid keys of each head family, with the type every listed value must have.
GRID_KEYS = {
    "linear": {"C": (int, float)},
    "mlp": {"hidden": (int,), "dropout": (int, float), "lr": (int, float), "weight_decay": (int, float),
            "aux": (int, float)},
}
# Scalar keys, their types and defaults.
SCALARS = {
    "description": (str, ""),
    "epochs": (int, 30),
    "batch_size": (int, 64),
    "folds": (int, 5),
    "trials": (int, 4),  # MLP configurations sampled from the grid per model kind
    "seed": (int, 0),
    "metric": (str, "auto"),
}
# Inclusive ranges of the integer scalars, checked by `validate` and by `mmzoo fit`'s flags alike.
# Above 50 folds every candidate trains 50+ times for a CV estimate no steadier than 10-fold's.
RANGES = {"epochs": (1, 10_000), "batch_size": (1, 65_536), "folds": (2, 50), "trials": (1, 1_000)}
METRICS = ("auto", "accuracy", "macro_f1")


def range_problem(key: str, value) -> str | None:
    """Why an integer ``value`` is outside ``key``'s range (None when it is inside, or not an int)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    low, high = RANGES[key]
    return None if low <= value <= high else f"{key} must be {low} to {high}, got {value}"
LIST_KEYS = ("fusions", "combiners")
ENCODER_KEYS = ("text", "image")
PRESET_KEYS = (*SCALARS, *LIST_KEYS, *ENCODER_KEYS, "heads", "finetune")
# The optional finetune: section (partial fine-tuning, cross-validated next to the frozen heads), with defaults.
FINETUNE_DEFAULTS = {"kinds": ["text"], "modalities": ["text", "image"], "train_last": [1], "encoder_lr": [0.0001],
                     "epochs": 5}


@dataclass
class Preset:
    """A checked preset with defaults filled in."""

    name: str
    text: dict
    image: dict
    fusions: list[str]
    heads: dict[str, dict[str, list]]
    combiners: list[str]
    epochs: int = 30
    batch_size: int = 64
    folds: int = 5
    trials: int = 4
    seed: int = 0
    metric: str = "auto"
    description: str = ""
    source: str = ""  # FILE:LINE it came from
    raw: dict = field(default_factory=dict)
    finetune: dict | None = None  # None: heads on frozen features only


def check_preset(name: str, raw, zoo=None) -> list[tuple[tuple, str]]:
    """Every problem of one preset as (key path, message); empty when it is usable."""
    out: list[tuple[tuple, str]] = []
    if not isinstance(raw, dict):
        return [((), f"preset {name!r}: expected a mapping")]
    for key in raw:
        if key not in PRESET_KEYS:
            out.append(((key,), f"preset {name!r}: unknown key {key!r} (allowed: {', '.join(PRESET_KEYS)})"))
    for key, (kind, _) in SCALARS.items():
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            out.append(((key,), f"preset {name!r}: {key} must be a {kind.__name__}, got {value!r}"))
    for key in RANGES:
        problem = range_problem(key, raw.get(key))
        if problem:
            out.append(((key,), f"preset {name!r}: {problem}"))
    if raw.get("metric", "auto") not in METRICS:
        out.append((("metric",), f"preset {name!r}: metric must be one of {', '.join(METRICS)}"))
    for modality in ENCODER_KEYS:
        value = raw.get(modality)
        if not isinstance(value, dict) or not isinstance(value.get("encoder"), str):
            out.append(((modality,), f"preset {name!r}: {modality} must be a mapping with 'encoder: NAME'"))
        elif zoo is not None:
            part = zoo.get("encoder", value["encoder"])
            if part is None or part.modality != modality:
                out.append(((modality, "encoder"), f"preset {name!r}: {value['encoder']!r} is not an installed "
                                                    f"{modality} encoder"))
    for key, kind in (("fusions", "fusion"), ("combiners", "combiner")):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            out.append(((key,), f"preset {name!r}: {key} must be a list of names"))
        elif zoo is not None:
            for i, v in enumerate(value):
                if zoo.get(kind, v) is None:
                    out.append(((key, i), f"preset {name!r}: {kind} {v!r} is not installed "
                                          f"(installed: {', '.join(zoo.names(kind))})"))
    if raw.get("finetune") is not None:
        out += _check_finetune(name, raw)
    heads = raw.get("heads")
    if not isinstance(heads, dict) or not heads:
        out.append((("heads",), f"preset {name!r}: heads must map linear and/or mlp to their grids"))
        return out
    for family, grid in heads.items():
        if family not in HEAD_FAMILIES:
            out.append((("heads", family), f"preset {name!r}: unknown head family {family!r} "
                                           f"(allowed: {', '.join(HEAD_FAMILIES)})"))
            continue
        if not isinstance(grid, dict):
            out.append((("heads", family), f"preset {name!r}: heads.{family} must map keys to lists of values"))
            continue
        for key, values in grid.items():
            kinds = GRID_KEYS[family].get(key)
            if kinds is None:
                out.append((("heads", family, key), f"preset {name!r}: heads.{family} has no key {key!r} "
                                                    f"(allowed: {', '.join(GRID_KEYS[family])})"))
            elif not isinstance(values, list) or not values or not all(
                    isinstance(v, kinds) and not isinstance(v, bool) and v >= 0 for v in values):
                out.append((("heads", family, key), f"preset {name!r}: heads.{family}.{key} must be a non-empty "
                                                    "list of non-negative numbers"))
        missing = [k for k in GRID_KEYS[family] if k not in grid]
        if missing:
            out.append((("heads", family), f"preset {name!r}: heads.{family} needs {', '.join(missing)}"))
    return out


def _check_finetune(name: str, raw: dict) -> list[tuple[tuple, str]]:
    """Problems of a preset's finetune: section."""
    section, out = raw["finetune"], []
    where = f"preset {name!r}: finetune"
    if not isinstance(section, dict):
        return [(("finetune",), f"{where} must be a mapping ({', '.join(FINETUNE_DEFAULTS)})")]
    for key in section:
        if key not in FINETUNE_DEFAULTS:
            out.append((("finetune", key), f"{where} has no key {key!r} (allowed: {', '.join(FINETUNE_DEFAULTS)})"))
    kinds = ["text", "image", *(raw.get("fusions") or [])]
    lists = {"kinds": (str, kinds), "modalities": (str, ["text", "image"]), "train_last": (int, None),
             "encoder_lr": ((int, float), None)}
    for key, (kind, allowed) in lists.items():
        values = section.get(key, FINETUNE_DEFAULTS[key])
        if not isinstance(values, list) or not values or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in values):
            out.append((("finetune", key), f"{where}.{key} must be a non-empty list of "
                                           f"{'names' if kind is str else 'numbers'}"))
        elif allowed is not None and any(v not in allowed for v in values):
            out.append((("finetune", key), f"{where}.{key}: {', '.join(v for v in values if v not in allowed)} "
                                           f"not among {', '.join(allowed)}"))
        elif kind is not str and any(v <= 0 for v in values):
            out.append((("finetune", key), f"{where}.{key} must hold positive numbers (train_last 1 trains the "
                                           "last block; a frozen encoder is the frozen candidates' job)"))
    epochs = section.get("epochs", FINETUNE_DEFAULTS["epochs"])
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        out.append((("finetune", "epochs"), f"{where}.epochs must be an int of at least 1, got {epochs!r}"))
    if "mlp" not in (raw.get("heads") or {}):
        out.append((("finetune",), f"{where} trains each kind's best MLP head with its encoders, so heads needs mlp"))
    return out


def build_preset(name: str, raw: dict, source: str = "") -> Preset:
    """A Preset from a raw mapping that passed check_preset."""
    values = {key: raw.get(key, default) for key, (_, default) in SCALARS.items()}
    finetune = None if raw.get("finetune") is None else {**copy.deepcopy(FINETUNE_DEFAULTS), **raw["finetune"]}
    return Preset(name=name, text=dict(raw["text"]), image=dict(raw["image"]), fusions=list(raw.get("fusions", [])),
                  heads=copy.deepcopy(raw["heads"]), combiners=list(raw.get("combiners", [])), source=source,
                  raw=copy.deepcopy(raw), finetune=finetune, **values)


def load_preset(name: str, registry_file=None) -> Preset:
    """The named preset from the layered registry; raises RegistryError with its problems."""
    from mmzoo.errors import RegistryError
    from mmzoo.zoo.registry import _suggest, load_registry

    registry = load_registry(registry_file)
    if name not in registry.presets:
        raise RegistryError(f"no preset named {name!r} in {', '.join(registry.files)}",
                            hint=_suggest(name, sorted(registry.presets)))
    raw, file, line = registry.presets[name]
    problems = [p for p in registry.problems if p.file == file and p.message.startswith(f"preset {name!r}")]
    if problems:
        raise RegistryError(f"preset {name!r} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    return build_preset(name, raw, f"{file}:{line}")
