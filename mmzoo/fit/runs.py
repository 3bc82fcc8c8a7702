"""Provides fit's run folders: refit members on train+val, and the chosen ensemble, as ordinary mmzoo runs."""

from __future__ import annotations

import torch

from mmzoo import atomic
from mmzoo.runs.folders import Run, new_run

NOTE = "members were refit on train+val with the hyperparameters and epochs chosen by cross-validation, so their " \
       "val scores are in-sample; the cross-validated estimate is in the fit report"


def write_member(spec: dict, model, dataset, label_set: str, classes: list[str], epochs: int, seconds: float,
                 out, extra: dict) -> Run:
    """A finished run folder for a head trained by fit (val and test predicted by the standard path)."""
    from mmzoo.fit.features import training_amp
    from mmzoo.train.inputs import prepare
    from mmzoo.train.trainer import _version, finish

    run = new_run(spec["name"], out)
    full = {"model": spec, "data": {"dataset": dataset.name, "source": dataset.source, "label_set": label_set,
                                    "fingerprint": dataset.fingerprint, "classes": classes},
            "device": "cpu", "mmzoo_version": _version(), "fit": extra}
    atomic.write_yaml(run.path / "spec.yaml", full)
    run.set_status("running")
    try:
        device = torch.device("cpu")
        data = prepare(model, dataset, label_set, device, training_amp(), show=False)
        finish(run, model, data, classes, {"best_epoch": epochs, "epoch": epochs, "seconds": seconds}, device)
        metrics = run.metrics
        metrics["val_note"] = NOTE
        atomic.write_json(run.path / "metrics.json", metrics)
    except BaseException as exc:
        run.set_status("failed", error=str(exc))
        raise
    return run


def write_ensemble(name: str, members: list[Run], combiner, combiner_spec: dict, oof_score: dict, out,
                   extra: dict) -> Run:
    """An ensemble run whose combiner was fitted on the members' out-of-fold train+val predictions."""
    from mmzoo.ensemble.build import _write, check_members, stacked_probabilities
    from mmzoo.ensemble.diversity import diversity
    from mmzoo.train.metrics import classification_metrics

    data = check_members(members)
    classes = data["classes"]
    probs = {split: stacked_probabilities(members, split, classes) for split in ("val", "test")}
    combined = {split: combiner.predict(probs[split][0]) for split in ("val", "test")}
    metrics = {split: classification_metrics(combined[split], probs[split][1], classes) for split in ("val", "test")}
    member_metrics = {}
    for m, run in enumerate(members):
        test_m = classification_metrics(probs["test"][0][:, m], probs["test"][1], classes)
        member_metrics[run.name] = {"val_accuracy": run.metrics["val"]["accuracy"],
                                    "test_accuracy": test_m["accuracy"], "test_macro_f1": test_m["macro_f1"]}
    best = max(member_metrics, key=lambda n: extra["member_cv"].get(n, 0.0))
    metrics.update({
        "val_note": "in-sample for the refit members; the combiner was fitted on out-of-fold train+val "
                    "predictions (see the fit report for the cross-validated estimate)",
        "members": member_metrics, "best_member": best,
        "beat_best_member": metrics["test"]["accuracy"] > member_metrics[best]["test_accuracy"],
        "combiner": combiner_spec["name"], "cv": oof_score,
    })
    metrics["diversity"] = diversity(probs["test"][0], probs["test"][1])
    spec = {"name": name, "kind": "ensemble", "description": "chosen by mmzoo fit",
            "recipe": {"runs": [r.name for r in members]}, "combiner": combiner_spec}
    weights = getattr(combiner, "weights", None)
    notes = [f"weight {float(w):.3f}" for w in weights] if weights is not None else [""] * len(members)
    metrics["fit"] = extra
    return _write(spec, members, data, combiner, combined, probs, metrics, notes, None, out)
