"""The library under the TUI's new screens: per-sample predictions, tags and deletion, spec differences."""

from __future__ import annotations

import json

import pytest

from mmzoo.errors import RunError
from mmzoo.runs.folders import list_runs
from mmzoo.runs.manage import delete_run, matches, parse_tags, read_tags, set_tags
from mmzoo.runs.predictions import load_predictions
from mmzoo.runs.specdiff import flatten, spec_differences


def test_predictions_agree_with_the_runs_own_metrics(trained_runs):
    """The confusion matrix and accuracy rebuilt from probs_test match metrics.json; select filters exactly."""
    run = next(r for r in list_runs(trained_runs) if r.model == "tiny_concat")
    test = run.metrics["test"]
    predictions = load_predictions(run.path, "test")
    assert predictions.classes == test["classes"] and len(predictions) == test["n"]
    assert predictions.confusion() == test["confusion_matrix"]
    assert predictions.accuracy() == pytest.approx(test["accuracy"])
    mistakes = predictions.select()
    assert len(mistakes) == len(predictions) - sum(test["confusion_matrix"][i][i] for i in range(2))
    assert all(not m.correct for m in mistakes)
    assert [m.confidence for m in mistakes] == sorted((m.confidence for m in mistakes), reverse=True)
    first, second = predictions.classes
    cell = predictions.select(true=first, predicted=second)
    assert len(cell) == test["confusion_matrix"][0][1] and all(m.true == first and m.predicted == second for m in cell)
    right = predictions.select(true=first, predicted=first, mistakes_only=False)
    assert len(right) == test["confusion_matrix"][0][0]
    sample = mistakes[0] if mistakes else predictions.sample(0)
    row = predictions.probs[sample.index]
    assert sample.top[0] == (sample.predicted, pytest.approx(float(row.max())))
    assert [p for _, p in sample.top] == sorted((p for _, p in sample.top), reverse=True)
    assert sample.id == predictions.ids[sample.index] and sample.id  # real sample ids, not positions
    with pytest.raises(RunError, match="no class 'nope'"):
        predictions.select(true="nope")


def test_predictions_of_a_missing_split_or_file_say_what_to_do(trained_runs, tmp_path):
    run = list_runs(trained_runs)[0]
    with pytest.raises(RunError, match="split must be one of val, test"):
        load_predictions(run.path, "train")
    with pytest.raises(RunError, match="probs_val.safetensors is missing"):
        load_predictions(tmp_path, "val")


def test_tags_round_trip_and_reject_odd_words(runs_copy):
    run = list_runs(runs_copy)[0]
    assert read_tags(run.path) == []
    assert set_tags(run.path, parse_tags("keep, baseline keep")) == ["baseline", "keep"]
    assert json.loads((run.path / "tags.json").read_text()) == ["baseline", "keep"]
    assert read_tags(run.path) == ["baseline", "keep"]
    with pytest.raises(RunError, match="is not a short word"):
        parse_tags("ok bad/tag")
    set_tags(run.path, [])
    assert not (run.path / "tags.json").exists() and read_tags(run.path) == []
    (run.path / "tags.json").write_text("{broken")
    with pytest.raises(RunError, match="tags.json is unreadable"):
        read_tags(run.path)


def test_filter_words_and_tags():
    assert matches("concat fini", "tiny_concat/1", "model", "finished", tags=[])
    assert not matches("concat failed", "tiny_concat/1", "model", "finished", tags=[])
    assert matches("#keep", "x", tags=["keep"]) and not matches("#kee", "x", tags=["keep"])
    assert matches("kee", "x", tags=["keep"]) and matches("", "x")


def test_delete_removes_one_run_and_refuses_anything_else(runs_copy, tmp_path):
    runs = list_runs(runs_copy)
    victim, other = runs[0], runs[1]
    with pytest.raises(RunError, match="is not a run under"):
        delete_run(victim.path, tmp_path / "elsewhere")
    with pytest.raises(RunError, match="not a run folder"):
        delete_run(runs_copy, runs_copy)
    from mmzoo.runs import lock

    (victim.path / "status.json").write_text(json.dumps({"state": "running", **lock.owner()}))
    with lock.hold(victim.path, "training"), pytest.raises(RunError, match="is marked running"):
        delete_run(victim.path, runs_copy)  # its owner (this process) is alive and holds the run lock
    (victim.path / "status.json").write_text(json.dumps({"state": "running"}))
    delete_run(victim.path, runs_copy)  # no owner alive: it reads interrupted, and its user may remove it
    victim, other = other, None
    (victim.path / "status.json").write_text(json.dumps({"state": "finished"}))
    delete_run(victim.path, runs_copy)
    assert not victim.path.exists() and not victim.path.parent.exists()  # its model folder held only it
    assert list_runs(runs_copy) == []


def test_spec_differences_name_each_changed_setting():
    a = {"model": {"train": {"lr": 0.1, "epochs": 2}, "fusion": {"name": "concat"}}, "mmzoo_version": "1",
         "members": [{"name": "x", "path": "/a"}]}
    b = {"model": {"train": {"lr": 0.2, "epochs": 2}}, "mmzoo_version": "2", "members": [{"name": "y", "path": "/b"}]}
    assert flatten(a)["model.train.lr"] == 0.1 and flatten({"c": [1, 2]}) == {"c": [1, 2]}
    assert dict(spec_differences([a, b])) == {"model.train.lr": [0.1, 0.2], "model.fusion.name": ["concat", None],
                                              "members.0.name": ["x", "y"]}
    assert spec_differences([a, a]) == []


def test_loading_the_tui_does_not_load_numpy_or_safetensors():
    """The error-analysis screen reads predictions only when used, so the first paint stays light."""
    import subprocess
    import sys

    code = "import sys, mmzoo.tui.app; print(sorted(m for m in ('numpy', 'safetensors') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
