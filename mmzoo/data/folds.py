"""Provides group-aware, stratified k-fold assignment: near-duplicates never straddle a fold."""

from __future__ import annotations

import numpy as np


def group_codes(groups, n: int) -> np.ndarray:
    """Integer group per sample; None or empty strings make each sample its own group."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    codes: dict = {}
    out = np.empty(n, dtype=np.int64)
    for i, g in enumerate(groups):
        key = g if (g is not None and g != "") else ("\0sample", i)
        out[i] = codes.setdefault(key, len(codes))
    return out


def stratified_group_folds(labels, folds: int, seed: int = 0, groups=None) -> np.ndarray:
    """Fold id in [0, folds) per sample: whole groups per fold, every class spread evenly; seeded.

    Groups are dealt largest first (ties in a seeded random order) to the fold that holds the
    fewest samples of the group's majority class, then the fewest samples overall. With
    singleton groups this is a plain stratified k-fold.
    """
    y = np.asarray(labels, dtype=np.int64)
    integral = isinstance(groups, np.ndarray) and groups.dtype.kind in "iu"
    g = np.asarray(groups, dtype=np.int64) if integral else group_codes(groups, len(y))
    unique, inverse = np.unique(g, return_inverse=True)
    n_groups, n_classes = len(unique), int(y.max()) + 1 if len(y) else 1
    counts = np.zeros((n_groups, n_classes), dtype=np.int64)  # (G, C) samples of each class per group
    np.add.at(counts, (inverse, y), 1)
    sizes = counts.sum(axis=1)
    majority = counts.argmax(axis=1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    per_class = np.zeros((folds, n_classes), dtype=np.int64)
    per_fold = np.zeros(folds, dtype=np.int64)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for grp in order:
        c = majority[grp]
        best = min(range(folds), key=lambda f: (per_class[f, c], per_fold[f]))
        fold_of_group[grp] = best
        per_class[best] += counts[grp]
        per_fold[best] += sizes[grp]
    return fold_of_group[inverse]
