"""Provides the zoo's listing: what exists, as plain rows (torch-free; `mmzoo list` and the TUI render it)."""

from __future__ import annotations

import fnmatch

from mmzoo.zoo.parts import KINDS

LIST_KINDS = {"encoders": "encoder", "fusions": "fusion", "combiners": "combiner", "datasets": "dataset",
              "models": "model", "ensembles": "ensemble"}


def matches(name: str, pattern: str | None) -> bool:
    """A glob when the pattern has wildcards, a substring match otherwise."""
    return pattern is None or fnmatch.fnmatch(name, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")


def list_parts(kind: str, pattern: str | None = None) -> list[str]:
    """Names of registered parts of one kind: encoder, fusion, combiner or dataset."""
    from mmzoo.zoo.plugins import get_zoo

    kind = kind.rstrip("s")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return [n for n in get_zoo().names(kind) if matches(n, pattern)]


def list_models(pattern: str | None = None, registry_file: str | None = None) -> list[str]:
    """Names of the registry's models and ensembles matching a pattern."""
    rows = collect("models", pattern, registry_file) + collect("ensembles", pattern, registry_file)
    return [r["name"] for r in rows]


def collect(kind: str | None, pattern: str | None, registry_file: str | None,
            file_problems: list | None = None) -> list[dict]:
    """Rows of {kind, name, detail, description, ok, ...} for `mmzoo list`, the TUI and the API.

    Problems with whole registry files (unreadable, malformed) are appended to ``file_problems``.
    """
    from mmzoo.zoo.plugins import get_zoo
    from mmzoo.zoo.registry import load_registry

    zoo = get_zoo()
    rows = []
    registry = None
    for label, part_kind in LIST_KINDS.items():
        if kind and kind != label:
            continue
        if part_kind in ("model", "ensemble"):
            if registry is None:
                registry = load_registry(registry_file, zoo)
                if file_problems is not None:
                    file_problems.extend(registry.problems)
            for entry in registry.models() if part_kind == "model" else registry.ensembles():
                if matches(entry.name, pattern):
                    rows.append({"kind": part_kind, "name": entry.name, "detail": entry_detail(entry),
                                 "description": entry.raw.get("description", ""),
                                 "ok": entry.ok, "problems": [str(p) for p in entry.problems]})
        else:
            for name in zoo.names(part_kind):
                part = zoo.get(part_kind, name)
                if matches(name, pattern):
                    detail = part.modality or ("tokens" if part.task == "tokens" else "")  # NER datasets say so
                    rows.append({"kind": part_kind, "name": name, "detail": detail,
                                 "description": part.description, "plugin": part.plugin, "ok": True})
    return rows


def entry_detail(entry) -> str:
    """One line on what a registry entry is built from: encoders and fusion, or recipe and combiner."""
    raw = entry.raw
    if entry.kind == "ensemble":
        recipe = next((r for r in ("members", "seeds", "bagging", "boosting") if r in raw), "?")
        comb = raw.get("combiner", "mean")
        comb = comb.get("name") if isinstance(comb, dict) else comb
        return f"{recipe} -> {comb}"

    def name(value, key):
        return (value.get(key) if isinstance(value, dict) else value) if value else None

    parts = [name(raw.get("text"), "encoder"), name(raw.get("image"), "encoder")]
    fusion = name(raw.get("fusion"), "name")
    tokens = isinstance(raw.get("task"), dict) and raw["task"].get("type") == "tokens"
    return " + ".join(p for p in parts if p) + (f" ({fusion})" if fusion else "") + (" (tokens)" if tokens else "")
