"""Bagging draws whole groups: a bag holds every row of a group it drew, as many times as drawn, or none."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmzoo.data.folds import group_bootstrap


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), min_size=1, max_size=40), st.integers(0, 10**6))
def test_a_drawn_group_comes_whole_and_undrawn_groups_not_at_all(groups, seed):
    rows = group_bootstrap(groups, seed)
    assert rows.dtype == np.int64 and ((rows >= 0) & (rows < len(groups))).all()
    times = Counter(rows.tolist())
    by_group: dict = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g if g is not None else ("row", i), []).append(times.get(i, 0))
    for counts in by_group.values():
        assert len(set(counts)) == 1  # every row of a group drawn the same number of times
    assert np.array_equal(rows, group_bootstrap(groups, seed))  # seeded: a rerun draws the same bag


@given(st.integers(1, 50), st.integers(0, 10**6))
def test_without_groups_it_is_the_plain_row_bootstrap(n, seed):
    plain = np.random.default_rng(seed).integers(0, n, size=n)
    assert np.array_equal(group_bootstrap([None] * n, seed), plain)


def test_twins_never_straddle_a_bag_and_its_out_of_bag_rows():
    groups = [f"g{i // 3}" for i in range(300)]  # 100 groups of three near-twins
    rows = group_bootstrap(groups, [0, 1])
    inside = {groups[r] for r in rows}
    out_of_bag = {groups[i] for i in set(range(300)) - set(rows.tolist())}
    assert inside and out_of_bag and not inside & out_of_bag
