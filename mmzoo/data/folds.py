"""Provides group-aware resampling: stratified k-fold assignment and bootstrap draws that keep groups whole.

Near-duplicates (a manifest's ``group``) never straddle a fold, and a bootstrap draws whole
groups, so a bagged member's out-of-bag rows hold no twin of a row it trained on.
"""

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


def group_bootstrap(groups, seed) -> np.ndarray:
    """Row indices (int64) of one bootstrap draw that resamples whole groups with replacement.

    With every sample its own group (no ``group`` field), this is exactly the plain row
    bootstrap ``integers(0, n, size=n)``, so runs bagged before groups were honoured stay
    reusable. Otherwise G groups are drawn out of G and all rows of each drawn group taken
    (a cluster bootstrap), in draw order; the number of rows varies around n.
    """
    codes = group_codes(groups, len(groups)) if not isinstance(groups, np.ndarray) else groups.astype(np.int64)
    n = len(codes)
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(codes, return_inverse=True)
    if len(unique) == n:
        return rng.integers(0, n, size=n).astype(np.int64)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    drawn = rng.integers(0, len(unique), size=len(unique))
    return np.concatenate([rows_of[g] for g in drawn]).astype(np.int64)
