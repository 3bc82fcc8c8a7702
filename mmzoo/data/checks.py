"""Provides the checks that a dataset can be trained and evaluated honestly (torch-free).

A dataset with one class scores 1.0 whatever the model does; an empty validation split leaves
early stopping and model selection blind; an empty test split leaves nothing to report; a class
that never occurs in training cannot be learned, and one missing from val or test is never
chosen on or never scored. The first kinds are errors (``mmzoo train`` refuses them), the
others warnings (``mmzoo data check`` reports them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mmzoo.data import SPLITS, Dataset
from mmzoo.errors import DataError


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    message: str


def split_findings(labels_by_split: dict[str, list[str]], classes: list[str]) -> list[Finding]:
    """Findings for the labels each split holds, against the declared classes."""
    out: list[Finding] = []
    seen = Counter(label for labels in labels_by_split.values() for label in labels)
    present = [c for c in classes if seen[c]]
    if len(present) < 2:
        only = f" (only {present[0]!r})" if present else ""
        out.append(Finding("error", f"the data has {len(present)} class{'es' if len(present) != 1 else ''}{only}; "
                                    "a classifier needs at least two, or every metric is trivially perfect"))
    for split in SPLITS:
        if not labels_by_split.get(split):
            out.append(Finding("error", f"the {split} split is empty; "
                               + {"train": "there is nothing to learn from",
                                  "val": "early stopping and model selection need validation rows",
                                  "test": "there is nothing to report test metrics on"}[split]
                               + " (add rows, or give some rows \"split\": \"" + split + "\")"))
    train = set(labels_by_split.get("train", ()))
    if labels_by_split.get("train"):
        for split in ("val", "test"):
            unseen = sorted({label for label in labels_by_split.get(split, ()) if label not in train})
            if unseen:
                out.append(Finding("warning", f"label(s) {', '.join(map(repr, unseen[:5]))}"
                                   f"{' ...' if len(unseen) > 5 else ''} occur in {split} but never in train, so the "
                                   "model cannot learn them"))
        for split, effect in (("val", "early stopping and model selection never see it"),
                              ("test", "its test precision and recall are not measured, and macro-F1 averages "
                                       "over the other classes")):
            held = set(labels_by_split.get(split, ()))
            absent = [c for c in classes if c in train and c not in held]
            if absent and held:
                out.append(Finding("warning", f"class(es) {', '.join(map(repr, absent[:5]))}"
                                   f"{' ...' if len(absent) > 5 else ''} have train rows but none in {split}: "
                                   f"{effect} (give some of their rows \"split\": \"{split}\")"))
    missing = [c for c in classes if not seen[c]]
    if missing and len(present) >= 2:
        out.append(Finding("warning", f"class(es) {', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}"
                                      " have no rows at all"))
    return out


def dataset_findings(dataset: Dataset, label_set: str | None = None) -> list[Finding]:
    ls = label_set or dataset.default_label_set
    by_split = {split: [s.labels[ls] for s in dataset.samples if s.split == split] for split in SPLITS}
    return split_findings(by_split, list(dataset.classes(ls)))


def require_trainable(dataset: Dataset, label_set: str | None = None) -> None:
    """Raise DataError when the data cannot be trained and evaluated honestly; warnings are not raised."""
    errors = [f.message for f in dataset_findings(dataset, label_set) if f.severity == "error"]
    if errors:
        where = dataset.source or dataset.name
        raise DataError(f"dataset {dataset.name!r} cannot be trained and evaluated honestly: " + "; ".join(errors),
                        hint=f"run `mmzoo data check {where}` for the full report" if dataset.source
                        else "pick another dataset or label set")
