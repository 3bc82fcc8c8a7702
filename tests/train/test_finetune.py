"""Partial fine-tuning (train_last, encoder_lr): what trains, at which rate, resume, export, fit's choice, bad values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mmzoo.errors import RegistryError
from mmzoo.fit.heads import Candidate
from mmzoo.fit.search import Result, complexity, one_standard_error

REGISTRY = """\
models:
  ft_tiny:
    text: {encoder: small_text, dim: 16, layers: 2, max_length: 16, freeze: true, train_last: 1}
    image: {encoder: small_cnn, image_size: 16, channels: [8, 8], dim: 16, freeze: true, train_last: 1}
    fusion: concat
    head: {hidden: 16, standardize: true}
    task: {dataset: digits-match}
    train: {epochs: 3, lr: 0.01, encoder_lr: 0.001, batch_size: 256, patience: 0, precision: fp32}
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def _spec(registry: Path, **train) -> dict:
    from mmzoo.train.factory import resolve_spec

    spec = resolve_spec("ft_tiny", str(registry))
    spec["train"].update(train)
    return spec


def test_only_the_last_blocks_train_and_at_the_encoder_lr(registry):
    from mmzoo.train.factory import create_model

    model = create_model(_spec(registry), num_classes=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    text = {n for n in trainable if n.startswith("text_encoder.")}
    image = {n for n in trainable if n.startswith("image_encoder.")}
    # small_text: its second (last) conv block and the final norm; small_cnn: its last block and the projection
    assert text and all(n.startswith(("text_encoder.blocks.1.", "text_encoder.norm.")) for n in text)
    assert image and all(n.startswith(("image_encoder.blocks.1.", "image_encoder.project.")) for n in image)
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith(("text_encoder.embed", "text_encoder.blocks.0", "image_encoder.blocks.0")))
    groups = model.param_groups(0.01, 0.001)
    assert [g["peak"] for g in groups] == [0.01, 0.001]
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in groups[1]["params"]} == text | image  # exactly the trained encoder layers


@pytest.fixture(scope="module")
def finished(registry, tmp_path_factory):
    from mmzoo.train.trainer import Options, train

    return train(_spec(registry), Options(out=tmp_path_factory.mktemp("runs"), quiet=True))


def test_trained_blocks_are_saved_at_their_rate_and_the_frozen_rest_is_not(finished):
    weights = load_file(str(finished.path / "model.safetensors"))
    assert any(k.startswith("text_encoder.blocks.1.") for k in weights)
    assert not any(k.startswith(("text_encoder.embed", "text_encoder.blocks.0", "image_encoder.blocks.0"))
                   for k in weights)
    state = json.loads((finished.path / "checkpoints" / "epoch-0003" / "state.json").read_text())
    assert [g["peak"] for g in state["optimizer"]["param_groups"]] == [0.01, 0.001]
    history = [json.loads(line) for line in (finished.path / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3


def test_a_cancelled_run_resumes_to_the_same_weights(registry, finished, tmp_path):
    from mmzoo.train.trainer import Cancelled, Options, train

    steps = iter(range(10_000))
    stop_in_epoch_3 = lambda: next(steps) >= 2 * 4 + 1  # noqa: E731 - 4 steps per epoch (997 rows / 256)
    with pytest.raises(Cancelled):
        train(_spec(registry), Options(out=tmp_path, quiet=True, should_stop=stop_in_epoch_3))
    folder = next(tmp_path.glob("ft_tiny/*"))
    resumed = train(None, Options(out=tmp_path, quiet=True, resume=str(folder)))
    want, got = load_file(str(finished.path / "model.safetensors")), load_file(str(resumed.path / "model.safetensors"))
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert json.loads((resumed.path / "metrics.json").read_text())["test"] == \
        json.loads((finished.path / "metrics.json").read_text())["test"]


def test_export_of_a_partly_trained_encoder_passes_parity(finished, tmp_path):
    from mmzoo.onnx.export import export_run

    out = export_run(finished, tmp_path, say=lambda msg: None)
    assert Path(out["path"]).exists()
    assert out["parity"]["fp32"]["argmax_agreement"] == 1.0 and out["parity"]["fp32"]["max_abs_diff"] < 1e-4


def test_bad_train_last_values_are_errors_naming_the_field(tmp_path):
    from mmzoo.train.factory import create_model
    from mmzoo.zoo.registry import load_registry

    bad = tmp_path / "bad.yaml"
    bad.write_text(REGISTRY.replace("layers: 2, max_length: 16, freeze: true, train_last: 1",
                                    "layers: 2, max_length: 16, freeze: true, train_last: -1")
                   .replace("channels: [8, 8], dim: 16, freeze: true", "channels: [8, 8], dim: 16, freeze: false"))
    problems = [str(p) for p in load_registry(str(bad)).get("ft_tiny").problems]
    assert any("train_last" in p and "-1" in p for p in problems), problems
    assert any("train_last needs freeze: true" in p for p in problems), problems
    bad.write_text(REGISTRY.replace("layers: 2, max_length: 16, freeze: true, train_last: 1",
                                    "layers: 2, max_length: 16, freeze: true, train_last: 3"))
    with pytest.raises(RegistryError, match=r"train_last: 3 is more than the 2 blocks"):
        create_model("ft_tiny", num_classes=2, registry_file=str(bad))


def _result(candidate: Candidate, mean: float, se: float) -> Result:
    folds = list(mean + se * np.sqrt(5) * np.array([-1.2649, -0.6325, 0.0, 0.6325, 1.2649]))
    return Result(candidate.label, complexity(candidate), folds, np.zeros((1, 2)), candidate=candidate)


def test_a_fine_tuned_candidate_wins_only_beyond_one_standard_error():
    head = {"hidden": 16, "dropout": 0.1, "lr": 0.01, "weight_decay": 0.01}
    frozen = _result(Candidate("concat", "mlp", tuple(sorted({**head, "aux": 0.3}.items()))), 0.80, 0.01)
    frozen_text = _result(Candidate("text", "linear", (("C", 1.0),)), 0.795, 0.01)
    tuned = Candidate("text", "finetune", tuple(sorted({**head, "train_last": 1, "encoder_lr": 1e-4,
                                                         "tuned": "text"}.items())))
    assert complexity(tuned) > complexity(frozen.candidate) > complexity(frozen_text.candidate)
    assert one_standard_error([frozen, frozen_text, _result(tuned, 0.805, 0.01)])[0] is frozen_text
    clear = _result(tuned, 0.83, 0.01)
    assert one_standard_error([frozen, frozen_text, clear])[0] is clear


TINY = """\
presets:
  tiny:
    text: {encoder: small_text, dim: 16, max_length: 16}
    image: {encoder: small_cnn, image_size: 16, channels: [8, 16], dim: 16}
    fusions: [concat]
    heads:
      linear: {C: [0.1, 1.0]}
      mlp: {hidden: [16], dropout: [0.1], lr: [0.01], weight_decay: [0.01], aux: [0.3]}
    trials: 1
    epochs: 3
    batch_size: 16
    folds: 2
    combiners: [mean]
    finetune: {kinds: [text, image], train_last: [1], encoder_lr: [0.001], epochs: 3}
"""


def test_fit_keeps_the_frozen_model_when_fine_tuning_does_not_pay_and_reports_its_cpu_time(tmp_path):
    from test_fit import _colour_folder

    from mmzoo.fit.pipeline import FitOptions, fit

    data = _colour_folder(tmp_path / "squares")
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY)
    report = fit(str(data), FitOptions(preset="tiny", registry=str(registry), out=tmp_path / "runs",
                                       report_dir=tmp_path / "report", export=False, say=lambda msg: None))
    ft = report["finetune"]
    assert set(ft["kinds"]) == {"text", "image"}
    for row in ft["kinds"].values():
        tuned = row["finetuned"]
        assert len(tuned) == 1 and tuned[0]["family"] == "finetune" and tuned[0]["cpu_seconds"] > 0
        assert tuned[0]["test"] is not None and row["frozen"]["test"] is not None  # both sides refit for the report
    # The image of a colour square is enough (CV 1.0 frozen): the frozen image model is kept, not its fine-tuned twin.
    assert report["chosen"]["name"].startswith("image/linear")
    assert ft["kinds"]["image"]["frozen"]["name"] == report["chosen"]["name"]  # the frozen side is the member
    assert ft["prefix_cpu_seconds"] > 0
    assert "CV CPU s" in (tmp_path / "report" / "report.md").read_text()
    spec = (next((tmp_path / "runs").glob("fit-squares-image-finetuned/*")) / "spec.yaml").read_text()
    assert "train_last: 1" in spec and "encoder_lr: 0.001" in spec


def test_a_bad_finetune_section_is_reported_by_key():
    import yaml

    from mmzoo.zoo.presets import build_preset, check_preset

    raw = yaml.safe_load(TINY)["presets"]["tiny"]
    assert check_preset("tiny", raw) == []
    assert build_preset("tiny", raw).finetune["modalities"] == ["text", "image"]  # defaults filled in
    raw["finetune"] = {"kinds": ["bilinear"], "train_last": [0], "encoder_lr": [1e-4], "epochs": 0, "lr": 1}
    found = {path: message for path, message in check_preset("tiny", raw)}
    assert set(found) == {("finetune", "kinds"), ("finetune", "train_last"), ("finetune", "epochs"),
                          ("finetune", "lr")}, found
    assert "bilinear" in found[("finetune", "kinds")]



def test_fast_stays_frozen_and_best_cross_validates_fine_tuning():
    from mmzoo.zoo.presets import load_preset

    assert load_preset("fast").finetune is None
    best = load_preset("best").finetune
    assert best is not None and "text" in best["kinds"] and min(best["train_last"]) >= 1


def test_runs_from_before_encoder_lr_are_still_reused():
    from mmzoo.runs.spec import RunSpec

    old = {"name": "m", "kind": "model", "train": {"lr": 0.001}}
    run = RunSpec.from_dict({"model": old, "data": {"dataset": "emoji", "label_set": None, "fingerprint": "f",
                                                    "classes": ["a", "b"]}})
    assert run.matches({**old, "train": {"lr": 0.001, "encoder_lr": None}}, "f")
    assert not run.matches({**old, "train": {"lr": 0.001, "encoder_lr": 0.0001}}, "f")
