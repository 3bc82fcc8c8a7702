"""Provides the automatic split of a user dataset: 70/15/15 per label, whole groups at a time (docs/data.md)."""

from __future__ import annotations

import hashlib

from mmzoo.data import SPLITS

FRACTIONS = (0.70, 0.15, 0.15)


def assign_splits(rows: list) -> dict[str, str]:
    """70/15/15 per label, whole groups at a time, ordered by a hash of the group (or id).

    The hash order makes the split survive reordering and additions. A group goes where the
    running count of its label's rows stands when the group starts, so rows without a group
    split exactly as 70/15/15 of each label. A group with an explicit split on any row keeps it.
    ``rows`` are mmzoo.data.manifest rows (id, label, split, group).
    """
    explicit = {r.group: r.split for r in rows if r.group and r.split}
    out = {r.id: explicit[r.group] for r in rows if not r.split and r.group in explicit}
    groups: dict[str, list] = {}
    for r in rows:
        if not r.split and r.id not in out:
            groups.setdefault(r.group or "\0id:" + r.id, []).append(r)
    by_label: dict[str, list[tuple[str, list]]] = {}
    for key, members in groups.items():  # a group is counted under its first row's label
        by_label.setdefault(members[0].label, []).append((key, members))
    for entries in by_label.values():
        entries.sort(key=lambda e: hashlib.sha256(e[0].removeprefix("\0id:").encode()).hexdigest())
        total = sum(len(members) for _, members in entries)
        n_train = round(FRACTIONS[0] * total)
        n_val = round(FRACTIONS[1] * total)
        splits, start = [], 0
        for _, members in entries:
            splits.append("train" if start < n_train else "val" if start < n_train + n_val else "test")
            start += len(members)
        sizes = [len(members) for _, members in entries]
        splits = _fill_starved(splits, sizes, (n_train, n_val, total - n_train - n_val))
        for (_, members), split in zip(entries, splits, strict=True):
            out.update({r.id: split for r in members})
    return out


def _fill_starved(splits: list[str], sizes: list[int], targets: tuple[int, int, int]) -> list[str]:
    """``splits`` (one per group, in hash order), re-cut when groups left a split with a row target empty.

    Whole groups overshoot: pairs of near-duplicates in a label of 8 rows (targets 6/1/1) start at rows
    0, 2, 4, 6, so they went train, train, train, val, and test got nothing; with every label alike the
    whole test split was empty and the folder was refused. Then, with 3 groups or more, the cut points
    in hash order that keep every split non-empty and land nearest the targets are taken instead. Labels
    whose splits all got rows (every label without groups) keep the plain cut, so their splits do not move.
    """
    starved = any(target > 0 and split not in splits for split, target in zip(SPLITS, targets, strict=True))
    if not starved or len(sizes) < 3:
        return splits
    ends = [0]
    for size in sizes:
        ends.append(ends[-1] + size)
    best = None
    for i in range(1, len(sizes) - 1):  # train: groups [0, i), val: [i, j), test: [j, len)
        for j in range(i + 1, len(sizes)):
            rows = (ends[i], ends[j] - ends[i], ends[-1] - ends[j])
            miss = sum(abs(r - t) for r, t in zip(rows, targets, strict=True))
            if best is None or miss < best[0]:
                best = (miss, i, j)
    _, i, j = best
    return ["train"] * i + ["val"] * (j - i) + ["test"] * (len(sizes) - j)
