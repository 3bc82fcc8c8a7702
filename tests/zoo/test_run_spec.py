"""RunSpec: a run's spec.yaml typed once, with the one reuse test and the one reopened-data check."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mmzoo.errors import RunError
from mmzoo.runs.spec import RunSpec

MODEL = {"name": "m", "text": {"encoder": "small_text"}, "task": {"dataset": "digits-match"}, "train": {"seed": 0}}
DATA = {"dataset": "digits-match", "label_set": "match", "fingerprint": "abc", "classes": ["no", "yes"]}


def test_a_model_run_is_typed_and_matches_only_its_own_spec_data_and_resample():
    spec = RunSpec.from_dict({"model": MODEL, "data": DATA, "resample": {"kind": "bagging", "rows_sha256": "r"}})
    assert spec.kind == "model" and spec.name == "m" and spec.data.classes == ("no", "yes")
    assert spec.matches(MODEL, "abc", {"kind": "bagging", "rows_sha256": "r"})
    assert not spec.matches(MODEL, "abc", None)  # trained on other rows
    assert not spec.matches(MODEL, "other", {"kind": "bagging", "rows_sha256": "r"})  # other data
    assert not spec.matches({**MODEL, "train": {"seed": 1}}, "abc", {"kind": "bagging", "rows_sha256": "r"})


def test_an_ensemble_run_never_stands_in_for_a_model():
    spec = RunSpec.from_dict({"kind": "ensemble", "ensemble": {"name": "e"}, "combiner": {"name": "mean"},
                              "members": [{"name": "a/1", "path": "/x"}], "data": DATA})
    assert spec.kind == "ensemble" and spec.name == "e" and spec.members[0]["name"] == "a/1"
    assert not spec.matches(MODEL, "abc")


def test_reopening_changed_data_is_refused_by_name():
    spec = RunSpec.from_dict({"model": MODEL, "data": DATA})
    same = SimpleNamespace(name="digits-match", fingerprint="abc")
    assert spec.reopen_dataset("m/1", opened=same) is same
    with pytest.raises(RunError, match="m/1 was trained on other data than 'digits-match' holds now"):
        spec.reopen_dataset("m/1", opened=SimpleNamespace(name="digits-match", fingerprint="changed"))
