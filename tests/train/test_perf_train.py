"""Training performance features: thread choice, deferred frozen encoders, distillation (all on digits-match)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from mmzoo.runs.folders import Run
from mmzoo.train import deferred, factory, threads
from mmzoo.zoo.registry import load_registry

# Frozen from-scratch encoders: their features go to the cache like MiniLM's, in a second.
REGISTRY = """
models:
  frozen_concat:
    text: {encoder: small_text, dim: 16, max_length: 16, freeze: true}
    image: {encoder: small_cnn, image_size: 16, channels: [8], dim: 16, freeze: true}
    fusion: concat
    head: {hidden: 32}
    task: {dataset: digits-match}
    train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
  frozen_gated:
    text: {encoder: small_text, dim: 16, max_length: 16, freeze: true}
    image: {encoder: small_cnn, image_size: 16, channels: [8], dim: 16, freeze: true}
    fusion: gated
    task: {dataset: digits-match}
    train: {epochs: 2, lr: 0.01, batch_size: 128, patience: 0, precision: fp32}
  live_concat:
    text: {encoder: small_text, dim: 16, max_length: 16}
    image: {encoder: small_cnn, image_size: 16, channels: [8], dim: 16}
    fusion: concat
    task: {dataset: digits-match}
    train: {epochs: 1, lr: 0.01, batch_size: 256, patience: 0, precision: fp32, threads: 2}
  bad_threads:
    text: {encoder: small_text}
    task: {dataset: digits-match}
    train: {threads: 0}
ensembles:
  frozen_pair:
    members: [frozen_concat, frozen_gated]
    combiner: mean
"""


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("reg") / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def spec_of(name: str, registry_file) -> dict:
    return factory.resolve_spec(name, str(registry_file))


def train(spec, out, **options):
    from mmzoo.train.trainer import Options
    from mmzoo.train.trainer import train as run_training

    return run_training(spec, Options(out=out, quiet=True, **options))


def count_builds(monkeypatch) -> list:
    built = []
    real = factory.build_encoder
    monkeypatch.setattr(factory, "build_encoder", lambda entry: built.append(entry["encoder"]) or real(entry))
    return built


# --- threads -------------------------------------------------------------------------------------------

def test_thread_choice_follows_the_work_and_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(threads, "quota_cpus", lambda: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose(threads.HEAD) == 1
    assert threads.choose(threads.ENCODER) == 3
    assert threads.choose(threads.HEAD, 2) == 2
    assert threads.choose(threads.ENCODER, 64) == 3  # capped at the CPUs this process may use
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(threads.ENCODER) == 2
    with pytest.raises(ValueError):
        threads.choose(threads.HEAD, 0)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "200000 100000\n"}, 2),
    ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: round up, a thread may idle half the time
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu.max": "garbage"}, None),
    ({}, None),
])
def test_a_cgroup_cpu_quota_is_read_from_v2_or_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.quota_cpus(str(tmp_path)) == expected


def test_a_container_quota_caps_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(threads, "quota_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.available_cpus() == 2
    assert threads.choose(threads.ENCODER) == 2


@pytest.mark.parametrize("platform,preset,expected", [
    ("linux", {}, {"GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}),
    ("darwin", {}, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("linux", {"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}),  # the user's choice stands
    ("linux", {"GOMP_SPINCOUNT": "0"}, {"GOMP_SPINCOUNT": "0"}),
])
def test_the_cli_wait_policy_is_a_short_spin_unless_the_user_chose(monkeypatch, platform, preset, expected):
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in preset.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(threads.sys, "platform", platform)
    threads.prefer_short_spin()
    assert {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ} == expected


def test_fine_tuning_gets_the_fused_adamw_and_its_updates_match_the_plain_one(monkeypatch):
    import torch

    from mmzoo.train import optim
    from mmzoo.train.optim import adamw

    def trained(fused_optimizer: bool) -> torch.Tensor:
        torch.manual_seed(0)
        layer = torch.nn.Linear(8, 3)
        if fused_optimizer:
            monkeypatch.setattr(optim, "FUSED_ADAMW_FROM", 1)
            optimizer = adamw([{"params": layer.parameters(), "lr": 0.01}], 0.01, 0.1)
            assert optimizer.defaults["fused"]
        else:
            optimizer = torch.optim.AdamW(layer.parameters(), lr=0.01, weight_decay=0.1)
        for step in range(20):
            optimizer.zero_grad()
            layer(torch.ones(4, 8) * step).pow(2).mean().backward()
            optimizer.step()
        return torch.cat([p.detach().flatten() for p in layer.parameters()])

    assert adamw([torch.nn.Parameter(torch.zeros(2_000_000))], 0.1, 0.0).defaults["fused"] is True
    assert not adamw([torch.nn.Parameter(torch.zeros(2))], 0.1, 0.0).defaults["fused"]  # small: the plain step
    assert torch.allclose(trained(True), trained(False), atol=1e-6)


def test_request_order_options_then_flag_then_registry():
    try:
        assert threads.requested(None, 3) == 3
        threads.set_override(2)
        assert threads.requested(None, 3) == 2
        assert threads.requested(1, 3) == 1
    finally:
        threads.set_override(None)


def test_trainer_uses_one_thread_for_a_head_and_restores_the_count(registry_file, tmp_path):
    seen = []
    before = torch.get_num_threads()
    train(spec_of("frozen_concat", registry_file), tmp_path, threads=None,
          on_event=lambda e: seen.append(torch.get_num_threads()) if e["type"] == "step" else None)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before


def test_registry_threads_apply_to_live_encoders(registry_file, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "quota_cpus", lambda: None)
    seen = []
    train(spec_of("live_concat", registry_file), tmp_path,
          on_event=lambda e: seen.append(torch.get_num_threads()) if e["type"] == "step" else None)
    assert set(seen) == {2}


def test_bad_threads_are_refused(run_cli, registry_file):
    entry = load_registry(str(registry_file)).get("bad_threads")
    assert any("'threads' must be 1 to 4096" in str(p) for p in entry.problems)
    for command in (["train", "digits_concat"], ["ensemble", "digits_pair"], ["demo"],
                    ["distill", "x", "--student", "digits_concat"]):
        res = run_cli(*command, "--threads", "0")
        assert res.returncode == 2 and "at least 1" in res.stderr, (command, res.stderr)


# --- deferred frozen encoders --------------------------------------------------------------------------

def test_warm_cache_builds_no_encoder_and_the_run_is_a_full_model(registry_file, tmp_path, monkeypatch):
    from mmzoo.train.checkpoint import load_run_model

    monkeypatch.setenv("MMZOO_CACHE", str(tmp_path / "cache"))
    built = count_builds(monkeypatch)
    spec = spec_of("frozen_concat", registry_file)
    cold = train(spec, tmp_path / "runs")
    assert sorted(built) == ["small_cnn", "small_text"]  # described once, then run to fill the cache
    built.clear()
    warm = train(spec, tmp_path / "runs")
    assert built == []  # every feature cached: nothing built
    assert warm.metrics["test"] == cold.metrics["test"]
    full = factory.create_model(spec, num_classes=2)
    assert warm.metrics["parameters"] == sum(p.numel() for p in full.parameters())
    assert warm.metrics["trainable_parameters"] == sum(p.numel() for p in full.parameters() if p.requires_grad)
    # the run rebuilds as a full model (real encoders) whose predictions are the stored ones
    model = load_run_model(warm)
    assert not isinstance(model.text_encoder, deferred.DeferredEncoder)
    from mmzoo.train.inputs import raw_inputs

    test = factory.open_dataset("digits-match").split("test")[:64]
    inputs = {**raw_inputs(model.text_encoder.preprocessor, test), **raw_inputs(model.image_encoder.preprocessor, test)}
    with torch.no_grad():
        probs = torch.softmax(model(inputs)["logits"], -1).numpy()
    stored = load_file(str(warm.path / "probs_test.safetensors"))["probs"][:64]
    np.testing.assert_allclose(probs, stored, atol=2e-3)


def test_missing_feature_builds_the_encoder_and_damaged_description_is_redone(registry_file, tmp_path, monkeypatch):
    from mmzoo.train.inputs import cache_root, descriptor_path

    monkeypatch.setenv("MMZOO_CACHE", str(tmp_path / "cache"))
    spec = spec_of("frozen_gated", registry_file)
    train(spec, tmp_path / "runs")
    built = count_builds(monkeypatch)
    for file in cache_root().glob("*small_cnn*.safetensors"):  # the image features go missing
        file.unlink()
    descriptor_path(spec["text"]).write_text("{not json")
    train(spec, tmp_path / "runs")
    assert sorted(built) == ["small_cnn", "small_text"]
    assert json.loads(descriptor_path(spec["text"]).read_text())["output_dim"] == 16


def test_stale_description_is_replaced_and_features_keyed_by_the_real_preprocessing(registry_file, tmp_path,
                                                                                    monkeypatch):
    from mmzoo.train.inputs import descriptor_path

    monkeypatch.setenv("MMZOO_CACHE", str(tmp_path / "cache"))
    spec = spec_of("frozen_concat", registry_file)
    deferred.frozen_encoder(spec["text"])  # described, nothing cached yet
    path = descriptor_path(spec["text"])
    stale = json.loads(path.read_text())
    stale["preprocessor"]["max_length"] = 7
    path.write_text(json.dumps(stale))
    train(spec, tmp_path / "runs")  # features missing: the encoder is built and the description corrected
    assert json.loads(path.read_text())["preprocessor"]["max_length"] == 16
    built = count_builds(monkeypatch)
    train(spec, tmp_path / "runs")
    assert built == []


def test_deferred_encoder_runs_the_real_one_when_called(registry_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MMZOO_CACHE", str(tmp_path / "cache"))
    entry = spec_of("frozen_concat", registry_file)["text"]
    deferred.frozen_encoder(entry)  # describes it
    lazy = deferred.frozen_encoder(entry)
    assert not lazy.built and list(lazy.parameters()) == [] and lazy.output_dim == 16
    batch = {k: torch.from_numpy(v) for k, v in lazy.preprocessor(["seven", "a three"]).items()}
    out = lazy(batch)
    assert lazy.built and out.pooled.shape == (2, 16)


# --- distillation --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(registry_file, tmp_path_factory):
    from mmzoo.ensemble.build import build_ensemble, combiner_spec

    root = tmp_path_factory.mktemp("distill")
    members = [train(spec_of(m, registry_file), root) for m in ("frozen_concat", "frozen_gated")]
    spec = {"name": "frozen_pair", "kind": "ensemble", "recipe": {"members": ["frozen_concat", "frozen_gated"]},
            "combiner": combiner_spec("mean")}
    return build_ensemble(spec, members, root=root), members, root


def test_soft_labels_come_from_train_only(teacher):
    from mmzoo.ensemble.distill import teacher_soft_labels

    ensemble, members, _ = teacher
    dataset = factory.open_dataset("digits-match")
    probs, ids = teacher_soft_labels(ensemble, dataset, torch.device("cpu"))
    assert ids == [s.id for s in dataset.split("train")] and probs.shape == (len(ids), 2)
    # the mean of the members' own train predictions, not anything from val or test
    own = [load_file(str(m.path / "probs_train.safetensors"))["probs"] for m in members]
    np.testing.assert_allclose(probs, np.mean(own, axis=0), atol=1e-6)
    kept = {}
    try:
        for member in members:  # garbage val/test predictions change nothing
            for split in ("val", "test"):
                file = member.path / f"probs_{split}.safetensors"
                kept[file] = file.read_bytes()
                arrays = load_file(str(file))
                save_file({"probs": np.full_like(arrays["probs"], 0.5), "labels": arrays["labels"]}, str(file))
        again, _ = teacher_soft_labels(ensemble, dataset, torch.device("cpu"))
        np.testing.assert_array_equal(again, probs)
    finally:  # the module's later tests read these predictions
        for file, raw in kept.items():
            file.write_bytes(raw)


def test_temperature_one_alpha_zero_is_an_ordinary_run(teacher, registry_file, tmp_path):
    from mmzoo.ensemble.distill import distill

    ensemble, _, _ = teacher
    spec = spec_of("frozen_concat", registry_file)
    plain = train(spec, tmp_path)
    # from scratch: a warm start (the default when a member has the student's spec) begins elsewhere
    student = distill(ensemble, spec, temperature=1.0, alpha=0.0, out=tmp_path, quiet=True, warm_start=False)
    assert student.metrics["test"] == plain.metrics["test"]
    a, b = load_file(str(plain.path / "model.safetensors")), load_file(str(student.path / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert student.spec["teacher"]["run"] == ensemble.name and student.spec["teacher"]["soft_labels"] == "train"
    assert student.model == "frozen_concat_distilled"


def test_distill_cli_and_compare_report_the_gap(run_cli, teacher, registry_file):
    ensemble, _, root = teacher
    res = run_cli("--registry", str(registry_file), "distill", str(ensemble.path), "--student", "frozen_concat",
                  "--temperature", "2", "--alpha", "0.7", "--out", str(root), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["teacher"] == ensemble.name and "gap_closed" in out
    member = next(m["name"] for m in ensemble.spec["members"] if m["name"].startswith("frozen_concat/"))
    assert Run(Path(out["path"])).spec["teacher"]["warm_start"]["run"] == member  # by default, from the member
    # the gain in samples is counted from the saved predictions; it must agree with the two accuracies
    gain = (out["teacher_accuracy"] - out["best_member_accuracy"]) * out["test_samples"]
    assert out["teacher_gain_samples"] == round(gain) and 0 <= out["teacher_gain_p"] <= 1
    res = run_cli("compare", out["path"], str(ensemble.path), "--out", str(root))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "teacher gap closed" in res.stdout
    assert f"{out['teacher_gain_samples']:+d} of {out['test_samples']} test samples" in res.stdout
    res = run_cli("distill", str(Path(out["path"])), "--student", "digits_concat", "--out", str(root))
    assert res.returncode == 1 and "must be an ensemble run" in res.stderr


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40))
def test_mcnemar_p_is_symmetric_and_a_probability(wins, losses):
    from mmzoo.runs.compare import mcnemar_p

    p = mcnemar_p(wins, losses)
    assert 0 < p <= 1 and p == mcnemar_p(losses, wins)
    if wins == losses:
        assert p == 1.0
    if wins > losses:  # one more win makes the split more uneven: never more likely by chance
        assert mcnemar_p(wins + 1, losses) <= p


def test_mcnemar_p_known_values():
    from mmzoo.runs.compare import mcnemar_p

    assert mcnemar_p(2, 0) == 0.5  # two wins out of two: 2 * 1/4
    assert mcnemar_p(10, 0) == 2 / 1024
    assert abs(mcnemar_p(9, 2) - 2 * (1 + 11 + 55) / 2048) < 1e-12
