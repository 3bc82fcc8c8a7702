"""Provides a dataset's counts: rows, classes, splits and groups, as `mmzoo data check` prints them."""

from __future__ import annotations

from collections import Counter

from mmzoo.data import SPLITS, Dataset


def summarise(dataset: Dataset, label_set: str | None = None) -> dict:
    """Row, class, split and group counts of ``dataset`` (JSON-able)."""
    label_set = label_set or dataset.default_label_set
    classes = dataset.classes(label_set)
    per_class = {c: dict.fromkeys(SPLITS, 0) for c in classes}
    for s in dataset.samples:
        per_class[s.labels[label_set]][s.split] += 1
    groups = Counter(s.group or "\0" + s.id for s in dataset.samples)
    split_of: dict[str, set] = {}
    for s in dataset.samples:
        split_of.setdefault(s.group or "\0" + s.id, set()).add(s.split)
    sizes = sorted(groups.values(), reverse=True)
    totals = [sum(per_class[c][split] for split in SPLITS) for c in classes]
    return {
        "dataset": dataset.name,
        "rows": len(dataset.samples),
        "label_set": label_set,
        "classes": len(classes),
        "splits": {split: sum(s.split == split for s in dataset.samples) for split in SPLITS},
        "per_class": per_class,
        "groups": len(groups),
        "grouped_rows": sum(n for n in sizes if n > 1),
        "largest_group": sizes[0] if sizes else 0,
        "groups_across_splits": sum(len(v) > 1 for v in split_of.values()),
        "imbalance": (max(totals) / max(1, min(totals))) if totals else 1.0,
    }
