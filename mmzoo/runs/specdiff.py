"""Provides spec differences between runs: the dotted settings (``model.train.lr``) whose values differ."""

from __future__ import annotations

from typing import Any

# Bookkeeping that differs between runs and explains nothing about their results (members show by name).
IGNORED_KEYS = ("mmzoo_version",)
IGNORED_PREFIXES = ("member_of.",)
IGNORED_SUFFIXES = (".path",)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested spec as {"a.b.c": leaf}; lists of scalars stay whole, lists of mappings are indexed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value}


def spec_differences(specs: list[dict]) -> list[tuple[str, list[Any]]]:
    """(key, value in each spec) for every setting that is not the same in all of ``specs``; None: absent."""
    flat = [flatten(spec) for spec in specs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    rows = []
    for key in keys:
        if key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIXES):
            continue
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows
