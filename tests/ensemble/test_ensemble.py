"""End to end `mmzoo ensemble` on digits-match: recipes, reuse, --runs, refusals, leakage and SAMME boosting."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from mmzoo.runs.folders import Run

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "128"]

# A deliberately weak image-only digit classifier (about 27% train accuracy after one epoch):
# the regime where boosting has something to add. Layered over the project registry.
TINY_REGISTRY = """
models:
  tiny_digit_image:
    description: weak image-only digit classifier for boosting tests
    image: {encoder: small_cnn, channels: [8, 16], dim: 32}
    head: {hidden: 0}
    task: {dataset: digits-match, label_set: digit}
    train: {epochs: 1, lr: 0.003, batch_size: 64, patience: 0, precision: fp32}
ensembles:
  tiny_boost:
    boosting: {model: tiny_digit_image, n: 4}
    combiner: samme
  tiny_seeds:
    seeds: {model: tiny_digit_image, n: 2}
    combiner: mean
  tiny_bag:
    bagging: {model: tiny_digit_image, n: 2}
    combiner: vote
"""


def ok(res):
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def refused(res, *needles):
    """A clean user-facing error: exit 1, no traceback, and every needle in the message."""
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)


def run_count(root: Path, folder: str) -> int:
    return len(list((root / folder).glob("*/spec.yaml")))


def tensors(path: Path) -> dict:
    return load_file(str(path))


def member_probs(paths: list[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    loaded = [load_file(str(Path(p) / f"probs_{split}.safetensors")) for p in paths]
    return np.stack([d["probs"] for d in loaded], axis=1), loaded[0]["labels"]  # (N, M, C), (N,)


def copy_runs(paths: list[str], dest: Path) -> list[Path]:
    out = []
    for p in paths:
        target = dest / Path(p).parent.name / Path(p).name
        shutil.copytree(p, target)
        out.append(target)
    return out


def rewrite_probs(run: Path, split: str, change) -> None:
    """Rewrite a run's stored predictions through ``change(arrays, metadata)``, keeping the format."""
    file = run / f"probs_{split}.safetensors"
    arrays = load_file(str(file))
    with safe_open(str(file), "np") as fh:
        meta = dict(fh.metadata())
    change(arrays, meta)
    save_file(arrays, str(file), metadata=meta)
    Run(run).record_digests(file.name)  # as if training had written these: the digest check is not under test


def pair_members(pair) -> list[dict]:
    return yaml.safe_load(Path(pair["path"], "spec.yaml").read_text())["members"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ensemble_runs")


@pytest.fixture(scope="module")
def pair(run_cli, root):
    """digits_pair built once from scratch: both members trained."""
    return json.loads(ok(run_cli("ensemble", "digits_pair", "--out", str(root), *FAST, "--json")).stdout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.yaml").write_text(TINY_REGISTRY)
    return folder


@pytest.fixture(scope="module")
def boosted(run_cli, tiny):
    res = ok(run_cli("--registry", str(tiny / "tiny.yaml"), "ensemble", "tiny_boost", "--out", str(tiny / "runs"),
                     "--json"))
    return json.loads(res.stdout)


def test_registry_ensemble_writes_its_run_folder_then_reuses_every_member(run_cli, pair, root):
    assert len(pair["trained"]) == 2 and pair["reused"] == []
    folder = Path(pair["path"])
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    assert spec["kind"] == "ensemble" and spec["ensemble"]["name"] == "digits_pair"
    assert spec["combiner"]["name"] == "weighted" and spec["data"]["label_set"] == "match"
    paths = [m["path"] for m in spec["members"]]
    assert [m["name"] for m in spec["members"]] == pair["trained"] and all(Path(p).is_absolute() for p in paths)
    assert json.loads((folder / "status.json").read_text())["state"] == "finished"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["members"]) == set(pair["trained"]) and metrics["best_member"] in metrics["members"]
    best_test = metrics["members"][metrics["best_member"]]["test_accuracy"]
    assert metrics["beat_best_member"] == (metrics["test"]["accuracy"] > best_test)
    assert np.array(metrics["diversity"]["pairwise_disagreement"]).shape == (2, 2)

    # The stored ensemble predictions are the saved combiner applied to the members' predictions.
    from mmzoo.combiners.base import Combiner

    combiner = Combiner.load(folder / "combiner.safetensors")
    test_probs, test_labels = member_probs(paths, "test")
    combined = combiner.predict(test_probs)
    stored = tensors(folder / "probs_test.safetensors")
    np.testing.assert_allclose(stored["probs"], combined, atol=1e-6)
    assert metrics["test"]["accuracy"] == pytest.approx(float((combined.argmax(1) == test_labels).mean()))
    preds = test_probs.argmax(-1)
    assert metrics["diversity"]["mean_disagreement"] == pytest.approx(float((preds[:, 0] != preds[:, 1]).mean()))

    before = {m: run_count(root, m) for m in ("digits_concat", "digits_gated")}
    assert before == {"digits_concat": 1, "digits_gated": 1}
    again = ok(run_cli("ensemble", "digits_pair", "--out", str(root), *FAST))
    assert {m: run_count(root, m) for m in before} == before  # nothing was trained
    assert run_count(root, "digits_pair") == 2
    assert "0 member(s) trained, 2 reused" in again.stdout
    assert again.stderr.count("reusing finished run") == 2
    assert "its best member on test" in again.stdout and all(name in again.stdout for name in pair["trained"])


def test_runs_form_with_greedy_and_json(run_cli, pair, root):
    members = pair["trained"]
    res = ok(run_cli("ensemble", "--runs", *members, "--combiner", "greedy", "--name", "mixed", "--out", str(root),
                     "--json"))
    out = json.loads(res.stdout)
    assert out["ensemble"] == "mixed" and out["run"].startswith("mixed/")
    assert out["combiner"] == {"name": "greedy", "rounds": 25, "metric": "nll"}  # registry defaults
    assert out["trained"] == [] and out["reused"] == members
    assert {"accuracy", "macro_f1"} <= set(out["test"]) and isinstance(out["beat_best_member"], bool)
    counts = tensors(Path(out["path"]) / "combiner.safetensors")["counts"]
    assert counts.min() >= 0 and counts.sum() == 25
    # Greedy is fitted on val, so its val score is in-sample: exactly its val predictions' accuracy.
    val_probs, val_labels = member_probs([m["path"] for m in out["members"]], "val")
    mixed = (counts[None, :, None] * val_probs).sum(1) / counts.sum()  # (N, C)
    assert out["val"]["accuracy"] == pytest.approx(float((mixed.argmax(1) == val_labels).mean()))
    assert "in-sample" in out["val_note"]
    test_probs, test_labels = member_probs([m["path"] for m in out["members"]], "test")
    errors = test_probs.argmax(-1) != test_labels[:, None]  # (N, M)
    assert out["diversity"]["mean_error_correlation"] == pytest.approx(float(np.corrcoef(errors.T)[0, 1]))


def test_combiner_never_sees_test_predictions(run_cli, pair, tmp_path):
    """Leakage: corrupting a member's stored test predictions changes test scores, never the fit."""
    copies = copy_runs([m["path"] for m in pair_members(pair)], tmp_path / "copy")
    args = ["ensemble", "--runs", *map(str, copies), "--combiner", "stacking", "--out", str(tmp_path / "out"), "--json"]
    clean = json.loads(ok(run_cli(*args)).stdout)

    def flip(arrays, meta):
        arrays["probs"] = np.ascontiguousarray(arrays["probs"][:, ::-1])  # valid rows, wrong classes

    rewrite_probs(copies[0], "test", flip)
    dirty = json.loads(ok(run_cli(*args)).stdout)
    a = tensors(Path(clean["path"]) / "combiner.safetensors")
    b = tensors(Path(dirty["path"]) / "combiner.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert dirty["val"] == clean["val"]
    assert dirty["members"][0]["test_accuracy"] != clean["members"][0]["test_accuracy"]  # test really was read
    # Stacking reports its cross-fitted (out-of-fold) validation score, the one stored in the combiner.
    assert "cross-fitted" in clean["val_note"]
    assert clean["val"]["accuracy"] == pytest.approx(float(a["validation_score"]))


def test_members_are_aligned_by_sample_id_or_refused(run_cli, pair, tmp_path):
    copies = copy_runs([m["path"] for m in pair_members(pair)], tmp_path / "copy")
    args = ["ensemble", "--runs", *map(str, copies), "--combiner", "mean", "--out", str(tmp_path / "out"), "--json"]
    straight = json.loads(ok(run_cli(*args)).stdout)

    def shuffle(arrays, meta):
        ids = json.loads(meta["ids"])
        order = np.random.default_rng(0).permutation(len(ids))
        arrays["probs"], arrays["labels"] = arrays["probs"][order], arrays["labels"][order]
        meta["ids"] = json.dumps([ids[i] for i in order])

    rewrite_probs(copies[1], "test", shuffle)
    shuffled = json.loads(ok(run_cli(*args)).stdout)
    assert shuffled["test"] == straight["test"]  # realigned by id, not by position

    def rename(arrays, meta):
        ids = json.loads(meta["ids"])
        meta["ids"] = json.dumps(["stranger"] + ids[1:])

    rewrite_probs(copies[1], "test", rename)
    refused(run_cli(*args), "predicted different test samples", copies[0].parent.name, copies[1].parent.name)


def test_bad_names_unfinished_runs_and_samme_without_boosting(run_cli, pair, tmp_path):
    paths = [m["path"] for m in pair_members(pair)]
    refused(run_cli("ensemble", "digits_pear", "--out", str(tmp_path)), "'digits_pear'", "did you mean 'digits_pair'")
    refused(run_cli("ensemble", "digits_concat", "--out", str(tmp_path)), "is a model, not an ensemble")
    refused(run_cli("ensemble", "--runs", *paths, "--combiner", "greedyy", "--out", str(tmp_path)),
            "no combiner named 'greedyy'", "did you mean 'greedy'")
    refused(run_cli("ensemble", "--runs", *paths, "--combiner", "samme", "--out", str(tmp_path)), "boosting recipe")
    refused(run_cli("ensemble", "--out", str(tmp_path)), "name an ensemble")
    copies = copy_runs(paths, tmp_path / "copy")
    (copies[1] / "status.json").write_text(json.dumps({"state": "running"}))
    refused(run_cli("ensemble", "--runs", *map(str, copies), "--out", str(tmp_path)),
            f"{copies[1].parent.name}/{copies[1].name} is interrupted, not finished")  # its owner is gone


def test_runs_from_different_label_sets_are_refused(run_cli, pair, boosted):
    concat = next(m["path"] for m in pair_members(pair))
    digit = boosted["members"][0]["path"]
    res = run_cli("ensemble", "--runs", concat, digit, "--combiner", "mean", "--out", str(Path(digit).parents[1]))
    refused(res, "label set", "'match'", "'digit'", Path(concat).parent.name, Path(digit).parent.name)


def test_boosting_follows_samme_and_lowers_training_error(run_cli, boosted, tiny):
    b = boosted["boosting"]
    assert len(b["alphas"]) == 4 and b["stopped"] is None and boosted["combiner"]["name"] == "samme"
    curve = b["train_error"]
    assert curve[-1] < curve[0] - 0.05, curve
    assert all(later <= earlier + 0.005 for earlier, later in zip(curve, curve[1:], strict=False)), curve

    folder = Path(boosted["path"])
    saved = tensors(folder / "boosting.safetensors")
    with safe_open(str(folder / "boosting.safetensors"), "np") as fh:
        train_ids = json.loads(fh.metadata()["train_ids"])
    weights = saved["sample_weights"]  # (M, N): the weights each member trained with
    np.testing.assert_allclose(weights[0], 1.0 / len(train_ids))
    np.testing.assert_allclose(tensors(folder / "combiner.safetensors")["alphas"], b["alphas"])
    k_classes = 10
    votes = 0.0
    for k, member in enumerate(boosted["members"]):
        run = Path(member["path"])
        stored = tensors(run / "probs_train.safetensors")
        with safe_open(str(run / "probs_train.safetensors"), "np") as fh:
            assert json.loads(fh.metadata()["ids"]) == train_ids
        wrong = stored["probs"].argmax(1) != stored["labels"]
        # SAMME by hand (Zhu et al. 2009): err, alpha = log((1 - err) / err) + log(K - 1), w *= exp(alpha * wrong).
        err = float((weights[k] * wrong).sum() / weights[k].sum())
        alpha = math.log((1 - err) / err) + math.log(k_classes - 1)
        assert b["errors"][k] == pytest.approx(err) and b["alphas"][k] == pytest.approx(alpha)
        if k + 1 < len(weights):
            expected = weights[k] * np.exp(alpha * wrong)
            np.testing.assert_allclose(weights[k + 1], expected / expected.sum(), rtol=1e-9)
        spec = yaml.safe_load((run / "spec.yaml").read_text())
        if k == 0:
            assert "resample" not in spec  # uniform weights train like a plain run
        else:  # the member really trained on these weights
            assert spec["resample"]["weights_sha256"] == hashlib.sha256(weights[k].tobytes()).hexdigest()
        votes = votes + alpha * np.eye(k_classes)[stored["probs"].argmax(1)]  # (N, K)
        labels = stored["labels"]
    assert curve[-1] == pytest.approx(float((votes.argmax(1) != labels).mean()))

    again = json.loads(ok(run_cli("--registry", str(tiny / "tiny.yaml"), "ensemble", "tiny_boost", "--out",
                                  str(tiny / "runs"), "--json")).stdout)
    assert again["trained"] == [] and again["reused"] == [m["name"] for m in boosted["members"]]
    assert again["boosting"]["alphas"] == b["alphas"]


def test_seeds_and_bagging_recipes(run_cli, boosted, tiny):
    registry = ["--registry", str(tiny / "tiny.yaml")]
    seeds = json.loads(ok(run_cli(*registry, "ensemble", "tiny_seeds", "--out", str(tiny / "runs"), "--json")).stdout)
    # Seed 0 of the model is the same training as boosting's first round, so that run is reused.
    assert seeds["reused"] == [boosted["members"][0]["name"]] and len(seeds["trained"]) == 1
    assert seeds["trained"][0].startswith("tiny_seeds.seed1/")
    trained_seed = yaml.safe_load(Path(seeds["members"][1]["path"], "spec.yaml").read_text())
    assert trained_seed["model"]["train"]["seed"] == 1 and "resample" not in trained_seed

    bag = json.loads(ok(run_cli(*registry, "ensemble", "tiny_bag", "--out", str(tiny / "runs"), "--json")).stdout)
    assert bag["reused"] == [] and [m["name"].split("/")[0] for m in bag["members"]] == ["tiny_bag.bag0",
                                                                                          "tiny_bag.bag1"]
    specs = [yaml.safe_load(Path(m["path"], "spec.yaml").read_text()) for m in bag["members"]]
    assert all(s["resample"]["kind"] == "bagging" for s in specs)
    assert specs[0]["resample"] != specs[1]["resample"]  # each member draws its own bootstrap
    again = json.loads(ok(run_cli(*registry, "ensemble", "tiny_bag", "--out", str(tiny / "runs"), "--json")).stdout)
    assert again["trained"] == [] and again["reused"] == [m["name"] for m in bag["members"]]


def test_combiner_takes_params_and_refits_get_their_own_name():
    from mmzoo.app.ensemble import refit_name
    from mmzoo.ensemble.build import combiner_label, combiner_spec
    from mmzoo.errors import RegistryError

    spec = combiner_spec("stacking:weight_decay=0.1, folds=3")
    assert spec["name"] == "stacking" and spec["weight_decay"] == 0.1 and spec["folds"] == 3
    assert combiner_label(spec) == "stacking:weight_decay=0.1,folds=3"
    assert combiner_label(combiner_spec("stacking")) == "stacking"
    assert combiner_spec("stacking:weight_decay=1e-3")["weight_decay"] == 1e-3  # read as the registry reads it
    for bad in ("stacking:C=0.1", "stacking:folds", "stacking:folds=many"):
        with pytest.raises(RegistryError):
            combiner_spec(bad)
    assert refit_name("emoji_all", combiner_spec("stacking")) == "emoji_all.stacking"
    tuned = refit_name("emoji_all", spec)
    assert tuned.startswith("emoji_all.stacking-") and tuned != refit_name("emoji_all", combiner_spec("stacking:folds=4"))


def test_a_name_with_runs_of_different_kinds_is_ambiguous(tmp_path):
    import yaml

    from mmzoo.errors import RunError
    from mmzoo.runs.folders import find_run, run_kind

    for stamp, combiner in (("20260101-000000", "mean"), ("20260102-000000", "stacking")):
        folder = tmp_path / "pair" / stamp
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text(yaml.safe_dump({
            "kind": "ensemble", "ensemble": {"name": "pair"}, "combiner": {"name": combiner}, "members": [],
            "data": {"dataset": "x", "fingerprint": "f", "label_set": "y", "classes": ["a", "b"]}}))
    assert run_kind(yaml.safe_load((folder / "spec.yaml").read_text())) == "ensemble:stacking"
    with pytest.raises(RunError, match="different kinds"):
        find_run("pair", tmp_path)
    assert find_run("pair/20260101-000000", tmp_path).id == "20260101-000000"
