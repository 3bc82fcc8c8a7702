"""Distillation with `--augment`: the teacher asked on perturbed copies of train batches (tiny digits-match models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from mmzoo.ensemble import augment
from mmzoo.errors import TrainingError
from mmzoo.runs.folders import Run
from mmzoo.train import factory
from mmzoo.train.trainer import Cancelled, Options, train

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
    text: {encoder: small_text, dim: 8, max_length: 16}
    image: {encoder: small_cnn, image_size: 16, channels: [4], dim: 8}
    fusion: concat
    task: {dataset: digits-match}
    train: {epochs: 2, lr: 0.01, batch_size: 256, patience: 0, precision: fp32}
"""


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("reg") / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def spec_of(name: str, registry_file) -> dict:
    return factory.resolve_spec(name, str(registry_file))


@pytest.fixture(scope="module")
def teacher(registry_file, tmp_path_factory):
    """A finished mean ensemble of a frozen-feature member and a live (raw pixels and token ids) member."""
    from mmzoo.ensemble.build import build_ensemble, combiner_spec

    root = tmp_path_factory.mktemp("distill-augment")
    members = [train(spec_of(m, registry_file), Options(out=root, quiet=True)) for m in ("frozen_gated",
                                                                                          "live_concat")]
    spec = {"name": "mixed_pair", "kind": "ensemble", "recipe": {"members": ["frozen_gated", "live_concat"]},
            "combiner": combiner_spec("mean")}
    return build_ensemble(spec, members, root=root), root


def test_augment_names_are_checked_and_canonical():
    assert augment.parse("none") == () and augment.parse(None) == ()
    assert augment.canonical("swap+shift") == "shift+swap"
    with pytest.raises(TrainingError, match="unknown perturbation 'blur'") as err:
        augment.parse("shift+blur")
    assert "shift+swap" in err.value.hint


def test_a_draw_is_fixed_by_seed_and_step_and_touches_only_what_it_names():
    from mmzoo.encoders.base import Features

    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(6, 3, 16, 16, generator=gen)
    ids = torch.randint(1, 50, (6, 5), generator=gen)
    raw = {"pixel_values": pixels, "input_ids": ids, "attention_mask": torch.ones(6, 5, dtype=torch.long)}
    feats = {"text": Features(torch.randn(6, 4, generator=gen), torch.randn(6, 2, 4, generator=gen),
                              torch.ones(6, 2, dtype=torch.bool))}
    kinds = augment.parse("shift+noise+mixup+swap")
    a = augment.apply(augment.Draw.make(kinds, 3, 7, 6), feats, raw)
    b = augment.apply(augment.Draw.make(kinds, 3, 7, 6), feats, raw)
    c = augment.apply(augment.Draw.make(kinds, 3, 8, 6), feats, raw)
    assert torch.equal(a[1]["pixel_values"], b[1]["pixel_values"]) and torch.equal(a[0]["text"].pooled,
                                                                                 b[0]["text"].pooled)
    assert not torch.equal(a[1]["pixel_values"], c[1]["pixel_values"])
    assert torch.equal(a[1]["input_ids"], ids)  # token ids are never blended
    assert a[1]["pixel_values"].shape == pixels.shape and a[0]["text"].tokens.shape == (6, 2, 4)
    # swap alone: only images move, and only between rows of the batch
    draw = augment.Draw.make(("swap",), 0, 0, 6)
    cached, swapped = augment.apply(draw, feats, raw)
    rows = [next(j for j in range(6) if torch.equal(swapped["pixel_values"][i], pixels[j])) for i in range(6)]
    assert rows == [int(draw.partner[i]) if draw.swapped[i] else i for i in range(6)]
    assert torch.equal(cached["text"].pooled, feats["text"].pooled) and torch.equal(swapped["input_ids"], ids)
    assert augment.apply(None, feats, raw) == (feats, raw)


def test_the_live_teacher_unperturbed_gives_the_stored_train_soft_labels(teacher):
    from mmzoo.ensemble.distill import teacher_soft_labels
    from mmzoo.ensemble.live_teacher import LiveTeacher

    ensemble, _ = teacher
    dataset = factory.open_dataset("digits-match")
    stored, _ = teacher_soft_labels(ensemble, dataset, torch.device("cpu"))
    live = LiveTeacher(ensemble, dataset, torch.device("cpu"))
    idx = torch.tensor([0, 5, 17, 400, len(stored) - 1])
    np.testing.assert_allclose(live.probs(idx, None).numpy(), stored[idx.numpy()], atol=1e-5)
    # a perturbed copy gets the teacher's own answer, which differs from the stored rows
    shifted = live.probs(idx, augment.Draw.make(("mixup", "swap"), 0, 0, len(idx))).numpy()
    assert shifted.shape == (5, 2) and not np.allclose(shifted, stored[idx.numpy()], atol=1e-3)


def _weights(run) -> dict:
    return load_file(str(run.path / "model.safetensors"))


def test_augmented_distillation_is_deterministic_and_resumes_exactly(teacher, registry_file, tmp_path):
    """Same seed, same weights; a run cancelled mid-epoch and resumed ends where the uninterrupted one did."""
    from mmzoo.app.train import train_model
    from mmzoo.ensemble.distill import distill

    ensemble, _ = teacher
    spec = spec_of("live_concat", registry_file)
    settings = {"temperature": 2.0, "alpha": 0.7, "augment": "shift+swap", "quiet": True}
    first = distill(ensemble, spec, out=tmp_path / "a", **settings)
    again = distill(ensemble, spec, out=tmp_path / "b", **settings)
    assert first.spec["teacher"]["augment"] == "shift+swap" and first.spec["teacher"]["soft_labels"] == "train"
    a, b = _weights(first), _weights(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    plain = distill(ensemble, spec, out=tmp_path / "c", temperature=2.0, alpha=0.7, quiet=True)
    assert not all(np.array_equal(a[k], v) for k, v in _weights(plain).items())  # the perturbed term counts

    steps = []
    with pytest.raises(Cancelled):  # stop in the middle of epoch 2 (10 steps an epoch)
        distill(ensemble, spec, out=tmp_path / "d", should_stop=lambda: len(steps) >= 14,
                on_event=lambda e: steps.append(e) if e["type"] == "step" else None, **settings)
    (cut,) = [p for p in (tmp_path / "d").glob("*/*") if p.is_dir()]
    with pytest.raises(TrainingError, match="distilled run"):  # without its teacher it would train on hard labels
        train(None, Options(out=tmp_path / "d", resume=str(cut), quiet=True))
    resumed = train_model(resume=cut, out=tmp_path / "d", quiet=True)
    assert resumed.finished and resumed.metrics["test"] == first.metrics["test"]
    r = _weights(resumed)
    assert all(np.array_equal(a[k], r[k]) for k in a)


def test_distill_cli_takes_augment_on_cached_features(run_cli, teacher, registry_file):
    ensemble, root = teacher
    res = run_cli("--registry", str(registry_file), "distill", str(ensemble.path), "--student", "frozen_concat",
                  "--augment", "noise+mixup", "--epochs", "1", "--out", str(root), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert Run(Path(out["path"])).spec["teacher"]["augment"] == "noise+mixup"
    res = run_cli("--registry", str(registry_file), "distill", str(ensemble.path), "--student", "frozen_concat",
                  "--augment", "blur", "--out", str(root))
    assert res.returncode != 0 and "unknown perturbation 'blur'" in res.stderr


def test_alpha_zero_with_augment_is_still_an_ordinary_run(teacher, registry_file, tmp_path):
    from mmzoo.ensemble.distill import distill

    ensemble, _ = teacher
    spec = spec_of("frozen_concat", registry_file)
    plain = train(spec, Options(out=tmp_path, quiet=True))
    student = distill(ensemble, spec, temperature=1.0, alpha=0.0, augment="mixup", out=tmp_path, quiet=True)
    a, b = _weights(plain), _weights(student)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_warm_start_begins_at_the_member_with_the_students_spec(teacher, registry_file, tmp_path):
    from mmzoo.ensemble.distill import distill

    ensemble, _ = teacher
    spec = spec_of("live_concat", registry_file)
    spec["train"] = dict(spec["train"], epochs=1, lr=1e-12)  # so small a step that the weights stay where they began
    (member,) = [Run(Path(m["path"])) for m in ensemble.spec["members"] if m["name"].startswith("live_concat")]
    warm = distill(ensemble, spec, alpha=0.0, out=tmp_path, quiet=True, warm_start=True)
    cold = distill(ensemble, spec, alpha=0.0, out=tmp_path, quiet=True, warm_start=False)
    start, w, c = _weights(member), _weights(warm), _weights(cold)
    # BatchNorm's running statistics move with every training batch whatever the step size; the weights may not
    weights = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    moved = [k for k in weights if not np.allclose(start[k], w[k], atol=1e-6)]
    assert not moved, moved
    assert not all(np.allclose(start[k], c[k], atol=1e-6) for k in weights)
    assert warm.spec["teacher"]["warm_start"]["run"] == member.name and cold.spec["teacher"]["warm_start"] is None


def test_a_warm_started_student_cancelled_before_its_first_checkpoint_resumes_from_the_member(
        teacher, registry_file, tmp_path):
    from mmzoo.app.train import train_model
    from mmzoo.ensemble.distill import distill

    ensemble, _ = teacher
    spec = spec_of("live_concat", registry_file)
    settings = {"temperature": 1.0, "alpha": 1.0, "augment": "mixup", "quiet": True, "warm_start": True}
    whole = distill(ensemble, spec, out=tmp_path / "a", **settings)
    steps = []
    with pytest.raises(Cancelled):  # in epoch 1: no checkpoint yet, so resuming restarts from the member's weights
        distill(ensemble, spec, out=tmp_path / "b", should_stop=lambda: len(steps) >= 4,
                on_event=lambda e: steps.append(e) if e["type"] == "step" else None, **settings)
    (cut,) = [p for p in (tmp_path / "b").glob("*/*") if p.is_dir()]
    resumed = train_model(resume=cut, out=tmp_path / "b", quiet=True)
    a, r = _weights(whole), _weights(resumed)
    assert all(np.array_equal(a[k], r[k]) for k in a)


def test_a_warm_start_needs_a_member_with_the_students_spec(run_cli, teacher, registry_file):
    ensemble, root = teacher
    res = run_cli("--registry", str(registry_file), "distill", str(ensemble.path), "--student", "frozen_concat",
                  "--warm-start", "--out", str(root))
    assert res.returncode == 1 and "no member of" in res.stderr and "exact spec" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("--registry", str(registry_file), "distill", str(ensemble.path), "--student", "frozen_gated",
                  "--warm-start", "--epochs", "1", "--out", str(root))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "started from frozen_gated" in res.stdout
