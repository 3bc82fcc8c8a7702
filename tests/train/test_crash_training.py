"""kill -9 during training, around early stopping, with a damaged LATEST or two resumes at once: resume stays exact."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
from support.crashkit import (
    ES_REGISTRY,
    checkpoint_epoch,
    kill_when,
    leftovers,
    mark_interrupted,
    metrics,
    start_cli,
)

pytestmark = pytest.mark.e2e
RESULTS = ("metrics.json", "model.safetensors", "probs_val.safetensors", "probs_test.safetensors")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "registry.yaml"
    path.write_text(ES_REGISTRY)
    return path


@pytest.fixture(scope="module")
def uninterrupted(run_cli, registry, tmp_path_factory) -> Path:
    """The reference: es_concat trained without interruption, ended by early stopping.

    The epoch it stops on depends on the CPU's floating-point kernels (epoch 9 here, 3 on
    another machine), so the tests read it from this run instead of assuming one.
    """
    res = run_cli("--registry", str(registry), "train", "es_concat", "--out", str(tmp_path_factory.mktemp("full")),
                  "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = Path(json.loads(res.stdout)["path"])
    assert 3 <= stop_epoch(run) < 30  # patience 2: at least three epochs, and it did stop early
    return run


def stop_epoch(run: Path) -> int:
    return metrics(run)["epochs"]


def copy_killed_after_last_checkpoint(run: Path, dest: Path) -> Path:
    """The run as a kill -9 just after early stopping's last checkpoint leaves it: no results, owner dead."""
    folder = dest / "es_concat" / run.name
    shutil.copytree(run, folder)
    (folder / "digests.json").unlink(missing_ok=True)
    mark_interrupted(folder, *RESULTS)
    return folder


def resume(run_cli, registry: Path, folder: Path):
    return run_cli("--registry", str(registry), "train", "--resume", str(folder), "--json")


def epochs_in_history(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "history.jsonl").read_text().splitlines()]


def test_killed_just_after_early_stopping_resumes_to_the_same_epoch(run_cli, registry, uninterrupted, tmp_path):
    folder = copy_killed_after_last_checkpoint(uninterrupted, tmp_path)
    listed = json.loads(run_cli("runs", "--out", str(tmp_path), "--json").stdout)
    assert [r["state"] for r in listed] == ["interrupted"]
    res = resume(run_cli, registry, folder)
    assert res.returncode == 0, res.stderr[-2000:]
    assert metrics(folder) == metrics(uninterrupted)
    assert epochs_in_history(folder) == list(range(1, stop_epoch(uninterrupted) + 1))


@pytest.mark.parametrize("garbage", [b"../\n", b"\xff\xfe\x00epoch-0042"])
def test_a_damaged_latest_falls_back_to_the_newest_complete_checkpoint(run_cli, registry, uninterrupted, tmp_path, garbage):
    folder = copy_killed_after_last_checkpoint(uninterrupted, tmp_path)
    (folder / "checkpoints" / "LATEST").write_bytes(garbage)
    res = resume(run_cli, registry, folder)
    assert res.returncode == 0, res.stderr[-2000:]
    newest = f"epoch-{stop_epoch(uninterrupted):04d}"
    assert "LATEST" in res.stderr and f"newest complete checkpoint, {newest}" in res.stderr
    assert f"after epoch {stop_epoch(uninterrupted)}" in res.stderr  # not restarted from epoch 1
    assert (folder / "checkpoints" / newest / "state.json").exists()
    assert metrics(folder) == metrics(uninterrupted)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_kills_then_resume_match_the_uninterrupted_run(run_cli, registry, uninterrupted, tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "runs"
    proc = start_cli("--registry", str(registry), "train", "es_concat", "--out", str(root))
    target = rng.randint(1, stop_epoch(uninterrupted))  # up to and including the epoch early stopping ends on
    killed = kill_when(proc, lambda: checkpoint_epoch(root, "es_concat") >= target, delay=rng.uniform(0, 0.4))
    folder = next(root.glob("es_concat/*"))
    if killed:
        state = json.loads(run_cli("runs", "--out", str(root), "--json").stdout)[0]["state"]
        assert state == "interrupted"
        # kill the first resume too, at a random moment, before letting one finish
        again = start_cli("--registry", str(registry), "train", "--resume", str(folder))
        kill_when(again, lambda: True, delay=rng.uniform(2.0, 5.0))
        if not (folder / "metrics.json").exists():
            res = resume(run_cli, registry, folder)
            assert res.returncode == 0, res.stderr[-2000:]
    assert metrics(folder) == metrics(uninterrupted)
    assert epochs_in_history(folder) == list(range(1, stop_epoch(uninterrupted) + 1))
    assert leftovers(root) == []  # the resume swept what the kills left


def test_two_resumes_at_once_the_second_is_refused_naming_the_holder(run_cli, registry, uninterrupted, tmp_path):
    folder = copy_killed_after_last_checkpoint(uninterrupted, tmp_path)
    shutil.rmtree(folder / "checkpoints")  # so the first resume trains long enough to be caught
    first = start_cli("--registry", str(registry), "train", "--resume", str(folder))
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        lock = folder / ".lock"
        if lock.exists() and f'"pid": {first.pid}' in lock.read_text():
            break
        time.sleep(0.05)
    second = resume(run_cli, registry, folder)
    first.wait(timeout=300)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"is being trained by pid {first.pid}" in second.stderr
    assert first.returncode == 0
    assert metrics(folder) == metrics(uninterrupted)


def test_commands_that_take_the_newest_run_take_the_newest_finished_one(run_cli, uninterrupted, tmp_path):
    finished = tmp_path / "es_concat" / "20200101-000000"
    shutil.copytree(uninterrupted, finished)
    interrupted = tmp_path / "es_concat" / "20200101-000001"
    shutil.copytree(uninterrupted, interrupted)
    mark_interrupted(interrupted, *RESULTS)
    res = run_cli("eval", "es_concat", "--out", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["run"] == "es_concat/20200101-000000"
    listed = run_cli("runs", "--out", str(tmp_path))
    assert "interrupted" in listed.stdout and f"mmzoo train --resume {interrupted}" in listed.stderr
