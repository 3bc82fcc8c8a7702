"""Provides ensemble building: check members agree, fit a combiner on validation, write the run folder.

The combiner sees the members' VALIDATION probabilities only; test probabilities are
combined with the fitted combiner and scored, never fitted on. Members must share the
dataset content (fingerprint), the label set and the class order, and their stored
val/test predictions must cover the same samples: otherwise building stops with an
error naming the runs, since combining them would silently misalign labels.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np

from mmzoo import atomic
from mmzoo.ensemble.diversity import diversity
from mmzoo.errors import RegistryError, RunError
from mmzoo.runs.folders import Run, new_run
from mmzoo.train.metrics import classification_metrics

SPLITS = ("val", "test")


def combiner_spec(name: str) -> dict:
    """``{"name": name, ...params}`` of a registered combiner; suggests on a typo.

    ``name`` may carry params as ``NAME:key=value,key=value`` (values read as YAML scalars),
    e.g. ``stacking:weight_decay=0.1,folds=3``; each is checked against the combiner's params.
    """
    from mmzoo.zoo.plugins import get_zoo

    name, _, text = name.partition(":")
    zoo = get_zoo()
    part = zoo.get("combiner", name)
    if part is None:
        known = zoo.names("combiner")
        close = difflib.get_close_matches(name, known, n=1)
        raise RegistryError(f"no combiner named {name!r}", hint=(f"did you mean {close[0]!r}? " if close else "")
                            + f"(installed: {', '.join(known)})")
    spec = {"name": name, **part.defaults()}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, eq, raw = item.partition("=")
        param = part.param(key.strip())
        if not eq or param is None:
            allowed = ", ".join(p.name for p in part.params) or "none"
            raise RegistryError(f"combiner {name!r}: {item!r} is not KEY=VALUE with a known param",
                                hint=f"write --combiner {name}:KEY=VALUE,...; its params: {allowed}")
        from mmzoo.zoo.safeyaml import scalar

        value = scalar(raw.strip())
        if param.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        complaint = param.check(value)
        if complaint:
            raise RegistryError(f"combiner {name!r}: {key.strip()} {complaint}")
        spec[param.name] = value
    return spec


def combiner_label(spec: dict) -> str:
    """``name`` or ``name:key=value,...`` for the params that differ from the combiner's defaults."""
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get("combiner", spec["name"])
    defaults = part.defaults() if part is not None else {}
    changed = [f"{k}={v}" for k, v in spec.items() if k != "name" and defaults.get(k, object()) != v]
    return spec["name"] + (":" + ",".join(changed) if changed else "")


def build_combiner(spec: dict, num_members: int, num_classes: int):
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get("combiner", spec["name"])
    if part is None:
        combiner_spec(spec["name"])  # raises with a suggestion
    params = {k: v for k, v in spec.items() if k != "name"}
    return part.create(num_members, num_classes, **params)


def check_members(runs: list[Run]) -> dict:
    """The members' shared data record; raises RunError naming the runs when they disagree."""
    if not runs:
        raise RunError("an ensemble needs at least one member run")
    seen: set[Path] = set()
    for run in runs:
        if not (run.path / "spec.yaml").exists():
            raise RunError(f"{run.path} is not a run folder (no spec.yaml)")
        if run.spec.get("kind") == "ensemble":
            raise RunError(f"{run.name} is an ensemble run; members must be single-model runs",
                           hint="pass the ensemble's member runs instead (see its spec.yaml)")
        if not run.finished:
            raise RunError(f"{run.name} {run.unfinished()}, so it has no final predictions",
                           hint=f"finish it with `mmzoo train --resume {run.path}`, or leave it out")
        key = run.path.resolve()
        if key in seen:
            raise RunError(f"{run.name} is listed twice", hint="name each member run once")
        seen.add(key)
    first = runs[0]
    data = first.spec["data"]
    for run in runs[1:]:
        other = run.spec["data"]
        for field, what in (("fingerprint", "dataset content"), ("label_set", "label set"), ("classes", "class order")):
            if (other["dataset"], other[field]) != (data["dataset"], data[field]):
                raise RunError(
                    f"runs {first.name} and {run.name} differ in {what}: {first.name} has dataset "
                    f"{data['dataset']!r} (fingerprint {data['fingerprint']}), label set {data['label_set']!r}, classes "
                    f"{_short(data['classes'])}; {run.name} has dataset {other['dataset']!r} (fingerprint "
                    f"{other['fingerprint']}), label set {other['label_set']!r}, classes {_short(other['classes'])}",
                    hint="ensemble only runs trained on the same dataset and label set; combining these would "
                         "misalign labels")
    return dict(data)


def _short(classes: list[str]) -> str:
    return "[" + ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "") + "]"


def stacked_probabilities(runs: list[Run], split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """Members' probabilities on one split as (N, M, C), aligned by sample id, with labels (N,) and ids."""
    first_probs, labels, ids = runs[0].probabilities(split)
    columns = [first_probs]
    for run in runs[1:]:
        probs, y, other_ids = run.probabilities(split)
        if other_ids != ids:
            if sorted(other_ids) != sorted(ids) or len(set(ids)) != len(ids):
                raise RunError(f"runs {runs[0].name} and {run.name} predicted different {split} samples "
                               f"({len(ids)} vs {len(other_ids)}, {len(set(ids) ^ set(other_ids))} not shared)",
                               hint="the dataset's splits changed between them; retrain one of them")
            order = {sample: i for i, sample in enumerate(other_ids)}
            index = np.array([order[sample] for sample in ids])
            probs, y = probs[index], y[index]
        if not np.array_equal(y, labels):
            raise RunError(f"runs {runs[0].name} and {run.name} disagree on the true {split} labels of the same "
                           "samples", hint="they were trained on different label files; retrain one of them")
        columns.append(probs)
    for run, probs in zip(runs, columns, strict=True):
        if probs.shape != (len(ids), len(classes)):
            raise RunError(f"{run.name}: probs_{split}.safetensors holds {probs.shape}, expected "
                           f"({len(ids)}, {len(classes)})", hint="the run folder is damaged; retrain it")
    return np.stack(columns, axis=1), labels, ids  # (N, M, C), (N,)


def validation_groups(data: dict, ids: list) -> np.ndarray | None:
    """Integer group of each validation sample (near-duplicates share one), or None if unknown.

    Folds inside a combiner (stacking's cross-fit, moe's early-stopping hold-out) keep groups
    whole; otherwise emoji's skin-tone variants would leak across folds and flatter the score.
    """
    from mmzoo.errors import MmzooError
    from mmzoo.train.factory import open_dataset

    source = data.get("source") or ""
    try:
        dataset = open_dataset(source if source and Path(source).is_dir() else data["dataset"])
    except MmzooError:
        return None  # a user folder that moved: folds fall back to per-sample
    group_of = {s.id: s.group or s.id for s in dataset.samples}
    if not all(i in group_of for i in ids):
        return None
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(group_of[i], len(codes)) for i in ids], dtype=np.int64)


def build_ensemble(spec: dict, runs: list[Run], *, root: Path | None = None, notes: list[str] | None = None,
                   boosting: dict | None = None) -> Run:
    """Fit ``spec["combiner"]`` on the members' validation predictions and write the ensemble run folder.

    ``spec`` is a resolved ensemble spec (``name``, ``recipe``, ``combiner``, ...). A combiner whose
    weights come from the recipe (``weights_from_recipe``, e.g. SAMME) takes ``boosting["alphas"]``.
    """
    data = check_members(runs)
    classes = data["classes"]
    probs = {split: stacked_probabilities(runs, split, classes) for split in SPLITS}
    val_probs, val_labels, _ = probs["val"]
    test_probs, test_labels, _ = probs["test"]
    combiner = build_combiner(spec["combiner"], len(runs), len(classes))
    if combiner.weights_from_recipe:
        if not boosting:
            raise RegistryError(f"combiner {combiner.name!r} needs the member weights (alphas) of a boosting "
                                "recipe", hint="use it with a `boosting:` ensemble, or pick another combiner")
        combiner.set_member_weights(boosting["alphas"])
    combiner.fit(val_probs, val_labels, groups=validation_groups(data, probs["val"][2]))
    combined = {"val": combiner.predict(val_probs), "test": combiner.predict(test_probs)}  # (N, C) each
    val_note = "in-sample: the combiner was fitted on val"
    out_of_fold = combiner.out_of_fold_predictions()
    if out_of_fold is not None:
        combined["val"] = out_of_fold  # so the val score is not optimistic
        val_note = "cross-fitted (out-of-fold) on val"
    elif not combiner.requires_fit or combiner.weights_from_recipe:
        val_note = "not fitted on val"
    metrics = {split: classification_metrics(combined[split], probs[split][1], classes) for split in SPLITS}
    members = {}
    for m, run in enumerate(runs):
        val_m = classification_metrics(val_probs[:, m], val_labels, classes)
        test_m = classification_metrics(test_probs[:, m], test_labels, classes)
        members[run.name] = {"val_accuracy": val_m["accuracy"], "test_accuracy": test_m["accuracy"],
                             "test_macro_f1": test_m["macro_f1"]}
    # The best member is picked on validation, as a user without test labels would pick it.
    best = max(members, key=lambda name: (members[name]["val_accuracy"], -list(members).index(name)))
    metrics.update({
        "val_note": val_note,
        "members": members,
        "best_member": best,
        "beat_best_member": metrics["test"]["accuracy"] > members[best]["test_accuracy"],
        "diversity": diversity(test_probs, test_labels),
        "combiner": spec["combiner"]["name"],
    })
    weights = combiner.member_weights()  # (M,) or None
    notes = list(notes or [""] * len(runs))
    if weights is not None:
        notes = [f"{note}; weight {float(w):.3f}" if note else f"weight {float(w):.3f}" for note, w in
                 zip(notes, weights, strict=True)]
    if boosting:
        metrics["boosting"] = {k: boosting[k] for k in ("alphas", "errors", "train_error", "stopped")}
    return _write(spec, runs, data, combiner, combined, probs, metrics, notes, boosting, root)


def _write(spec, runs, data, combiner, combined, probs, metrics, notes, boosting, root) -> Run:
    run = new_run(spec["name"], root)
    run.set_status("running")
    try:
        _write_files(run, spec, runs, data, combiner, combined, probs, metrics, notes, boosting)
    except BaseException as exc:
        run.set_status("failed", error=str(exc))
        raise
    run.set_status("finished")
    return run


def _write_files(run, spec, runs, data, combiner, combined, probs, metrics, notes, boosting) -> None:
    from mmzoo.train.trainer import _version
    from mmzoo.zoo import provenance

    members = []
    for member, note in zip(runs, notes, strict=True):
        entry = {"name": member.name, "path": str(member.path.resolve())}
        if note:
            entry["weight_note"] = note
        members.append(entry)
    atomic.write_yaml(run.path / "spec.yaml", {"kind": "ensemble", "ensemble": spec, "members": members,
                                               "combiner": spec["combiner"], "data": data,
                                               "mmzoo_version": _version(),
                                               "plugins": provenance.record([("combiner", spec["combiner"]["name"])])})
    with atomic.atomic_path(run.path / "combiner.safetensors") as tmp:
        combiner.save(tmp)
    for split in SPLITS:
        _, labels, ids = probs[split]
        atomic.save_arrays(run.path / f"probs_{split}.safetensors",
                           {"probs": np.asarray(combined[split], dtype=np.float32), "labels": labels.astype(np.int64)},
                           metadata={"ids": json.dumps(ids), "classes": json.dumps(data["classes"])})
    if boosting:
        # The weights each member trained with, so every SAMME step can be checked by hand.
        atomic.save_arrays(run.path / "boosting.safetensors",
                           {"sample_weights": np.asarray(boosting["sample_weights"], dtype=np.float64),
                            "alphas": np.asarray(boosting["alphas"], dtype=np.float64),
                            "errors": np.asarray(boosting["errors"], dtype=np.float64)},
                           metadata={"train_ids": json.dumps(boosting["train_ids"]),
                                     "members": json.dumps([r.name for r in runs])})
    run.record_digests("spec.yaml", "combiner.safetensors", *(f"probs_{split}.safetensors" for split in SPLITS))
    atomic.write_json(run.path / "metrics.json", metrics)
