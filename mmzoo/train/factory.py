"""Provides create_model: a registry name or resolved spec in, a torch model out.

This is the one place where parts are built, so heavy imports happen here only.
"""

from __future__ import annotations

from typing import Any

from mmzoo.errors import MmzooError, RegistryError
from mmzoo.zoo.plugins import get_zoo


def resolve_spec(name_or_spec: str | dict, registry_file: str | None = None) -> dict:
    """Return the validated, fully-defaulted spec of a registry model."""
    from mmzoo.zoo.registry import load_registry

    if isinstance(name_or_spec, dict):
        if name_or_spec.get("kind") == "model" and "train" in name_or_spec:
            return name_or_spec
        raise RegistryError("create_model takes a registry name or a resolved spec (as stored in a run's spec.yaml)")
    entry = load_registry(registry_file).get(name_or_spec)
    if not entry.ok:
        raise RegistryError(f"{entry.kind} {entry.name!r} is invalid:\n" + "\n".join(f"  {p}" for p in entry.problems))
    if entry.kind != "model":
        raise RegistryError(f"{name_or_spec!r} is an ensemble; build it with `mmzoo ensemble {name_or_spec}`")
    return entry.spec


def _build_part(kind: str, name: str, *args: Any, **params: Any) -> Any:
    part = get_zoo().get(kind, name)
    if part is None:
        raise RegistryError(f"{kind} {name!r} is not registered (installed: {', '.join(get_zoo().names(kind))})")
    try:
        return part.create(*args, **params)
    except MmzooError:
        raise
    except ImportError as exc:
        raise MmzooError(f"{kind} {name!r} from plugin {part.plugin!r} could not be imported: {exc}",
                         hint="install the package it needs, or pick another part") from exc


def build_encoder(entry: dict):
    """An encoder from its registry entry: trainable, frozen, or frozen but for its last ``train_last`` blocks."""
    params = {k: v for k, v in entry.items() if k not in ("encoder", "freeze", "train_last")}
    if not entry.get("freeze"):
        return _build_part("encoder", entry["encoder"], **params)
    # A frozen encoder's weights are never saved, so any random init must come back the same on every
    # rebuild (cache refill, export): it is seeded from the entry itself, on a forked random stream,
    # so whether it is built or read from the cache never shifts the head's initialisation.
    import hashlib
    import json

    import torch

    # train_last is left out: a partly trained encoder starts from the very weights of the frozen one
    described = {k: v for k, v in entry.items() if k not in ("freeze", "train_last")}
    seed = int(hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = _build_part("encoder", entry["encoder"], **params)
    encoder.freeze()
    if entry.get("train_last"):
        from mmzoo.zoo.parts import ParamError

        try:
            encoder.unfreeze_last(int(entry["train_last"]))
        except ParamError as exc:
            raise RegistryError(f"{encoder.modality} encoder {entry['encoder']!r}: {exc}") from None
    return encoder


def build_token_fusion(entry: dict, text_dim: int, image_dim: int, num_labels: int, make_head):
    """A fusion's token form (mmzoo.fusions.tokens), from a token model's resolved ``fusion`` entry."""
    part = get_zoo().get("fusion", entry["name"])
    if part is None or not part.supports_tokens:
        raise RegistryError(f"fusion {entry['name']!r} has no token form; it cannot condition a token tagger")
    params = {k: v for k, v in entry.items() if k != "name"}
    return part.token_form().create(text_dim, image_dim, num_labels, make_head, **params)


# Task families (the registry's task.type) whose models are built elsewhere, by "module:function"; imported only
# when such a model is built, so this module names no package above it.
TASK_MODELS = {"tokens": "mmzoo.tokens.model:create_tagger"}


def create_model(name_or_spec: str | dict, num_classes: int | None = None, registry_file: str | None = None,
                 defer_frozen: bool = False):
    """Build a MultimodalClassifier from a registry name or a resolved spec.

    ``defer_frozen``: frozen encoders stand in by their cached description and are built
    only when run (see mmzoo.train.deferred); the trainer uses it, so heads over cached features
    skip the encoders' imports and weight loading.
    """
    from mmzoo.fusions.base import mlp_head
    from mmzoo.train.model import MultimodalClassifier

    spec = resolve_spec(name_or_spec, registry_file)
    task_model = TASK_MODELS.get(spec["task"].get("type", "classification"))
    if task_model is not None:  # a task family with its own model, e.g. a tag per word (mmzoo.tokens)
        import importlib

        module, _, attr = task_model.partition(":")
        return getattr(importlib.import_module(module), attr)(spec, open_dataset(spec["task"]["dataset"]).labels)
    if num_classes is None:
        num_classes = spec.get("num_classes") or _num_classes(spec)
    def encoder(entry):
        if defer_frozen and entry.get("freeze") and not entry.get("train_last"):
            from mmzoo.train.deferred import frozen_encoder

            return frozen_encoder(entry)
        return build_encoder(entry)

    text = encoder(spec["text"]) if spec.get("text") else None
    image = encoder(spec["image"]) if spec.get("image") else None
    fusion = None
    if spec.get("fusion"):
        params = {k: v for k, v in spec["fusion"].items() if k != "name"}
        make_head = mlp_head(spec["head"]["hidden"], spec["head"]["dropout"])
        fusion = _build_part("fusion", spec["fusion"]["name"], text.output_dim, image.output_dim, num_classes,
                             make_head, **params)
    return MultimodalClassifier(spec, num_classes, text, image, fusion)


def _num_classes(spec: dict) -> int:
    dataset = open_dataset(spec["task"]["dataset"])
    return len(dataset.classes(spec["task"]["label_set"]))


from mmzoo.data.open import open_dataset  # noqa: E402,F401  (re-exported: callers build and open from here)
