"""Checkpoint pointers, run locks, owners and stale leftovers, in-process and fast (no CLI, no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.crashkit import dead_pid

from mmzoo.errors import RunError
from mmzoo.runs import lock as runlock
from mmzoo.runs.folders import Run, find_run
from mmzoo.runs.shape import spec_problem
from mmzoo.train import checkpoint


def tiny():
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def save_epoch(folder: Path, epoch: int) -> None:
    model, opt = tiny()
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    progress = {"epoch": epoch, "step": epoch, "best": 0.5, "best_epoch": epoch, "bad_epochs": 0, "seconds": 1.0,
                "history": []}
    checkpoint.save(folder, model, checkpoint.trained_state(model), opt, progress)


@pytest.mark.parametrize("pointer", ["garbage\n", "../\n", "../../etc/passwd", "epoch-0009\n", "/tmp\n", ""])
def test_a_bad_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path, pointer):
    save_epoch(tmp_path, 2)
    (tmp_path / "LATEST").write_text(pointer)
    found, note = checkpoint.find_latest(tmp_path)
    assert found == tmp_path / "epoch-0002"
    assert "LATEST" in note and "epoch-0002" in note


def test_an_incomplete_checkpoint_is_never_chosen(tmp_path):
    save_epoch(tmp_path, 2)
    save_epoch(tmp_path, 3)
    (tmp_path / "epoch-0003" / "optimizer.safetensors").unlink()
    found, note = checkpoint.find_latest(tmp_path)
    assert found is None and "no complete checkpoint" in note  # save() had removed epoch-0002
    (tmp_path / "LATEST").unlink()
    assert checkpoint.find_latest(tmp_path) == (None, None)


def test_save_removes_only_the_older_checkpoints_it_replaces(tmp_path):
    save_epoch(tmp_path, 5)
    (tmp_path / "LATEST").write_text("../\n")  # as a damaged pointer would make a resume start over
    save_epoch(tmp_path, 1)
    assert (tmp_path / "epoch-0005" / "state.json").exists()  # newer: not this save's to delete
    save_epoch(tmp_path, 2)
    assert not (tmp_path / "epoch-0001").exists() and (tmp_path / "epoch-0005").exists()
    assert (tmp_path / "LATEST").read_text().strip() == "epoch-0002"
    save_epoch(tmp_path, 2)  # the same epoch again (after a resume): replaced in place
    assert checkpoint.complete(tmp_path / "epoch-0002") and runlock.sweep(tmp_path) == []


@pytest.mark.parametrize("damage", ["state-not-json", "state-missing-field", "optimizer-truncated",
                                    "optimizer-wrong-shape", "rng-garbage"])
def test_a_damaged_checkpoint_file_is_named(tmp_path, damage):
    save_epoch(tmp_path, 1)
    ckpt = tmp_path / "epoch-0001"
    if damage == "state-not-json":
        (ckpt / "state.json").write_text("{not json")
    elif damage == "state-missing-field":
        state = json.loads((ckpt / "state.json").read_text())
        del state["bad_epochs"]
        (ckpt / "state.json").write_text(json.dumps(state))
    elif damage == "optimizer-truncated":
        data = (ckpt / "optimizer.safetensors").read_bytes()
        (ckpt / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "optimizer-wrong-shape":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(ckpt / "optimizer.safetensors"))
        save_file({k: torch.zeros(7) if v.dim() else v for k, v in tensors.items()}, str(ckpt / "optimizer.safetensors"))
    else:
        (ckpt / "rng.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    model, opt = tiny()
    file = {"state": "state.json", "optimizer": "optimizer.safetensors", "rng": "rng.safetensors"}[damage.split("-")[0]]
    with pytest.raises(RunError) as caught:
        checkpoint.restore(ckpt, model, opt)
    assert str(ckpt / file) in caught.value.message and "resume again" in caught.value.hint


def test_a_run_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    assert runlock.lock_held(tmp_path) is None
    with runlock.hold(tmp_path, "x/1") as record:
        assert runlock.lock_held(tmp_path) is True
        with pytest.raises(RunError, match=f"x/1 is being trained by pid {record['pid']} on"):
            with runlock.hold(tmp_path, "x/1", wait=0.1):
                pass
    assert runlock.lock_held(tmp_path) is False
    with runlock.hold(tmp_path, "x/1"):  # free again once released
        pass


def test_a_killed_holder_releases_its_lock(tmp_path):
    code = ("import sys, time; from mmzoo.runs import lock as runlock; "
            f"ctx = runlock.hold(__import__('pathlib').Path({str(tmp_path)!r}), 'x'); ctx.__enter__(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout.readline().strip() == "held"
    assert runlock.lock_held(tmp_path) is True
    proc.kill()
    proc.wait()
    assert runlock.lock_held(tmp_path) is False


def test_owner_liveness_sees_dead_and_reused_pids():
    me = runlock.owner()
    assert runlock.alive(me) is True
    assert runlock.alive({**me, "pid": dead_pid()}) is False
    assert runlock.alive({**me, "pid_started": me["pid_started"] + 1}) is False  # the pid now names another process
    assert runlock.alive({**me, "host": "some-other-host"}) is None


def test_sweep_removes_only_leftovers_of_dead_writers(tmp_path):
    dead, live = dead_pid(), os.getppid()
    stale = [tmp_path / f".LATEST.{dead}.abcd1234.tmp", tmp_path / f".m.onnx.{dead}.x_y9z0ab.tmp"]
    for path in stale:
        path.write_text("")
    (tmp_path / f".epoch-0003.{dead}.tmp").mkdir()
    (tmp_path / f".mmzoo-export-{dead}-abc_1234").mkdir()
    kept = [tmp_path / f".LATEST.{live}.abcd1234.tmp", tmp_path / f".epoch-0003.{os.getpid()}.tmp",
            tmp_path / ".lock", tmp_path / "model.onnx", tmp_path / ".hidden-user-file"]
    for path in kept:
        path.write_text("")
    removed = runlock.sweep(tmp_path)
    assert len(removed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def write_run(root: Path, run_id: str, state: str, **status) -> Path:
    folder = root / "m" / run_id
    folder.mkdir(parents=True)
    spec = {"model": {"name": "m", "text": {"encoder": "small_text"}, "train": {}, "task": {}},
            "data": {"dataset": "d", "fingerprint": "f", "label_set": "l", "classes": ["a", "b"]}}
    (folder / "spec.yaml").write_text(json.dumps(spec))
    (folder / "status.json").write_text(json.dumps({"state": state, **status}))
    if state == "finished":
        (folder / "metrics.json").write_text("{}")
    return folder


def test_dead_runs_read_interrupted_and_the_newest_finished_run_is_taken(tmp_path):
    write_run(tmp_path, "20260101-000000", "finished")
    write_run(tmp_path, "20260101-000001", "running", pid=dead_pid())
    write_run(tmp_path, "20260101-000002", "running", **runlock.owner())
    assert Run(tmp_path / "m" / "20260101-000001").status["state"] == "interrupted"
    assert Run(tmp_path / "m" / "20260101-000002").status["state"] == "running"
    assert find_run("m", tmp_path).id == "20260101-000000"
    assert find_run("m", tmp_path, newest="unfinished").id == "20260101-000002"


@pytest.mark.parametrize("spec,problem", [
    ([1, 2], "not a mapping"), (None, "not a mapping"), ({"model": {}}, "data is missing"),
    ({"data": {"dataset": "d", "fingerprint": "f", "label_set": "l", "classes": []}}, "non-empty"),
    ({"data": {"dataset": "d", "fingerprint": 3, "label_set": "l", "classes": ["a"]}}, "data.fingerprint"),
    ({"data": {"dataset": "d", "fingerprint": "f", "label_set": "l", "classes": ["a"]}, "model": "x"}, "model is"),
    ({"kind": "ensemble", "data": {"dataset": "d", "fingerprint": "f", "label_set": "l", "classes": ["a"]},
      "ensemble": {}, "combiner": {"name": "mean"}, "members": ["x"]}, "members[0]"),
])
def test_spec_problems_are_named(spec, problem):
    assert problem in spec_problem(spec)


def test_a_latest_that_is_a_folder_is_reported_not_followed(tmp_path):
    save_epoch(tmp_path, 1)
    (tmp_path / "LATEST").unlink()
    (tmp_path / "LATEST").mkdir()
    found, note = checkpoint.find_latest(tmp_path)
    assert found == tmp_path / "epoch-0001" and "unreadable" in note
    with pytest.raises(RunError, match="cannot write the checkpoint of epoch 2"):
        save_epoch(tmp_path, 2)
    assert checkpoint.complete(tmp_path / "epoch-0001")  # nothing it did not replace was removed
