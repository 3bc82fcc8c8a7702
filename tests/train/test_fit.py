"""Tests `mmzoo fit`: folds, the linear head against scikit-learn, the one-standard-error rule, and a tiny run end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from mmzoo.data.folds import stratified_group_folds
from mmzoo.fit.heads import Candidate, model_spec, predict, train_head
from mmzoo.fit.search import Result, one_standard_error, pick_metric, score


def test_group_folds_keep_groups_whole_and_spread_classes():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(50), rng.integers(1, 8, 50))
    labels = groups % 4
    fold = stratified_group_folds(labels, 5, seed=3, groups=groups)
    assert all(len(set(fold[groups == g])) == 1 for g in range(50))
    for c in range(4):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 7
    assert np.array_equal(fold, stratified_group_folds(labels, 5, seed=3, groups=groups))  # seeded


class _Encoder(torch.nn.Module):
    """Only the width matters: fit trains heads on features the encoder already produced."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim


def test_linear_head_is_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32) * rng.uniform(0.1, 10, 12).astype(np.float32) + 3.0
    y = (x[:, 0] / 5 + x[:, 1] + rng.normal(size=300) > 3).astype(np.int64) + (x[:, 2] > 3)
    candidate = Candidate("text", "linear", (("C", 0.3),))
    spec = model_spec(candidate, {"text": {"encoder": "small_text", "freeze": True}},
                      {"dataset": "x", "label_set": None}, 10, 32, "accuracy", 0)
    fitted = train_head(spec, candidate, {"text": _Encoder(12)}, 3, {"text": torch.as_tensor(x)}, torch.as_tensor(y))
    ours = predict(fitted.model, {"text": torch.as_tensor(x)})
    scaled = StandardScaler().fit_transform(x)
    theirs = LogisticRegression(C=0.3, max_iter=5000, tol=1e-10).fit(scaled, y).predict_proba(scaled)
    assert np.abs(ours - theirs).max() < 2e-3


def _result(name, mean, se, complexity):
    spread = se * np.sqrt(5)  # five fold scores whose standard error is ``se``
    folds = list(mean + spread * np.array([-1.2649, -0.6325, 0.0, 0.6325, 1.2649]) / np.sqrt(1.0))
    return Result(name, complexity, folds, np.zeros((1, 2)))


def test_one_standard_error_rule_prefers_the_simpler_candidate_within_reach():
    simple = _result("text/linear", 0.80, 0.01, (0, 0, 0))
    stacked = _result("ensemble:stacking", 0.81, 0.02, (1, 4, 4))
    chosen, best = one_standard_error([simple, stacked])
    assert best is stacked and chosen is simple  # 0.80 >= 0.81 - se(best)
    clear_win = _result("ensemble:stacking", 0.90, 0.01, (1, 4, 4))
    assert one_standard_error([simple, clear_win])[0] is clear_win


def test_metric_follows_class_balance():
    assert pick_metric("auto", np.array([0, 1] * 50), 2) == "accuracy"
    assert pick_metric("auto", np.array([0] * 90 + [1] * 10), 2) == "macro_f1"
    probs = np.eye(3)[[0, 0, 0, 1]]
    assert score(probs, np.array([0, 0, 0, 2]), "accuracy", 3) == 0.75
    assert score(probs, np.array([0, 0, 0, 2]), "macro_f1", 3) == pytest.approx((1.0 + 0.0 + 0.0) / 3)


TINY_REGISTRY = """\
presets:
  tiny:
    text: {encoder: small_text, dim: 16, max_length: 16}
    image: {encoder: small_cnn, image_size: 16, channels: [8, 16], dim: 16}
    fusions: [concat, gated]
    heads:
      linear: {C: [0.1, 1.0]}
      mlp: {hidden: [16], dropout: [0.1], lr: [0.01], weight_decay: [0.01], aux: [0.3]}
    trials: 1
    epochs: 3
    batch_size: 16
    folds: 3
    combiners: [mean, stacking]
"""


def _colour_folder(folder):
    """Squares whose colour is the label; the text names it 70% of the time; pairs share a group."""
    rng = random.Random(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    folder.mkdir()
    rows = []
    for i in range(72):
        label = list(colours)[i % 3]
        colour = tuple(max(0, min(255, v + rng.randint(-40, 40))) for v in colours[label])
        Image.new("RGB", (16, 16), colour).save(folder / f"img{i}.png")
        word = label if rng.random() < 0.7 else rng.choice(list(colours))
        rows.append({"text": f"a {word} square {i}", "image": f"img{i}.png", "label": label, "group": f"g{i // 2}"})
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


@pytest.mark.e2e
def test_fit_a_folder_end_to_end(tmp_path, cli):
    data = _colour_folder(tmp_path / "squares")
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY_REGISTRY)
    res = cli("--registry", str(registry), "fit", str(data), "--preset", "tiny", "--folds", "2", "--out",
              str(tmp_path / "runs"), "--report", str(tmp_path / "report"))
    assert res.returncode == 0, res.stderr
    assert "cross-validated estimate (used for choosing)" in res.stdout and "test score" in res.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["folds"] == 2 and sum(report["rows"].values()) == 72 and report["rows"]["test"] > 0
    names = [r["name"] for r in report["models"]]
    assert any(n.startswith("text/") for n in names) and any(n.startswith("gated/") for n in names)
    assert {e["name"] for e in report["ensembles"]} == {"ensemble:mean", "ensemble:stacking"}
    chosen = report["chosen"]
    assert chosen["name"] in names + ["ensemble:mean", "ensemble:stacking"]
    assert 0.0 <= chosen["test"]["low"] <= chosen["test"]["score"] <= chosen["test"]["high"] <= 1.0
    assert (tmp_path / "report" / "report.md").read_text().count("|") > 20
    assert list((tmp_path / "report").glob("scores.*")) and report["export"]["path"].endswith(".onnx")
    assert report["export"]["parity"]["fp32"]["argmax_agreement"] == 1.0
    # Every refit model is an ordinary run folder that records how fit chose it.
    runs = list((tmp_path / "runs").glob("*/*/spec.yaml"))
    assert len(runs) >= 4
    assert "cv_mean" in (runs[0].read_text())


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--folds", "1", "--folds must be 2 to 50, got 1"),
    ("--folds", "100000", "--folds must be 2 to 50, got 100000"),
    ("--report", "/proc/mmzoo-report", "pass a writable --report DIR"),
    ("--export-dir", "FILE/sub", "is a file, not a folder"),
    ("--out", "FILE", "is not a folder"),
])
def test_bad_fit_options_are_refused_before_any_work(tmp_path, cli, flag, value, says):
    """A bad fold count or an output folder that cannot be written fails in seconds, not after the search."""
    (tmp_path / "FILE").write_text("a file where a folder should be")
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY_REGISTRY)
    value = value.replace("FILE", str(tmp_path / "FILE"))
    res = cli("--registry", str(registry), "fit", "digits-match", "--preset", "tiny", flag, value,
              "--report", str(tmp_path / "report")) if flag != "--report" else \
        cli("--registry", str(registry), "fit", "digits-match", "--preset", "tiny", flag, value)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert says in res.stderr and "CV" not in res.stderr  # refused before the first candidate
    assert not (tmp_path / "report").exists() and not list(tmp_path.glob(".mmzoo-probe*"))


def test_preset_ranges_are_checked_in_validation():
    from mmzoo.zoo.presets import check_preset

    raw = {"text": {"encoder": "small_text"}, "image": {"encoder": "small_cnn"}, "folds": 51, "trials": 0}
    messages = [m for _, m in check_preset("p", raw)]
    assert "preset 'p': folds must be 2 to 50, got 51" in messages
    assert "preset 'p': trials must be 1 to 1000, got 0" in messages


def _linear(kind: str, c: float, mean: float) -> Result:
    from mmzoo.fit.search import complexity

    candidate = Candidate(kind, "linear", (("C", c),))
    return Result(candidate.label, complexity(candidate), [mean] * 3, np.zeros((1, 2)), candidate=candidate)


@pytest.mark.parametrize(("peak", "grid", "tried"), [
    (0.001, [0.01, 0.1, 1.0], [0.001, 0.0001]),  # best on the low end: step down until it stops improving
    (100.0, [0.01, 0.1, 1.0], [10.0, 100.0, 1000.0]),  # high end: up to three steps
    (0.1, [0.01, 0.1, 1.0], []),  # best inside the grid: nothing more to try
])
def test_a_best_C_on_the_grid_s_end_is_followed_past_it(peak, grid, tried):
    from mmzoo.fit.search import beyond_the_grid

    def cv(c: float) -> float:  # a single peak in log C
        return 0.9 - 0.05 * abs(np.log10(c) - np.log10(peak))

    asked = []

    def evaluate(candidate):
        asked.append(candidate.p["C"])
        return _linear("text", candidate.p["C"], cv(candidate.p["C"]))

    added = beyond_the_grid([_linear("text", c, cv(c)) for c in grid], evaluate)
    assert asked == pytest.approx(tried) and [r.candidate.p["C"] for r in added] == pytest.approx(tried)


def test_fit_reports_a_class_the_test_split_lacks(tmp_path):
    """A class with no test row drops out of test macro-F1, so a majority-class model can score 1.0 there:
    fit must carry `mmzoo data check`'s warning into its summary and report, not only print clean scores."""
    from mmzoo.fit.pipeline import FitOptions, fit
    from mmzoo.fit.report import summary_lines

    data = _colour_folder(tmp_path / "squares")
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):  # blue is never in test; red and green are
        row.pop("group")
        row["split"] = "train" if row["label"] == "blue" or i % 4 else "test"
    (data / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY_REGISTRY)
    said = []
    report = fit(str(data), FitOptions(preset="tiny", registry=str(registry), out=tmp_path / "runs",
                                       report_dir=tmp_path / "report", export=False, say=said.append,
                                       preset_overrides={"folds": 2, "fusions": [], "combiners": ["mean"]}))
    assert len(report["warnings"]) == 1 and "'blue'" in report["warnings"][0] and "none in test" in report["warnings"][0]
    assert any(line.strip().startswith("warning: class(es) 'blue'") for line in summary_lines(report))
    assert any(s.startswith("warning:") for s in said)
    assert "none in val" not in " ".join(report["warnings"])  # fit chooses on train+val pooled
