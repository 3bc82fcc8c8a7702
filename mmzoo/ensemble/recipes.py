"""Provides ensemble member recipes: which member runs an ensemble needs, reusing finished ones.

A member is reusable when a finished run has the same resolved model spec, the same
dataset fingerprint and the same ``resample`` record. ``resample`` is absent for plain
members (``members`` and ``seeds``: the spec, seed included, fixes the training), so a
run from `mmzoo train` with the same spec is reused. Bagging records the SHA-256 of its
bootstrap rows and boosting of its sample weights, so a member is reused only when it was
trained on exactly the data this recipe asks for.

Boosting (SAMME, Zhu et al. 2009) trains members in sequence. After each member its
predictions on the TRAIN split (stored beside the member as probs_train.safetensors) give
its weighted error err and vote weight alpha (``mmzoo.ensemble.boosting.samme_update``), and the
next member trains with the updated sample weights in its loss. Boosting stops early:
- when err >= 1 - 1/K (no better than chance among K classes): alpha would be <= 0, so the
  member is left out of the ensemble (its run stays on disk) and no further member is
  trained; when this happens to the first member there is no ensemble and it is an error;
- when err == 0 (perfect on the weighted train split): it is kept with a large, finite
  alpha (err clipped to MIN_ERROR), and boosting stops, since no sample would gain weight
  and the next member would see the same weights.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np

from mmzoo import atomic
from mmzoo.data.folds import group_bootstrap
from mmzoo.ensemble.executors import LocalExecutor
from mmzoo.ensemble.members import Control, Datasets, Member, Obtained, obtain
from mmzoo.errors import RunError, TrainingError
from mmzoo.runs.folders import Run


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def plan_members(ensemble: dict, resolve, datasets: Datasets) -> list[Member]:
    """The members of a members/seeds/bagging recipe (boosting is planned round by round)."""
    kind, value = next(iter(ensemble["recipe"].items()))
    name = ensemble["name"]
    if kind == "members":
        return [Member(m, resolve(m), member_of={"ensemble": name, "recipe": kind, "index": k})
                for k, m in enumerate(value)]
    base = resolve(value["model"])
    seed = base["train"]["seed"]
    members = []
    for k in range(value["n"]):
        spec = copy.deepcopy(base)
        member_of = {"ensemble": name, "recipe": kind, "index": k}
        if kind == "seeds":
            spec["train"]["seed"] = seed + k
            members.append(Member(f"{name}.seed{k}", spec, note=f"seed {seed + k}", member_of=member_of))
        elif kind == "bagging":
            train = datasets.get(spec).split("train")
            n_train = len(train)
            # Seeded by (model seed, member index): the same recipe draws the same rows on rerun.
            # Whole groups are drawn, so near-twins land together in a bag or outside it.
            rows = group_bootstrap([s.group for s in train], [seed, k])
            members.append(Member(f"{name}.bag{k}", spec, {"kind": "bagging", "rows_sha256": digest(rows)},
                                  train_rows=rows, note=f"bootstrap {k}: {len(np.unique(rows))} of {n_train} "
                                  "distinct rows", member_of=member_of))
        else:
            raise TrainingError(f"ensemble {name!r}: recipe {kind!r} cannot be planned up front")
    return members


def train_predictions(run: Run, datasets: Datasets, device: str):
    """(probs (N, C), labels (N,), ids) of a finished run on its TRAIN split; computed once, then stored."""
    if (run.path / "probs_train.safetensors").exists():
        return run.probabilities("train")
    import json

    from mmzoo.train.checkpoint import load_run_model
    from mmzoo.train.inputs import prepare
    from mmzoo.train.trainer import pick_device, predict

    spec = run.spec
    dataset = run.run_spec.reopen_dataset(run.name, opened=datasets.get(spec["model"]))
    dev = pick_device(device)
    model = load_run_model(run).to(dev)
    data = prepare(model, dataset, spec["data"]["label_set"], dev)["train"]
    probs = predict(model, data, dev)  # (N, C)
    labels = data.targets.numpy()
    ids = [s.id for s in data.samples]
    atomic.save_arrays(run.path / "probs_train.safetensors", {"probs": probs, "labels": labels.astype(np.int64)},
                       metadata={"ids": json.dumps(ids), "classes": json.dumps(spec["data"]["classes"])})
    run.record_digests("probs_train.safetensors")
    return probs, labels, ids


def boost(ensemble: dict, resolve, datasets: Datasets, *, out, device: str, control: Control) -> Obtained:
    """Train or reuse SAMME members in sequence; see the module docstring for the stopping rules."""
    from mmzoo.ensemble.boosting import samme_error, samme_update, samme_vote

    name, value = ensemble["name"], ensemble["recipe"]["boosting"]
    base = resolve(value["model"])
    dataset = datasets.get(base)
    num_classes = len(dataset.classes(base["task"]["label_set"]))
    n_train = len(dataset.split("train"))
    weights = np.full(n_train, 1.0 / n_train)  # (N,) on the simplex, as samme_update keeps them
    result = Obtained([], [], [])
    alphas, errors, used, train_probs = [], [], [], []
    stopped, train_ids, labels = None, None, None
    for k in range(value["n"]):
        uniform = bool(np.all(weights == weights[0]))
        # Uniform weights train exactly like no weights, so round 0 can reuse a plain run.
        member = Member(f"{name}.boost{k}", base, None if uniform else
                        {"kind": "boosting", "weights_sha256": digest(weights)},
                        sample_weights=None if uniform else weights * n_train,
                        note=f"boosting round {k + 1}", member_of={"ensemble": name, "recipe": "boosting", "index": k})
        run, reused = obtain(member, datasets, out=out, device=device, control=control)
        probs, y, ids = train_predictions(run, datasets, device)
        if train_ids is None:
            train_ids, labels = ids, y
        elif ids != train_ids or not np.array_equal(y, labels):
            raise RunError(f"{run.name}: its train split differs from the first boosting member's",
                           hint="the dataset changed between members; rerun the ensemble")
        correct = probs.argmax(axis=1) == labels
        err = samme_error(weights, correct)
        alpha, next_weights = samme_update(weights, correct, num_classes)
        if err >= 1.0 - 1.0 / num_classes:
            stopped = (f"round {k + 1} ({run.name}) had weighted train error {err:.4f} >= 1 - 1/K = "
                       f"{1 - 1 / num_classes:.4f}: no better than chance, so it was left out and boosting stopped")
            if not result.runs:
                raise TrainingError(f"boosting {name!r}: the first member is no better than chance on the training "
                                    f"split (error {err:.4f})", hint="train it longer (more epochs) or boost a "
                                    "stronger model")
            break
        result.runs.append(run)
        result.reused.append(reused)
        result.notes.append(f"alpha {alpha:.4f}")
        alphas.append(alpha)
        errors.append(err)
        used.append(weights)
        train_probs.append(probs)
        if err <= 0.0:
            stopped = (f"round {k + 1} ({run.name}) is perfect on the weighted train split: no sample gains "
                       "weight, so a next member would see the same weights; boosting stopped")
            break
        weights = next_weights
    if stopped:
        control.say(f"boosting: {stopped}")
    stacked = np.stack(train_probs, axis=1)  # (N, M, C)
    train_error = []
    for m in range(1, len(alphas) + 1):
        vote = samme_vote(stacked[:, :m], alphas[:m])  # (N, C)
        train_error.append(float((vote.argmax(axis=1) != labels).mean()))
    result.boosting = {"alphas": alphas, "errors": errors, "train_error": train_error, "stopped": stopped,
                       "sample_weights": np.stack(used), "train_ids": train_ids}
    return result


def obtain_members(ensemble: dict, *, resolve, out=None, device: str = "auto", executor=None,
                   control: Control | None = None) -> Obtained:
    """Every member run of a registry ensemble: reused where possible, trained otherwise.

    ``executor`` trains the members (mmzoo.ensemble.executors: here, one after another, by default);
    ``control`` carries progress out and a stop request in.
    """
    control = control or Control()
    executor = executor or default_executor()
    datasets = Datasets()
    executor.check_recipe(ensemble)
    if "boosting" in ensemble["recipe"]:
        return boost(ensemble, resolve, datasets, out=out, device=device, control=control)
    members = plan_members(ensemble, resolve, datasets)
    return executor.obtain_all(members, datasets, out=out, device=device, control=control)


def default_executor():
    return LocalExecutor()
