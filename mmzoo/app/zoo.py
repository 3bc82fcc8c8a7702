"""Provides showing the zoo: a part's card, or a registry entry resolved and built (listing is mmzoo.zoo.listing)."""

from __future__ import annotations

from mmzoo.errors import MmzooError


def show(name: str, registry: str | None = None) -> dict:
    """A model or ensemble (resolved, built) or a part (metadata) as data; raises with suggestions when unknown."""
    from mmzoo.zoo.plugins import get_zoo
    from mmzoo.zoo.registry import load_registry

    zoo = get_zoo()
    loaded = load_registry(registry, zoo)
    entry = next((loaded.entries[(k, name)] for k in ("model", "ensemble") if (k, name) in loaded.entries), None)
    if entry is not None:
        return show_entry(entry)
    parts = [p for p in (zoo.get(kind, name) for kind in ("encoder", "fusion", "combiner", "dataset")) if p]
    if not parts:
        loaded.get(name)  # raises with suggestions
    return parts[0].to_dict()


def show_entry(entry) -> dict:
    """A model's resolved spec, parameter count and offline weight availability (builds it)."""
    info = {"name": entry.name, "kind": entry.kind, "file": f"{entry.file}:{entry.line}"}
    if not entry.ok:
        info["problems"] = [str(p) for p in entry.problems]
        return info
    info["spec"] = entry.spec
    if entry.kind == "model":
        from mmzoo.train.factory import create_model

        try:
            model = create_model(entry.spec)
        except MmzooError as exc:
            info["weights_available_offline"] = False
            info["weights_error"] = str(exc)
        else:
            info["weights_available_offline"] = True
            info["parameters"] = sum(p.numel() for p in model.parameters())
            info["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return info
