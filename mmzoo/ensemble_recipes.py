"""Provides ensemble member recipes: which member runs an ensemble needs, reusing finished ones.

A member is reusable when a finished run has the same resolved model spec, the same
dataset fingerprint and the same ``resample`` record. ``resample`` is absent for plain
members (``members`` and ``seeds``: the spec, seed included, fixes the training), so a
run from `mmzoo train` with the same spec is reused. Bagging records the SHA-256 of its
bootstrap rows and boosting of its sample weights, so a member is reused only when it was
trained on exactly the data this recipe asks for.

Boosting (SAMME, Zhu et al. 2009) trains members in sequence. After each member its
predictions on the TRAIN split (stored beside the member as probs_train.safetensors) give
its weighted error err and vote weight alpha (``mmzoo.boosting.samme_update``), and the
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
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmzoo import atomic
from mmzoo.errors import RunError, TrainingError
from mmzoo.runs import Run, list_runs


@dataclass
class Member:
    """One member to obtain: its resolved spec and how its training data differs, if it does."""

    folder: str  # run folder name when trained, e.g. "digits_bag.bag1"
    spec: dict
    resample: dict | None = None
    train_rows: np.ndarray | None = None
    sample_weights: np.ndarray | None = None  # (N_train,), mean 1
    note: str = ""
    member_of: dict = field(default_factory=dict)


@dataclass
class Obtained:
    runs: list[Run]
    reused: list[bool]
    notes: list[str]
    boosting: dict | None = None  # alphas, errors, train_error, stopped, sample_weights (M, N), train_ids


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class _Datasets:
    """Datasets by name, loaded once per command."""

    def __init__(self) -> None:
        self.loaded: dict[str, object] = {}

    def get(self, spec: dict):
        from mmzoo.factory import open_dataset

        name = spec["task"]["dataset"]
        if name not in self.loaded:
            self.loaded[name] = open_dataset(name)
        return self.loaded[name]


def find_reusable(member: Member, fingerprint: str, root: Path | None) -> Run | None:
    """The newest finished run with this member's spec, data and resample record, own folder first."""
    candidates = list(reversed(list_runs(root)))
    candidates.sort(key=lambda run: run.model != member.folder)  # stable: newest first within each group
    for run in candidates:
        if not run.finished:
            continue
        try:
            spec = run.spec
        except RunError:
            continue
        if (spec.get("kind") != "ensemble" and spec.get("model") == member.spec
                and spec.get("data", {}).get("fingerprint") == fingerprint
                and spec.get("resample") == member.resample):
            return run
    return None


def find_resumable(member: Member, fingerprint: str, root: Path | None) -> Run | None:
    """The newest interrupted or cancelled run of exactly this member (a killed ensemble's orphan), if any.

    A run another process still trains reads ``running``, not ``interrupted``, so it is never taken.
    """
    for run in reversed(list_runs(root)):
        if run.model != member.folder or run.problem or run.status.get("state") not in ("interrupted", "cancelled"):
            continue
        spec = run.spec
        if (spec.get("kind") != "ensemble" and spec.get("model") == member.spec
                and spec["data"]["fingerprint"] == fingerprint and spec.get("resample") == member.resample):
            return run
    return None


def plan_members(ensemble: dict, resolve, datasets: _Datasets) -> list[Member]:
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
            n_train = len(datasets.get(spec).split("train"))
            # Seeded by (model seed, member index): the same recipe draws the same rows on rerun.
            rows = np.random.default_rng([seed, k]).integers(0, n_train, size=n_train).astype(np.int64)
            members.append(Member(f"{name}.bag{k}", spec, {"kind": "bagging", "rows_sha256": digest(rows)},
                                  train_rows=rows, note=f"bootstrap {k}: {len(np.unique(rows))} of {n_train} "
                                  "distinct rows", member_of=member_of))
        else:
            raise TrainingError(f"ensemble {name!r}: recipe {kind!r} cannot be planned up front")
    return members


def member_options(member: Member, *, out, device: str, quiet: bool):
    """The trainer Options of a member, the same whichever executor trains it."""
    from mmzoo.trainer import Options

    extra = {"member_of": member.member_of}
    if member.resample is not None:
        extra["resample"] = member.resample
    return Options(out=out, device=device, run_name=member.folder, quiet=quiet, train_rows=member.train_rows,
                   sample_weights=member.sample_weights, extra_spec=extra)


def obtain(member: Member, datasets: _Datasets, *, out, device: str, say) -> tuple[Run, bool]:
    """Reuse a matching finished run, or train the member; returns (run, reused)."""
    from mmzoo.trainer import train

    run = find_reusable(member, datasets.get(member.spec).fingerprint, out)
    if run is not None:
        say(f"{member.folder}: reusing finished run {run.name}")
        return run, True
    options = member_options(member, out=out, device=device, quiet=not sys.stderr.isatty())
    orphan = find_resumable(member, datasets.get(member.spec).fingerprint, out)
    if orphan is not None:  # a killed ensemble left it half-trained: continue it rather than start over
        say(f"{member.folder}: resuming interrupted run {orphan.name}")
        options.resume = str(orphan.path)
    else:
        say(f"{member.folder}: training" + (f" ({member.note})" if member.note else ""))
    return train(member.spec, options), False


def train_predictions(run: Run, datasets: _Datasets, device: str):
    """(probs (N, C), labels (N,), ids) of a finished run on its TRAIN split; computed once, then stored."""
    if (run.path / "probs_train.safetensors").exists():
        return run.probabilities("train")
    import json

    from mmzoo.checkpoint import load_run_model
    from mmzoo.featurecache import prepare
    from mmzoo.trainer import pick_device, predict

    spec = run.spec
    dataset = datasets.get(spec["model"])
    if dataset.fingerprint != spec["data"]["fingerprint"]:
        raise RunError(f"{run.name} was trained on other data than {dataset.name!r} holds now",
                       hint="retrain the member, or restore the dataset it was trained on")
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


def boost(ensemble: dict, resolve, datasets: _Datasets, *, out, device: str, say) -> Obtained:
    """Train or reuse SAMME members in sequence; see the module docstring for the stopping rules."""
    from mmzoo.boosting import SammeCombiner, samme_error, samme_update

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
        run, reused = obtain(member, datasets, out=out, device=device, say=say)
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
        say(f"boosting: {stopped}")
    stacked = np.stack(train_probs, axis=1)  # (N, M, C)
    train_error = []
    for m in range(1, len(alphas) + 1):
        vote = SammeCombiner(m, num_classes).set_alphas(alphas[:m]).predict(stacked[:, :m])  # (N, C)
        train_error.append(float((vote.argmax(axis=1) != labels).mean()))
    result.boosting = {"alphas": alphas, "errors": errors, "train_error": train_error, "stopped": stopped,
                       "sample_weights": np.stack(used), "train_ids": train_ids}
    return result


def obtain_members(ensemble: dict, *, resolve, out=None, device: str = "auto", say=None, executor=None) -> Obtained:
    """Every member run of a registry ensemble: reused where possible, trained otherwise.

    ``executor`` (mmzoo.executors) trains the members; the default trains them here, one after another.
    """
    from mmzoo.executors import LocalExecutor

    say = say or (lambda msg: print(msg, file=sys.stderr))
    executor = executor or LocalExecutor()
    datasets = _Datasets()
    executor.check_recipe(ensemble)
    if "boosting" in ensemble["recipe"]:
        return boost(ensemble, resolve, datasets, out=out, device=device, say=say)
    members = plan_members(ensemble, resolve, datasets)
    return executor.obtain_all(members, datasets, out=out, device=device, say=say)
