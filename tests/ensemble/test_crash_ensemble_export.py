"""kill -9 during an ensemble and during an export; stale leftovers; an interrupted export keeps others' files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from support.crashkit import checkpoint_epoch, dead_pid, kill_when, leftovers, start_cli

pytestmark = pytest.mark.e2e
FAST = ("--epochs", "3", "--batch-size", "128")


def test_a_killed_ensemble_resumes_its_orphaned_member(run_cli, tmp_path):
    full = run_cli("ensemble", "digits_pair", *FAST, "--out", str(tmp_path / "full"), "--json")
    assert full.returncode == 0, full.stderr[-2000:]
    root = tmp_path / "victim"
    proc = start_cli("ensemble", "digits_pair", *FAST, "--out", str(root))
    assert kill_when(proc, lambda: checkpoint_epoch(root, "digits_gated") >= 1, delay=random.uniform(0, 0.5))
    listed = json.loads(run_cli("runs", "--out", str(root), "--json").stdout)
    assert {r["run"].split("/")[0]: r["state"] for r in listed}["digits_gated"] == "interrupted"
    again = run_cli("ensemble", "digits_pair", *FAST, "--out", str(root), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "digits_concat: reusing finished run" in again.stderr
    assert "digits_gated: resuming interrupted run" in again.stderr
    assert len(list(root.glob("digits_gated/*"))) == 1  # continued in its folder, not retrained in a new one
    got, want = json.loads(again.stdout), json.loads(full.stdout)
    assert got["test"] == want["test"] and got["val"] == want["val"]
    assert [m["test_accuracy"] for m in got["members"]] == [m["test_accuracy"] for m in want["members"]]
    assert all(r["state"] == "finished" for r in json.loads(run_cli("runs", "--out", str(root), "--json").stdout))
    assert leftovers(root) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    spec = resolve_spec("digits_concat")
    spec["train"].update(epochs=1, batch_size=128)
    return train(spec, Options(out=tmp_path_factory.mktemp("runs"), quiet=True)).path


def test_a_killed_export_leaves_nothing_the_next_export_trips_over(run_cli, finished_run, tmp_path):
    out = tmp_path / "new" / "onnx"
    proc = start_cli("export", str(finished_run), "-o", str(out))
    kill_when(proc, lambda: any(out.glob(".mmzoo-export-*")), delay=random.uniform(0, 1.0))
    res = run_cli("export", str(finished_run), "-o", str(out), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert Path(json.loads(res.stdout)["path"]).is_file()
    assert leftovers(out) == []


def test_an_interrupted_export_removes_only_what_it_wrote(finished_run, tmp_path, monkeypatch):
    from mmzoo.onnx import export
    from mmzoo.runs.folders import Run

    out = tmp_path / "made" / "by" / "export"

    def interrupted(source, ref, work, out_dir, *rest):
        (work / "fp32.onnx").write_bytes(b"half")
        (out_dir / "other.onnx").write_bytes(b"finished meanwhile by another export")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(Run(finished_run), out)
    assert sorted(p.name for p in out.iterdir()) == ["other.onnx"]

    monkeypatch.setattr(export, "_export", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        export.export_run(Run(finished_run), tmp_path / "fresh" / "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]  # nothing else there: its own folders go too


def test_training_sweeps_stale_leftovers_of_dead_writers_only(finished_run, tmp_path):
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    root = tmp_path / "runs"
    old = root / "digits_concat" / "20200101-000000" / "checkpoints"
    old.mkdir(parents=True)
    dead = dead_pid()
    stale = [old / f".LATEST.{dead}.abcd1234.tmp", old.parent / f".status.json.{dead}.k2j4h5g6.tmp"]
    for path in stale:
        path.write_text("")
    (old / f".epoch-0002.{dead}.tmp").mkdir()
    live = old / f".LATEST.{os.getppid()}.abcd1234.tmp"  # a live process: not ours to remove
    live.write_text("")
    spec = resolve_spec("digits_text")
    spec["train"].update(epochs=1, batch_size=256)
    train(spec, Options(out=root, quiet=True))
    assert leftovers(old.parent) == [live]
