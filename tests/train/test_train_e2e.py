"""End to end on digits-match: train, eval, runs, compare through the real CLI; kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "3", "--batch-size", "128"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def trained(run_cli, runs_dir):
    """A text-only, an image-only and a concat run on digits-match."""
    out = {}
    for model in ("digits_text", "digits_image", "digits_concat"):
        res = run_cli("train", model, *FAST, "--out", str(runs_dir), "--json")
        assert res.returncode == 0, res.stderr[-3000:]
        out[model] = json.loads(res.stdout)
    return out


def test_train_writes_a_complete_run_folder(trained):
    run = trained["digits_concat"]
    folder = run["path"]
    for name in ("spec.yaml", "model.safetensors", "metrics.json", "history.jsonl", "probs_val.safetensors",
                 "probs_test.safetensors", "status.json"):
        assert os.path.exists(os.path.join(folder, name)), name
    history = [json.loads(line) for line in open(os.path.join(folder, "history.jsonl"))]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    metrics = json.load(open(os.path.join(folder, "metrics.json")))
    test = metrics["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and len(test["confusion_matrix"]) == 2
    assert sum(map(sum, test["confusion_matrix"])) == test["n"]
    assert {"macro_f1", "micro_f1", "weighted_f1", "ece", "per_class"} <= set(test)


def test_eval_runs_and_compare(run_cli, trained, runs_dir):
    concat = trained["digits_concat"]["run"]
    ev = run_cli("eval", concat, "--out", str(runs_dir))
    assert ev.returncode == 0, ev.stderr
    assert "precision    recall  f1-score   support" in ev.stdout and "macro avg" in ev.stdout
    listed = json.loads(run_cli("runs", "--out", str(runs_dir), "--json").stdout)
    assert {r["run"] for r in listed} == {t["run"] for t in trained.values()}
    assert all(r["state"] == "finished" for r in listed)
    cmp = json.loads(run_cli("compare", *[t["run"] for t in trained.values()], "--out", str(runs_dir),
                             "--json").stdout)
    fused = next(r for r in cmp if r["kind"] == "fusion:concat")
    assert fused["text_baseline"] == trained["digits_text"]["run"]
    assert fused["image_baseline"] == trained["digits_image"]["run"]
    text_acc = trained["digits_text"]["test"]["accuracy"]
    assert fused["gain_vs_text"] == pytest.approx(fused["accuracy"] - text_acc)
    table = run_cli("compare", *[t["run"] for t in trained.values()], "--out", str(runs_dir))
    assert "vs text" in table.stdout and "fusion:concat" in table.stdout


def test_same_seed_same_metrics(run_cli, trained, runs_dir):
    again = run_cli("train", "digits_concat", *FAST, "--out", str(runs_dir), "--json")
    assert json.loads(again.stdout)["test"] == trained["digits_concat"]["test"]


def test_kill_minus_nine_then_resume_matches_uninterrupted(run_cli, tmp_path):
    args = ["train", "digits_gated", "--epochs", "6", "--batch-size", "64"]
    full = run_cli(*args, "--out", str(tmp_path / "full"), "--json")
    assert full.returncode == 0, full.stderr[-2000:]
    victim_root = tmp_path / "victim"
    proc = subprocess.Popen([sys.executable, "-m", "mmzoo.cli", *args, "--out", str(victim_root)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    latest = None
    while time.time() < deadline:
        found = list(victim_root.glob("*/*/checkpoints/LATEST"))
        if found and found[0].read_text().strip() >= "epoch-0002":
            latest = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest is not None, "no checkpoint appeared"
    run_folder = latest.parent.parent
    assert not (run_folder / "metrics.json").exists(), "the run finished before it was killed"
    resumed = run_cli("train", "--resume", str(run_folder), "--json")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    assert json.loads(resumed.stdout)["test"] == json.loads(full.stdout)["test"]
    history = [json.loads(line)["epoch"] for line in (run_folder / "history.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 4, 5, 6]


def test_fusion_learns_cross_modal_task_while_baselines_stay_at_chance(run_cli, tmp_path):
    acc = {}
    for model in ("digits_text", "digits_image", "digits_late", "digits_concat", "digits_gated"):
        res = run_cli("train", model, "--out", str(tmp_path), "--json")
        assert res.returncode == 0, res.stderr[-2000:]
        acc[model] = json.loads(res.stdout)["test"]["accuracy"]
    assert max(acc["digits_concat"], acc["digits_gated"]) >= 0.90, acc
    for unimodal in ("digits_text", "digits_image", "digits_late"):
        assert acc[unimodal] < 0.65, acc


def test_bad_inputs_give_clear_errors(run_cli, tmp_path):
    res = run_cli("train", "digits_concat", "--label-set", "nope", "--out", str(tmp_path))
    assert res.returncode == 1 and "no label set 'nope'" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", "digits_concat", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    res = run_cli("train", "--resume", "no-such-run", "--out", str(tmp_path))
    assert res.returncode == 1 and "no run 'no-such-run'" in res.stderr


def test_non_finite_loss_stops_with_epoch_and_step(run_cli, tmp_path):
    res = run_cli("train", "digits_concat", "--epochs", "2", "--lr", "1e30", "--out", str(tmp_path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "loss became nan at epoch 1, step" in res.stderr or "loss became inf at epoch 1, step" in res.stderr
    status = json.loads(next(tmp_path.glob("*/*/status.json")).read_text())
    assert status["state"] == "failed"


def test_training_refuses_a_dataset_that_fails_its_check(run_cli, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "manifest.jsonl").write_text(json.dumps({"text": "", "image": "nope.png", "label": "a"}) + "\n")
    res = run_cli("train", "digits_concat", "--dataset", str(folder), "--out", str(tmp_path / "runs"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"mmzoo data check {folder}" in res.stderr
