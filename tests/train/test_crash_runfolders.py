"""Damaged run folders: a bad spec.yaml, status, checkpoint, predictions or weights gives one clear line, never a
traceback, and never stops the other runs from listing or comparing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.crashkit import mark_interrupted

from mmzoo.errors import ExportError, RunError

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A text-only and a concat run on digits-match, 2 epochs each, trained in this process."""
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    root = tmp_path_factory.mktemp("runs")
    made = {}
    for model in ("digits_text", "digits_concat"):
        spec = resolve_spec(model)
        spec["train"].update(epochs=2, batch_size=128)
        made[model] = train(spec, Options(out=root, quiet=True)).path
    return made


def clone(trained: dict[str, Path], root: Path) -> dict[str, Path]:
    out = {}
    for model, path in trained.items():
        out[model] = root / model / path.name
        shutil.copytree(path, out[model])
    return out


def one_line_error(res, *needles: str) -> None:
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


SPEC_DAMAGE = {
    "yaml-syntax": b"model: [unclosed\n",
    "a-list": b"- just\n- a list\n",
    "empty": b"",
    "not-utf8": b"model: \xff\xfe\n",
    "no-data": None,  # data: removed
    "classes-edited": None,  # still valid YAML and shape, but not what training wrote
}


@pytest.mark.parametrize("damage", list(SPEC_DAMAGE))
def test_a_broken_spec_is_listed_as_broken_and_the_others_still_work(run_cli, trained, tmp_path, damage):
    runs = clone(trained, tmp_path)
    spec_file = runs["digits_concat"] / "spec.yaml"
    if damage == "no-data":
        spec_file.write_text(spec_file.read_text().replace("\ndata:", "\nnot_data:"))
    elif damage == "classes-edited":
        spec_file.write_text(spec_file.read_text().replace("- match", "- matches"))
    else:
        spec_file.write_bytes(SPEC_DAMAGE[damage])
    res = run_cli("runs", "--out", str(tmp_path), "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    rows = {r["run"]: r for r in json.loads(res.stdout)}
    broken = rows[f"digits_concat/{runs['digits_concat'].name}"]
    assert broken["state"] == "broken" and str(spec_file) in broken["error"]
    assert rows[f"digits_text/{runs['digits_text'].name}"]["state"] == "finished"
    table = run_cli("runs", "--out", str(tmp_path))
    assert table.returncode == 0 and f"broken: {runs['digits_concat']}" in table.stderr
    fine = run_cli("compare", f"digits_text/{runs['digits_text'].name}", "--out", str(tmp_path), "--json")
    assert fine.returncode == 0 and json.loads(fine.stdout)[0]["kind"] == "text-only", fine.stderr
    one_line_error(run_cli("compare", str(runs["digits_concat"]), "--out", str(tmp_path)), str(spec_file))


def test_a_corrupt_status_is_listed_as_broken(run_cli, trained, tmp_path):
    runs = clone(trained, tmp_path)
    (runs["digits_text"] / "status.json").write_text('{"state": "fini')
    res = run_cli("runs", "--out", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    states = sorted(r["state"] for r in json.loads(res.stdout))
    assert states == ["broken", "finished"]


@pytest.mark.parametrize("damage", ["state.json", "optimizer.safetensors"])
def test_resume_from_a_damaged_checkpoint_names_the_file(run_cli, trained, tmp_path, damage):
    runs = clone(trained, tmp_path)
    folder = runs["digits_concat"]
    mark_interrupted(folder, "metrics.json")
    file = folder / "checkpoints" / "epoch-0002" / damage
    file.write_bytes(file.read_bytes()[:40])
    one_line_error(run_cli("train", "--resume", str(folder)), str(file), "hint:")


def test_truncated_predictions_name_the_file(run_cli, trained, tmp_path):
    from mmzoo.ensemble.build import build_ensemble
    from mmzoo.runs.folders import Run

    runs = clone(trained, tmp_path)
    probs = runs["digits_concat"] / "probs_val.safetensors"
    probs.write_bytes(probs.read_bytes()[:100])
    spec = {"name": "pair", "recipe": {"runs": []}, "combiner": {"name": "mean"}}
    members = [Run(runs["digits_text"]), Run(runs["digits_concat"])]
    with pytest.raises(RunError, match="probs_val.safetensors was changed or damaged"):
        build_ensemble(spec, members, root=tmp_path)
    (runs["digits_concat"] / "digests.json").unlink()  # without the digest, reading it still fails cleanly
    with pytest.raises(RunError, match="probs_val.safetensors is damaged"):
        build_ensemble(spec, members, root=tmp_path)
    one_line_error(run_cli("ensemble", "--runs", *map(str, runs.values()), "--out", str(tmp_path)), str(probs))


def zero_weights(file: Path) -> None:
    """Zero every tensor, keeping a valid safetensors header."""
    from safetensors.torch import load_file, save_file

    save_file({k: v.zero_() for k, v in load_file(str(file)).items()}, str(file))


def test_zeroed_weights_are_refused_by_eval_and_export(run_cli, trained, tmp_path):
    from mmzoo.onnx.export import export_run
    from mmzoo.runs.folders import Run

    runs = clone(trained, tmp_path)
    weights = runs["digits_concat"] / "model.safetensors"
    zero_weights(weights)
    one_line_error(run_cli("eval", str(runs["digits_concat"])), str(weights), "changed or damaged")
    with pytest.raises(RunError, match="model.safetensors was changed or damaged"):
        export_run(Run(runs["digits_concat"]), tmp_path / "onnx")
    (runs["digits_concat"] / "digests.json").unlink()  # the second net: the run's own stored val predictions
    with pytest.raises(ExportError, match="do not reproduce the validation probabilities"):
        export_run(Run(runs["digits_concat"]), tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_an_interrupted_ensembles_hint_works(run_cli, trained, tmp_path):
    from mmzoo.ensemble.build import build_ensemble
    from mmzoo.runs.folders import Run

    runs = clone(trained, tmp_path)
    spec = {"name": "pair", "recipe": {"runs": [f"{m}/{p.name}" for m, p in runs.items()]},
            "combiner": {"name": "mean"}}
    ensemble = build_ensemble(spec, [Run(p) for p in runs.values()], root=tmp_path).path
    mark_interrupted(ensemble, "metrics.json")  # killed while writing its files
    listed = {r["run"]: r["state"] for r in json.loads(run_cli("runs", "--out", str(tmp_path), "--json").stdout)}
    assert listed[f"pair/{ensemble.name}"] == "interrupted"
    evaluated = run_cli("eval", str(ensemble))
    one_line_error(evaluated, "interrupted, not finished", "mmzoo ensemble --runs")
    resumed = run_cli("train", "--resume", str(ensemble))
    one_line_error(resumed, "is an ensemble run", "mmzoo ensemble --runs")
    hint = evaluated.stderr.split("`")[1]
    assert hint.startswith("mmzoo ensemble --runs") and f"--out {tmp_path}" in hint
    rebuilt = run_cli(*hint.split()[1:])
    assert rebuilt.returncode == 0, rebuilt.stderr
