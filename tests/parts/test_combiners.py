"""Tests the ensemble combiners (fit on validation, combine per sample) and the SAMME boosting maths."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmzoo.combiners import meta
from mmzoo.combiners.base import Combiner
from mmzoo.ensemble.boosting import samme_error, samme_update, samme_vote
from mmzoo.errors import RegistryError, RunError, TrainingError
from mmzoo.zoo.parts import Part

PARTS: dict[str, Part] = {}
meta.register_all(lambda name, factory, **kw: PARTS.setdefault(name, Part("combiner", name, factory, **kw)))
NAMES = sorted(PARTS)
FITTED = ["weighted", "stacking", "greedy", "moe"]
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tensors here are tiny; on a shared 2-core machine extra intra-op threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_probs(seed: int, n: int, m: int, c: int, concentration: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(c, concentration), size=(n, m)), rng.integers(0, c, n)


def build(name: str, m: int, c: int, **params) -> Combiner:
    return PARTS[name].create(m, c, **params)


def fitted(name: str, probs: np.ndarray, labels: np.ndarray, **params) -> Combiner:
    combiner = build(name, probs.shape[1], probs.shape[2], **params)
    if name == "samme":
        # samme's alphas come from boosting, not from fitting; any positive ones make a valid vote.
        combiner.set_member_weights(np.linspace(0.5, 2.0, probs.shape[1]))
    return combiner.fit(probs, labels)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(-1) == labels).mean())


shapes = st.tuples(st.integers(1, 5), st.integers(2, 6), st.integers(12, 40), st.integers(0, 2**31))


@SETTINGS
@given(shapes, st.sampled_from([0.2, 1.0, 5.0]))
def test_every_combiner_outputs_a_distribution(shape, concentration):
    m, c, n, seed = shape
    val, labels = random_probs(seed, n, m, c, concentration)
    test, _ = random_probs(seed + 1, 7, m, c, concentration)
    for name in NAMES:
        out = fitted(name, val, labels).predict(test)
        assert out.shape == (7, c), name
        assert (out >= 0).all(), name
        np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5, err_msg=name)


@SETTINGS
@given(shapes)
def test_mean_of_identical_members_is_the_member(shape):
    m, c, n, seed = shape
    member, _ = random_probs(seed, n, 1, c)
    out = build("mean", m, c).predict(np.repeat(member, m, axis=1))
    np.testing.assert_allclose(out, member[:, 0], atol=1e-6)


@SETTINGS
@given(shapes)
def test_weighted_weights_lie_on_the_simplex(shape):
    m, c, n, seed = shape
    weights = fitted("weighted", *random_probs(seed, n, m, c)).member_weights()
    assert (weights >= 0).all()
    assert abs(float(weights.sum()) - 1.0) < 1e-6


def test_weighted_puts_its_weight_on_the_informative_member():
    noise, labels = random_probs(0, 300, 2, 4)
    good = np.full((300, 4), 0.1)
    good[np.arange(300), labels] = 0.7
    probs = np.stack([noise[:, 0], good, noise[:, 1]], axis=1)
    assert float(fitted("weighted", probs, labels).member_weights()[1]) > 0.9


@SETTINGS
@given(shapes, st.randoms(use_true_random=False))
def test_vote_is_invariant_to_member_order(shape, rnd):
    m, c, n, seed = shape
    probs, _ = random_probs(seed, n, m, c)
    order = list(range(m))
    rnd.shuffle(order)
    vote = build("vote", m, c)
    out, permuted = vote.predict(probs), vote.predict(probs[:, order])
    assert (out.argmax(-1) == permuted.argmax(-1)).all()
    np.testing.assert_allclose(out, permuted, atol=1e-7, rtol=0)


def test_vote_majority_beats_mean_and_ties_go_to_the_highest_mean():
    vote = build("vote", 3, 3)
    # Two members weakly vote class 0, one is sure of class 1: majority says 0, the mean says 1.
    majority = np.array([[[0.4, 0.35, 0.25], [0.4, 0.35, 0.25], [0.0, 1.0, 0.0]]])
    assert vote.predict(majority).argmax() == 0
    assert majority.mean(1).argmax() == 1
    # One vote each for classes 0, 1 and 2: the tie goes to class 2, the highest mean probability.
    tie = np.array([[[0.5, 0.2, 0.3], [0.1, 0.45, 0.45], [0.0, 0.4, 0.6]]])
    assert vote.predict(tie).argmax() == 2
    # Tied classes whose means differ below float32 resolution still follow the rule.
    # (counts + EPS * mean alone would round 1 + 5e-4 +- 1e-9 to the same float32 and pick class 0.)
    close = np.array([[[0.5 + 1e-6, 0.5 - 1e-6, 0.0], [0.5 - 3e-6, 0.5 + 3e-6, 0.0]]])
    assert build("vote", 2, 3).predict(close).argmax() == 1


@SETTINGS
@given(shapes, st.integers(1, 30), st.sampled_from(["nll", "accuracy"]))
def test_greedy_counts_are_whole_numbers_summing_to_rounds(shape, rounds, metric):
    m, c, n, seed = shape
    greedy = fitted("greedy", *random_probs(seed, n, m, c), rounds=rounds, metric=metric)
    assert greedy.counts.dtype == torch.int64
    assert (greedy.counts >= 0).all()
    assert int(greedy.counts.sum()) == rounds
    np.testing.assert_allclose(greedy.member_weights(), greedy.counts.double().numpy() / rounds)


def specialists(n: int, seed: int, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Members 0..c-1 each know one class well but over-predict it; member c is confidently off by one."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(0.0, 1.0, (n, c + 1, c))  # (N, M, C)
    for m in range(c):
        own = labels == m
        logits[own, m, m] += 3.0
        logits[~own, m, labels[~own]] += 1.5
        logits[~own, m, m] += 2.0
    logits[np.arange(n), c, (labels + 1) % c] += 4.0
    probs = np.exp(logits)
    return probs / probs.sum(-1, keepdims=True), labels


def test_fitted_combiners_beat_the_best_member_and_the_mean_on_complementary_members():
    val, val_labels = specialists(600, seed=1)
    test, test_labels = specialists(600, seed=2)
    best_member = max(accuracy(test[:, m], test_labels) for m in range(test.shape[1]))
    mean = accuracy(build("mean", 4, 3).predict(test), test_labels)
    assert best_member < 0.65 and mean < 0.6  # the case is hard for any single member and for averaging
    scores = {name: accuracy(fitted(name, val, val_labels).predict(test), test_labels) for name in FITTED}
    for name, score in scores.items():
        assert score > best_member + 0.2 and score > mean + 0.2, (name, score, best_member, mean)
    # Only stacking can read the off-by-one member's confident mistakes as evidence.
    assert scores["stacking"] > 0.95


def fit_then_predict(name: str, val: np.ndarray, labels: np.ndarray, test: np.ndarray, global_seed: int):
    """Fit on validation only, then score the test set: returns (state_dict, test predictions)."""
    torch.manual_seed(global_seed)  # a fit that read the global RNG would differ between calls
    combiner = fitted(name, val, labels)
    return combiner.state_dict(), combiner.predict(test)


@pytest.mark.parametrize("name", FITTED)
def test_fitting_sees_only_validation(name):
    val, labels = random_probs(3, 80, 3, 4)
    test, _ = random_probs(4, 50, 3, 4)
    clean_state, clean_out = fit_then_predict(name, val, labels, test, global_seed=0)
    corrupted = torch.rand(test.shape).numpy()
    corrupted /= corrupted.sum(-1, keepdims=True)
    state, _ = fit_then_predict(name, val, labels, corrupted, global_seed=123)
    assert state.keys() == clean_state.keys()
    for key in state:
        assert torch.equal(state[key], clean_state[key]), key
    refit = build(name, 3, 4)
    refit.load_state_dict(state)
    np.testing.assert_array_equal(refit.predict(test), clean_out)


def test_seed_changes_what_a_seeded_fit_learns():
    val, labels = random_probs(5, 120, 3, 4)
    moe = [fitted("moe", val, labels, seed=s).gate[0].weight for s in (0, 0, 1)]
    assert torch.equal(moe[0], moe[1]) and not torch.equal(moe[0], moe[2])
    stacking = [fitted("stacking", val, labels, seed=s).out_of_fold_predictions() for s in (0, 1)]
    assert not np.array_equal(stacking[0], stacking[1])


def test_stacking_validation_score_is_out_of_fold():
    # Members carry no signal: in-sample accuracy flatters the refit model, out-of-fold accuracy does not.
    val, labels = random_probs(6, 300, 3, 4)
    stacking = fitted("stacking", val, labels, weight_decay=0.0)
    assert stacking.out_of_fold_predictions().shape == (300, 4)
    np.testing.assert_allclose(stacking.out_of_fold_predictions().sum(-1), 1.0, atol=1e-9)
    assert float(stacking.validation_score) == pytest.approx(accuracy(stacking.out_of_fold_predictions(), labels))
    in_sample = accuracy(stacking.predict(val), labels)
    assert float(stacking.validation_score) < 0.35 < in_sample


@pytest.mark.parametrize("name", NAMES)
def test_safetensors_round_trip_gives_identical_outputs(name, tmp_path):
    val, labels = random_probs(7, 60, 3, 4)
    test, _ = random_probs(8, 25, 3, 4)
    combiner = fitted(name, val, labels)
    combiner.save(tmp_path / "c.safetensors")
    loaded = Combiner.load(tmp_path / "c.safetensors")
    assert type(loaded) is type(combiner) and loaded.config == combiner.config and loaded.is_fitted
    np.testing.assert_array_equal(loaded.predict(test), combiner.predict(test))


def test_loading_refuses_mismatched_files(tmp_path):
    build("vote", 3, 4).save(tmp_path / "vote.safetensors")
    with pytest.raises(RunError, match="not a GreedyCombiner"):
        type(build("greedy", 3, 4)).load(tmp_path / "vote.safetensors")
    with pytest.raises(RunError, match="does not exist"):
        Combiner.load(tmp_path / "missing.safetensors")
    build("greedy", 3, 4).save(tmp_path / "unfitted.safetensors")
    assert not Combiner.load(tmp_path / "unfitted.safetensors").is_fitted


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_torch(name, tmp_path):
    val, labels = random_probs(9, 60, 3, 4)
    combiner = fitted(name, val, labels).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        combiner,
        (torch.as_tensor(val[:2], dtype=torch.float32),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["probs"],
        output_names=["combined"],
        dynamic_axes={"probs": {0: "batch"}, "combined": {0: "batch"}},
    )
    test = random_probs(10, 11, 3, 4)[0].astype(np.float32)  # a batch size the export never saw
    (onnx_out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"probs": test})
    np.testing.assert_allclose(onnx_out, combiner.predict(test), atol=1e-5, rtol=0)


def test_moe_gate_can_read_member_features():
    # Member r is right in regime r and confidently random otherwise; only the features reveal r.
    rng = np.random.default_rng(11)
    n, c = 800, 3
    labels, regime = rng.integers(0, c, n), rng.integers(0, 2, n)
    logits = rng.normal(0, 1, (n, 2, c)) * 3
    logits[np.arange(n), regime, labels] += 6.0
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    features = regime[:, None, None] + rng.normal(0, 0.3, (n, 2, 4))  # (N, M, F)
    half = n // 2
    moe = build("moe", 2, c, feature_dim=4).fit(probs[:half], labels[:half], features[:half])
    weighted = fitted("weighted", probs[:half], labels[:half])
    moe_acc = accuracy(moe.predict(probs[half:], features[half:]), labels[half:])
    assert moe_acc > accuracy(weighted.predict(probs[half:]), labels[half:]) + 0.15
    with pytest.raises(TrainingError, match="needs the members' features"):
        moe.predict(probs[half:])


@pytest.mark.parametrize(
    "make, exc",
    [
        (lambda: build("mean", 3, 4).fit(np.full((5, 2, 4), 0.25), np.zeros(5, int)), TrainingError),
        (lambda: build("mean", 3, 4).fit(np.linspace(-1, 1, 60).reshape(5, 3, 4), np.zeros(5, int)), TrainingError),
        (lambda: build("mean", 3, 4).fit(np.full((5, 3, 4), 0.25), np.full(5, 4)), TrainingError),
        (lambda: build("mean", 3, 4).fit(np.full((5, 3, 4), 0.25), np.zeros(5)), TrainingError),
        (lambda: build("greedy", 3, 4).predict(np.full((5, 3, 4), 0.25)), TrainingError),
        (lambda: build("stacking", 3, 4).fit(np.full((4, 3, 4), 0.25), np.arange(4)), TrainingError),
        (lambda: build("samme", 3, 4).fit(np.full((5, 3, 4), 0.25), np.zeros(5, int)), TrainingError),
        (lambda: build("greedy", 3, 4, rounds=0), RegistryError),
        (lambda: build("greedy", 3, 4, metric="auc"), RegistryError),
        (lambda: build("moe", 3, 4, holdout=0.9), RegistryError),
        (lambda: build("mean", 3, 4, rounds=2), RegistryError),
    ],
)
def test_user_mistakes_raise_mmzoo_errors(make, exc):
    with pytest.raises(exc) as info:
        make()
    assert info.value.hint


def test_metadata_is_torch_free():
    code = "import sys, mmzoo.combiners.meta; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# ---- SAMME ------------------------------------------------------------------------


def test_samme_update_matches_a_hand_computation():
    # err = 0.4, K = 3: alpha = log(0.6 / 0.4) + log(2) = log(3); mistakes are scaled by 3, then renormalised.
    alpha, weights = samme_update(np.full(5, 0.2), np.array([True, True, True, False, False]), 3)
    assert alpha == pytest.approx(math.log(3), abs=1e-12)
    np.testing.assert_allclose(weights, [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 3], atol=1e-12)


def test_samme_edge_cases_clip_and_signal_stop():
    w = np.array([0.1, 0.2, 0.3, 0.4])
    alpha, same = samme_update(w, np.ones(4, bool), 3)  # perfect member
    assert math.isfinite(alpha) and alpha > 20
    np.testing.assert_allclose(same, w)
    assert samme_error(w, np.ones(4, bool)) == 0.0
    chance = np.array([True, False, False, False])  # err = 0.9 >= 1 - 1/3
    alpha, same = samme_update(w, chance, 3)
    assert alpha == 0.0
    np.testing.assert_allclose(same, w)
    assert samme_error(w, chance) >= 1 - 1 / 3
    with pytest.raises(TrainingError):
        samme_update(w, np.ones(3, bool), 3)


def test_samme_combiner_is_the_alpha_weighted_vote():
    probs = np.array([[[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.6, 0.1]]])  # votes: 0, 1, 1
    out = build("samme", 3, 3).set_member_weights([1.0, 0.6, 0.6]).predict(probs)
    np.testing.assert_allclose(out, [[1.0 / 2.2, 1.2 / 2.2, 0.0]], atol=1e-6)
    out = build("samme", 3, 3).set_member_weights([1.3, 0.6, 0.6]).predict(probs)
    assert out.argmax() == 0
    np.testing.assert_allclose(samme_vote(probs, [1.3, 0.6, 0.6]), out, atol=1e-6)  # the recipe's numpy twin


def boost(x: np.ndarray, y: np.ndarray, rounds: int, depth: int) -> tuple[np.ndarray, list[float], list[float]]:
    """SAMME with weighted decision trees as members; returns member probs (N, T, K), alphas, errors."""
    from sklearn.tree import DecisionTreeClassifier

    weights = np.full(len(y), 1.0 / len(y))
    probs, alphas, errors = [], [], []
    for _ in range(rounds):
        tree = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y, sample_weight=weights)
        p = tree.predict_proba(x)  # (N, K)
        correct = p.argmax(1) == y
        errors.append(samme_error(weights, correct))
        alpha, weights = samme_update(weights, correct, 3)
        probs.append(p)
        alphas.append(alpha)
    return np.stack(probs, axis=1), alphas, errors


def test_samme_agrees_with_sklearn_adaboost():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = make_classification(300, n_features=6, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    probs, alphas, _ = boost(x, y, rounds=12, depth=1)
    ada = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1, random_state=0), n_estimators=12, random_state=0)
    ada.fit(x, y)
    np.testing.assert_allclose(alphas, ada.estimator_weights_, rtol=1e-10)
    for k, staged in enumerate(ada.staged_predict(x), start=1):
        ours = build("samme", k, 3).set_member_weights(alphas[:k]).predict(probs[:, :k]).argmax(1)
        np.testing.assert_array_equal(ours, staged)


def test_samme_training_error_falls_as_members_are_added():
    from sklearn.datasets import make_classification

    k = 3
    x, y = make_classification(300, n_features=6, n_informative=4, n_redundant=0, n_classes=k, random_state=1)
    probs, alphas, errors = boost(x, y, rounds=15, depth=2)
    train_error = [
        1 - accuracy(build("samme", t, k).set_member_weights(alphas[:t]).predict(probs[:, :t]), y) for t in range(1, 16)
    ]
    # Boosting's training error is not guaranteed monotone; it may wobble a little above its best so far.
    for t in range(1, 15):
        assert train_error[t] <= min(train_error[: t + 1]) + 0.03, train_error
    assert train_error[-1] < train_error[0] - 0.1, train_error
    # What SAMME does decrease exactly: the multi-class exponential loss mean(exp(-y.f / K)) of
    # Zhu et al., with codes 1 / -1/(K-1) and beta = alpha (K-1)^2 / K; each member scales it by
    # Z = (1-err) exp(-beta/(K-1)) + err exp(beta/(K-1)^2) < 1.
    code = lambda cls: np.where(np.eye(k, dtype=bool)[cls], 1.0, -1.0 / (k - 1))  # noqa: E731
    f, loss = np.zeros((len(y), k)), [1.0]
    for t, (alpha, err) in enumerate(zip(alphas, errors, strict=True)):
        beta = alpha * (k - 1) ** 2 / k
        f += beta * code(probs[:, t].argmax(1))
        loss.append(float(np.mean(np.exp(-(code(y) * f).sum(1) / k))))
        z = (1 - err) * math.exp(-beta / (k - 1)) + err * math.exp(beta / (k - 1) ** 2)
        assert loss[-1] / loss[-2] == pytest.approx(z, rel=1e-9) and z < 1


def test_grouped_folds_keep_near_duplicates_together_and_stay_stratified():
    from mmzoo.combiners.base import stratified_folds

    rng = np.random.default_rng(0)
    groups = torch.as_tensor(np.repeat(np.arange(60), rng.integers(1, 6, 60)))  # variants of 60 emoji
    labels = groups % 3  # a group's samples share a label
    fold = stratified_folds(labels, 5, seed=0, groups=groups)
    for g in groups.unique():
        assert len(fold[groups == g].unique()) == 1  # a group never straddles folds
    for c in range(3):
        per_fold = np.bincount(fold[labels == c].numpy(), minlength=5)
        assert per_fold.max() - per_fold.min() <= 5  # samples of each class spread within one group's size


def test_stacking_cross_fit_with_groups_is_not_flattered_by_duplicates():
    """Duplicated noise samples: per-sample folds leak the copies, grouped folds do not."""
    leaky, honest = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n, m, c = 120, 3, 4
        base = rng.dirichlet(np.ones(c), size=(n, m))  # members carry no signal: chance is 0.25
        labels = rng.integers(0, c, n)
        probs, y, groups = np.repeat(base, 4, axis=0), np.repeat(labels, 4), np.repeat(np.arange(n), 4)
        leaky.append(float(build("stacking", m, c, weight_decay=0.0).fit(probs, y).validation_score))
        honest.append(float(build("stacking", m, c, weight_decay=0.0).fit(probs, y, groups=groups).validation_score))
    assert np.mean(honest) < 0.3 and np.mean(leaky) > np.mean(honest) + 0.05, (leaky, honest)
