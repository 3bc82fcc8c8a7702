"""Scale-out: ensemble members as Ray tasks, and one model trained by two gloo processes under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from mmzoo.train.distributed import Context

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

# Two tiny fusions on digits-match, a few seconds each. {lr_b} lets a test make tiny_b diverge.
MEMBERS = """
models:
  tiny_a:
    description: tiny concat fusion
    text: {{encoder: small_text, dim: 16, max_length: 16, layers: 1}}
    image: {{encoder: small_cnn, image_size: 16, channels: [8, 16], dim: 16}}
    fusion: concat
    head: {{hidden: 16}}
    task: {{dataset: digits-match}}
    train: {{epochs: 2, lr: 0.003, batch_size: 64, patience: 0, precision: fp32, seed: 1}}
  tiny_b:
    description: tiny gated fusion
    text: {{encoder: small_text, dim: 16, max_length: 16, layers: 1}}
    image: {{encoder: small_cnn, image_size: 16, channels: [8, 16], dim: 16}}
    fusion: gated
    head: {{hidden: 16}}
    task: {{dataset: digits-match}}
    train: {{epochs: 2, lr: {lr_b}, batch_size: 64, patience: 0, precision: fp32, seed: 2}}
ensembles:
  tiny_pair:
    members: [tiny_a, tiny_b]
    combiner: mean
"""

# No BatchNorm and no dropout: the only difference DDP leaves is floating-point summation order.
# Batches of 5 leave 1 row for the last step of each epoch (2516 = 503 * 5 + 1), so rank 1
# also exercises the idle-rank path (one zero-weight row).
EXACT_BATCH = 5
EXACT = f"""
models:
  ddp_text_digit:
    description: BatchNorm- and dropout-free text model, to check DDP's gradient equals one process's
    text: {{encoder: small_text, dim: 32, max_length: 32}}
    head: {{hidden: 32, dropout: 0.0}}
    task: {{dataset: digits-match, label_set: digit}}
    train: {{epochs: 2, lr: 0.01, batch_size: {EXACT_BATCH}, patience: 0, precision: fp32}}
"""

RUN_FILES = ("spec.yaml", "model.safetensors", "metrics.json", "history.jsonl", "probs_val.safetensors",
             "probs_test.safetensors", "status.json", "checkpoints/LATEST")


def ok(res):
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    return res


def refused(res, *needles):
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)


def registry(tmp_path: Path, text: str, name: str = "registry.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def needs_ray():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'mmzoo[ray]'")


def member_files(path: Path) -> dict:
    return {"metrics": json.loads((path / "metrics.json").read_text()),
            **{split: load_file(str(path / f"probs_{split}.safetensors")) for split in ("val", "test")}}


@pytest.mark.ray
def test_ray_members_match_local_members_in_the_same_layout(run_cli, tmp_path):
    """Members trained as Ray tasks (1 CPU, so 1 torch thread each) equal members trained here with 1 thread."""
    needs_ray()
    reg = registry(tmp_path, MEMBERS.format(lr_b=0.003))
    local = json.loads(ok(run_cli("--registry", reg, "ensemble", "tiny_pair", "--out", str(tmp_path / "local"),
                                  "--json", env={"OMP_NUM_THREADS": "1"})).stdout)
    res = ok(run_cli("--registry", reg, "ensemble", "tiny_pair", "--executor", "ray", "--cpus-per-member", "1",
                     "--out", str(tmp_path / "ray"), "--json"))
    report = json.loads(res.stdout)
    assert "submitted to Ray" in res.stderr
    assert report["reused"] == [] and len(report["trained"]) == 2
    ensemble = Path(report["path"])
    assert ensemble.parent.parent == (tmp_path / "ray").resolve() and ensemble.parent.name == "tiny_pair"
    spec = yaml.safe_load((ensemble / "spec.yaml").read_text())
    assert spec["kind"] == "ensemble"
    for k, (mine, theirs) in enumerate(zip(report["members"], local["members"], strict=True)):
        path = Path(mine["path"])
        assert path.parent.parent == (tmp_path / "ray").resolve() and path.parent.name == ("tiny_a", "tiny_b")[k]
        assert spec["members"][k]["path"] == str(path.resolve())
        for name in RUN_FILES:
            assert (path / name).is_file(), (path, name)
        assert json.loads((path / "status.json").read_text())["state"] == "finished"
        member_spec = yaml.safe_load((path / "spec.yaml").read_text())
        assert member_spec["member_of"] == {"ensemble": "tiny_pair", "recipe": "members", "index": k}
        got, want = member_files(path), member_files(Path(theirs["path"]))
        for split in ("val", "test"):
            np.testing.assert_array_equal(got[split]["probs"], want[split]["probs"])
            assert got["metrics"][split] == want["metrics"][split]
    assert report["test"] == local["test"]


@pytest.mark.ray
def test_ray_reports_a_failed_member_and_a_rerun_trains_only_that_one(run_cli, tmp_path):
    needs_ray()
    out = str(tmp_path / "runs")
    broken = registry(tmp_path, MEMBERS.format(lr_b="1.0e+30"), "broken.yaml")  # AdamW steps of 1e30: NaN loss
    res = run_cli("--registry", broken, "ensemble", "tiny_pair", "--executor", "ray", "--out", out)
    refused(res, "1 of 2 ensemble member(s) failed on Ray", "tiny_b: loss became nan", "rerun the same command")
    [kept] = list((tmp_path / "runs" / "tiny_a").iterdir())
    assert json.loads((kept / "status.json").read_text())["state"] == "finished"
    assert not (tmp_path / "runs" / "tiny_pair").exists()  # no ensemble from half its members

    fixed = registry(tmp_path, MEMBERS.format(lr_b=0.003), "fixed.yaml")
    report = json.loads(ok(run_cli("--registry", fixed, "ensemble", "tiny_pair", "--executor", "ray",
                                   "--out", out, "--json")).stdout)
    assert report["reused"] == [f"tiny_a/{kept.name}"]
    assert [name.split("/")[0] for name in report["trained"]] == ["tiny_b"]


def test_ray_executor_without_ray_says_how_to_install_it(run_cli, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text("raise ImportError('No module named ray (simulated)')\n")
    path = os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))
    res = run_cli("ensemble", "digits_pair", "--executor", "ray", "--out", str(tmp_path / "runs"),
                  env={"PYTHONPATH": path})
    refused(res, "--executor ray needs Ray", "pip install 'mmzoo[ray]'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, needles", [
    (["ensemble", "digits_pair", "--address", "127.0.0.1:6379"], ["--address only apply to --executor ray"]),
    (["ensemble", "digits_boost", "--executor", "ray"], ["boosting recipe", "run it without --executor ray"]),
    (["ensemble", "digits_pair", "--executor", "ray", "--cpus-per-member", "0"], ["positive CPU count"]),
    (["ensemble", "digits_pair", "--executor", "ray", "--address", "127.0.0.1:1"], ["cannot reach the Ray cluster"]),
    (["ensemble", "--runs", "a", "b", "--executor", "ray"], ["--runs combines finished runs only"]),
])
def test_ray_option_mistakes_are_refused_before_training(run_cli, tmp_path, args, needles):
    if "--executor" in args:
        needs_ray()
    refused(run_cli(*args, "--out", str(tmp_path / "runs")), *needles)
    assert not (tmp_path / "runs").exists()


def test_shard_splits_each_global_batch_across_ranks_exactly_once():
    weights = torch.rand(20) + 0.5
    idx = torch.tensor([7, 3, 19, 0, 11, 5, 2])
    shards = [Context(torch.device("cpu"), rank=r, world_size=3, backend="gloo").shard(idx, weights)
              for r in range(3)]
    rows = torch.cat([mine for mine, _, _ in shards])
    assert sorted(rows.tolist()) == sorted(idx.tolist())
    for mine, own, total in shards:
        np.testing.assert_array_equal(own.numpy(), weights[mine].numpy())
        assert torch.isclose(total, weights[idx].sum() / 3)
    # rank 2 of 4 on a 2-row batch has no rows: it trains one row with zero weight
    mine, own, _ = Context(torch.device("cpu"), rank=2, world_size=4, backend="gloo").shard(idx[:2], weights)
    assert len(mine) == 1 and own.tolist() == [0.0]
    single = Context(torch.device("cpu")).shard(idx, weights)
    assert single[0] is idx and single[2] is None


def torchrun(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 -m mmzoo.cli ARGS` (a free rendezvous port; gloo on CPU)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "mmzoo.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_run(root: Path) -> Path:
    runs = [p.parent for p in root.glob("*/*/spec.yaml")]
    assert len(runs) == 1, runs
    return runs[0]


def test_torchrun_two_gloo_processes_write_one_run_close_to_a_single_process(run_cli, tmp_path):
    """digits_concat for 2 epochs on 2 CPU processes vs 1: one run folder, one checkpoint, close metrics.

    The global batch and its gradient are those of one process (see mmzoo.train.distributed), but
    dropout masks differ and small_cnn's BatchNorm normalises each rank's half batch with its
    own statistics, so the trajectory drifts a little: test accuracy must agree within 0.05
    and the per-epoch training loss within 0.01 (both runs are near chance after 2 epochs,
    loss about 0.69; the exact-gradient check is the next test).
    """
    ddp = ok(torchrun("train", "digits_concat", "--epochs", "2", "--out", str(tmp_path / "ddp"), "--json"))
    report = json.loads(ddp.stdout)  # rank 0 alone prints: two reports would not parse
    single = json.loads(ok(run_cli("train", "digits_concat", "--epochs", "2", "--out", str(tmp_path / "one"),
                                   "--json", env={"OMP_NUM_THREADS": "1"})).stdout)
    run = one_run(tmp_path / "ddp")
    assert str(run) == report["path"]
    assert (run / "checkpoints" / "LATEST").read_text().strip() == "epoch-0002"
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name != "LATEST"] == ["epoch-0002"]
    assert yaml.safe_load((run / "spec.yaml").read_text())["distributed"] == {"backend": "gloo", "world_size": 2}
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert abs(report["test"]["accuracy"] - single["test"]["accuracy"]) <= 0.05
    ddp_loss = [json.loads(line)["loss"] for line in (run / "history.jsonl").read_text().splitlines()]
    one_loss = [json.loads(line)["loss"] for line in
                (one_run(tmp_path / "one") / "history.jsonl").read_text().splitlines()]
    assert len(ddp_loss) == len(one_loss) == 2
    np.testing.assert_allclose(ddp_loss, one_loss, atol=0.01)


def test_torchrun_gradient_equals_the_single_process_gradient(run_cli, tmp_path):
    """Without BatchNorm or dropout, 2 ranks follow one process's trajectory up to summation order (1e-5).

    Measured differences are about 1e-6 after 1000 steps; a missing all-reduce gives 1e-1.
    """
    from mmzoo.train.factory import open_dataset

    assert len(open_dataset("digits-match").split("train")) % EXACT_BATCH == 1  # the idle-rank step happens
    reg = registry(tmp_path, EXACT)
    ok(torchrun("--registry", reg, "train", "ddp_text_digit", "--out", str(tmp_path / "ddp")))
    ok(run_cli("--registry", reg, "train", "ddp_text_digit", "--out", str(tmp_path / "one"),
               env={"OMP_NUM_THREADS": "1"}))
    ddp, one = one_run(tmp_path / "ddp"), one_run(tmp_path / "one")
    a = [json.loads(line) for line in (ddp / "history.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (one / "history.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 2
    assert b[-1]["loss"] < b[0]["loss"] - 0.2  # it learns, so a wrong gradient would show
    for key in ("loss", "val_nll"):
        np.testing.assert_allclose([r[key] for r in a], [r[key] for r in b], rtol=0, atol=1e-5)
    got, want = member_files(ddp), member_files(one)
    np.testing.assert_allclose(got["test"]["probs"], want["test"]["probs"], atol=1e-4)
