"""Damaged run folders: metrics.json, status.json and history.jsonl of the wrong shape are named, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from badinput import assert_refused, run, workspace  # noqa: F401

from mmzoo.train.metrics import classification_metrics

CLASSES = ["cat", "dog"]


def fake_run(root, model: str = "m_text", run_id: str = "20260101-000000"):
    """A finished classifier run as training leaves it (without weights: these commands do not read them)."""
    path = root / "runs" / model / run_id
    path.mkdir(parents=True)
    spec = {"model": {"name": model, "kind": "model", "text": {"encoder": "small_text"}, "train": {"epochs": 1},
                      "task": {"dataset": "d", "type": "classification"}},
            "data": {"dataset": "d", "fingerprint": "f", "label_set": "label", "classes": CLASSES}}
    (path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (path / "status.json").write_text(json.dumps({"state": "finished", "time": 0}))
    probs, labels = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])
    metrics = {"best_epoch": 1, "epochs": 1, "train_seconds": 0.1, "parameters": 10, "trainable_parameters": 10,
               "val": classification_metrics(probs, labels, CLASSES),
               "test": classification_metrics(probs, labels, CLASSES)}
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "history.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5, "val_accuracy": 1.0}) + "\n")
    return path


def test_a_well_formed_run_evaluates(ws, capsys):
    path = fake_run(ws.root)
    result = run(capsys, "eval", path)
    assert result.rc == 0 and "accuracy 1.0000" in result.out, result.err


def _edit(path, change):
    metrics = json.loads((path / "metrics.json").read_text())
    change(metrics)
    (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.mark.parametrize("change,says", [
    (lambda m: m.update(best_epoch="x"), "best_epoch is 'x', expected a number"),
    (lambda m: m.update(test=[]), "test is [], expected a mapping"),
    (lambda m: m["test"].update(accuracy="high"), "test.accuracy is 'high', expected a number"),
    (lambda m: m["test"].pop("n"), "test.n is missing"),
    (lambda m: m["test"].update(classes="cat,dog"), "test.classes must be a non-empty list"),
    (lambda m: m["test"].update(confusion_matrix=[[1]]), "test.confusion_matrix must be a 2x2 table"),
    (lambda m: m["val"]["per_class"]["cat"].update(f1=None), "val.per_class must map each class"),
])
@pytest.mark.parametrize("command", ["eval", "compare", "runs"])
def test_a_hand_edited_metrics_json_is_named_by_every_reader(ws, capsys, change, says, command):
    path = fake_run(ws.root)
    _edit(path, change)
    ws.freeze()
    args = {"eval": ["eval", path], "compare": ["compare", path], "runs": ["runs", "--out", ws.root / "runs"]}[command]
    assert_refused(run(capsys, *args), "metrics.json", says, rc=0 if command == "runs" else 1)
    ws.assert_unchanged()


def test_a_run_whose_metrics_json_is_gone_is_damaged_not_finished_and_not_finished(ws, capsys):
    path = fake_run(ws.root)
    (path / "metrics.json").unlink()
    says = "status.json says finished but metrics.json is missing"
    result = run(capsys, "eval", path)
    assert_refused(result, says)
    assert "is finished, not finished" not in result.err
    assert_refused(run(capsys, "compare", path), says)  # it was compared with nan before
    assert_refused(run(capsys, "runs", "--out", ws.root / "runs"), "broken", says, rc=0)


@pytest.mark.parametrize("status,says", [
    ({"state": 5}, "state is 5, expected one of running, finished, failed, cancelled"),
    ({"state": "done"}, "state is 'done'"),
    (None, "has no status.json"),
])
def test_a_status_json_with_an_unknown_state_is_named(ws, capsys, status, says):
    path = fake_run(ws.root)
    if status is None:
        (path / "status.json").unlink()
    else:
        (path / "status.json").write_text(json.dumps(status))
    result = run(capsys, "eval", path)
    assert_refused(result, says)
    assert ", not finished" not in result.err or status is None


@pytest.mark.parametrize("line,says", [
    ('{"epoch": 2, "lo', "history.jsonl:2: bad JSON"),
    ("[1, 2]", "history.jsonl:2: expected an object per epoch"),
    ('{"epoch": 2, "loss": "x"}', "history.jsonl:2: loss is 'x', expected a number"),
    ('{"epoch": 2}', "history.jsonl:2: loss is missing"),
])
def test_history_rows_are_checked_with_their_line(ws, line, says):
    from mmzoo.errors import RunError
    from mmzoo.runs.folders import Run

    path = fake_run(ws.root)
    with open(path / "history.jsonl", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(RunError) as caught:
        Run(path).history()  # the TUI's curves read it
    assert says in str(caught.value)


def test_a_missing_weights_file_gives_one_damaged_hint(ws, capsys):
    path = fake_run(ws.root)
    (path / "model.safetensors").mkdir()
    (path / "digests.json").write_text(json.dumps({"model.safetensors": "0" * 64}))
    result = run(capsys, "eval", path)
    assert_refused(result, "model.safetensors is not a file")
    assert result.err.count("the run folder is damaged") == 1, result.err
