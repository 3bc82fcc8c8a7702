"""Provides fit(): one dataset in, the cross-validated choice of model or ensemble out, exported and reported.

Reads top to bottom: preset and data, frozen features, folds over train+val, every
candidate cross-validated, ensembles cross-fitted on out-of-fold predictions, the
one-standard-error choice, refits on train+val, the test score (read once, for the report
only), the ONNX export and the report.
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmzoo.errors import DataError, RegistryError, RunError


@dataclass
class FitOptions:
    preset: str = "fast"
    registry: str | None = None
    label_set: str | None = None
    out: Path | None = None  # runs folder
    report_dir: Path | None = None  # default: fits/<dataset>-<time>
    export_dir: Path | None = None  # default: the report folder
    export: bool = True
    preset_overrides: dict = field(default_factory=dict)  # e.g. {"folds": 3} (tests, benchmarks)
    say: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "data"


def fit(data: str, options: FitOptions | None = None) -> dict:
    """Run the whole fit on ``data`` (a registered dataset or a manifest folder); returns the report dict."""
    from mmzoo.data.checks import split_findings
    from mmzoo.data.folds import group_codes, stratified_group_folds
    from mmzoo.fit.features import encoder_and_features, encoder_spec
    from mmzoo.fit.search import (
        beyond_the_grid,
        candidates,
        cross_fit_combiner,
        cross_validate,
        one_standard_error,
        pick_metric,
    )
    from mmzoo.train.factory import open_dataset
    from mmzoo.zoo.presets import build_preset, load_preset

    options = options or FitOptions()
    say = options.say
    started = time.perf_counter()
    preset = load_preset(options.preset, options.registry)
    if options.preset_overrides:
        preset = build_preset(preset.name, {**preset.raw, **options.preset_overrides}, preset.source)
    dataset = open_dataset(data)
    if getattr(dataset, "task", "classification") != "classification":
        raise DataError(f"`mmzoo fit` chooses a classifier, and {dataset.name!r} is a token (NER) dataset",
                        hint=f"name token models in registry.yaml (task: {{dataset: {dataset.name}, type: tokens}}), "
                             "then train and ensemble them; see docs/tokens.md")
    label_set = options.label_set or dataset.default_label_set
    if label_set not in dataset.label_sets:
        raise DataError(f"dataset {dataset.name!r} has no label set {label_set!r}",
                        hint=f"choose one of: {', '.join(dataset.label_sets)}")
    classes = dataset.classes(label_set)
    _check_fusions(preset)
    report_dir = Path(options.report_dir or Path("fits") / f"{_slug(dataset.name)}-{time.strftime('%Y%m%d-%H%M%S')}")
    _check_outputs(options, report_dir)

    # ---- frozen features, computed once per dataset and encoder (shared with `mmzoo train`)
    specs = {"text": encoder_spec(preset.text["encoder"], **{k: v for k, v in preset.text.items() if k != "encoder"}),
             "image": encoder_spec(preset.image["encoder"],
                                   **{k: v for k, v in preset.image.items() if k != "encoder"})}
    encoders, pooled = {}, {}
    torch.manual_seed(preset.seed)  # as the trainer and export seed before building: same random encoders
    for modality, spec in specs.items():
        encoders[modality], pooled[modality] = encoder_and_features(dataset, spec, show=True)

    # ---- train+val for choosing, test kept apart
    index = {s.id: i for i, s in enumerate(dataset.samples)}
    trval = [s for s in dataset.samples if s.split in ("train", "val")]
    test = dataset.split("test")
    if not trval or not test:
        raise DataError(f"dataset {dataset.name!r} needs train/val rows and test rows (has {len(trval)} and "
                        f"{len(test)})", hint="see docs/data.md for how splits are assigned")
    rows = np.array([index[s.id] for s in trval])
    x = {m: torch.as_tensor(v[rows]) for m, v in pooled.items()}
    y = np.array(dataset.targets(trval, label_set), dtype=np.int64)
    groups = group_codes([s.group for s in trval], len(trval))
    folds = min(preset.folds, len(np.unique(groups)))
    if folds < 2:
        raise DataError(f"dataset {dataset.name!r} has too few train+val groups for cross-validation")
    fold = stratified_group_folds(y, folds, preset.seed, groups)
    metric = pick_metric(preset.metric, y, len(classes))
    say(f"fit {dataset.name}: {len(trval)} train+val rows in {len(np.unique(groups))} groups, {folds}-fold "
        f"group-aware CV, metric {metric}; {len(test)} test rows kept apart")
    # A class absent from test is left out of test macro-F1, so a model that never predicts it can score 1.0
    # there: `mmzoo data check` warns, and the report must carry the warning next to its test scores. Fit
    # chooses on train+val as one pool, so that pool stands for both train and val here.
    pool = [s.labels[label_set] for s in trval]
    by_split = {"train": pool, "val": pool, "test": [s.labels[label_set] for s in test]}
    data_warnings = [f.message for f in split_findings(by_split, classes) if f.severity == "warning"]
    for warning in data_warnings:
        say(f"warning: {warning}")

    # ---- every candidate, cross-validated
    task = {"dataset": _dataset_ref(data, dataset), "label_set": label_set}
    base = _slug(f"fit-{dataset.name}")

    def make_spec(candidate, epochs=None):
        from mmzoo.fit.heads import model_spec

        return model_spec(candidate, specs, task, epochs or preset.epochs, preset.batch_size, metric, preset.seed,
                          name=f"{base}-{candidate.kind}" + ("-finetuned" if candidate.family == "finetune" else ""))

    results = []
    pool = candidates(preset, random.Random(preset.seed))
    for i, candidate in enumerate(pool, 1):
        result = cross_validate(candidate, make_spec, encoders, x, y, fold, metric, len(classes))
        results.append(result)
        say(f"[{i}/{len(pool)}] {candidate.label}: CV {metric} {result.mean:.4f} +- {result.std:.4f}"
            + (f" (epochs {result.epochs})" if candidate.family == "mlp" else "") + f", {result.seconds:.1f}s")
    for kind in dict.fromkeys(c.kind for c in pool if c.family == "linear"):
        linear = [r for r in results if r.candidate.kind == kind and r.candidate.family == "linear"]
        for result in beyond_the_grid(linear, lambda c: cross_validate(c, make_spec, encoders, x, y, fold, metric,
                                                                      len(classes))):
            results.append(result)
            say(f"[past the grid's end] {result.candidate.label}: CV {metric} {result.mean:.4f} +- "
                f"{result.std:.4f}, {result.seconds:.1f}s")
    tuner = None
    if preset.finetune:  # the last encoder blocks trained with each kind's chosen MLP head, on the same folds
        from mmzoo.fit.features import training_amp
        from mmzoo.fit.finetune import Tuner, finetune_candidates

        tuner = Tuner(dataset, encoders, specs, rows, training_amp())
        tuned = finetune_candidates(preset.finetune, results)
        for i, candidate in enumerate(tuned, 1):
            result = tuner.cross_validate(candidate, lambda c: make_spec(c, preset.finetune["epochs"]), x, y, fold,
                                          metric, len(classes))
            results.append(result)
            say(f"[finetune {i}/{len(tuned)}] {candidate.label}: CV {metric} {result.mean:.4f} +- {result.std:.4f} "
                f"(epochs {result.epochs}), {result.seconds:.1f}s wall, {result.cpu_seconds:.1f}s CPU")
    # Each kind's configuration is chosen by the same rule: the simplest within a standard error of its best.
    kinds = list(dict.fromkeys(r.candidate.kind for r in results))
    members = [one_standard_error([r for r in results if r.candidate.kind == kind])[0] for kind in kinds]
    ensembles = []
    for name in preset.combiners:
        ensembles.append(cross_fit_combiner(name, members, y, fold, groups, metric, len(classes)))
        say(f"ensemble {name} of {len(members)} members: CV {metric} {ensembles[-1].mean:.4f} "
            f"+- {ensembles[-1].std:.4f}")
    chosen, best = one_standard_error(members + ensembles)
    say(f"chosen by the one-standard-error rule: {chosen.name} (CV {chosen.mean:.4f}; best {best.name} "
        f"{best.mean:.4f} +- se {best.se:.4f})")

    # ---- refit each kind's best on train+val; write runs; score test (for the report only)
    from mmzoo.fit.heads import train_head
    from mmzoo.fit.runs import write_member

    runs, member_runs = {}, []
    y_t = torch.as_tensor(y)
    refit_cost = {}

    def refit(r, role: str):
        """Refit ``r`` on train+val for its CV-chosen epochs and write it as a run folder."""
        wall, cpu = time.perf_counter(), time.process_time()
        if r.candidate.family == "finetune":
            from mmzoo.fit.finetune import finetune_spec

            schedule = preset.finetune["epochs"]
            fitted = tuner.refit(make_spec(r.candidate, schedule), r.candidate, x, y_t, len(classes), r.epochs)
            spec = finetune_spec(make_spec(r.candidate, schedule), r.candidate)
        else:
            schedule = preset.epochs
            spec = make_spec(r.candidate)
            fitted = train_head(make_spec(r.candidate), r.candidate, encoders, len(classes), x, y_t,
                                epochs=r.epochs)
        spec["train"]["epochs"] = r.epochs if r.candidate.family != "linear" else spec["train"]["epochs"]
        refit_cost[r.name] = {"refit_seconds": time.perf_counter() - wall,
                              "refit_cpu_seconds": time.process_time() - cpu}
        extra = {"preset": preset.name, "candidate": r.candidate.label, "cv_metric": metric, "cv_mean": r.mean,
                 "cv_std": r.std, "cv_folds": r.fold_scores, "epochs": r.epochs, "schedule_epochs": schedule,
                 "refit": "train+val", "role": role, "cv_cpu_seconds": r.cpu_seconds, **refit_cost[r.name]}
        return write_member(spec, fitted.model, dataset, label_set, classes, r.epochs, fitted.seconds, options.out,
                            extra)

    for r in members:
        runs[r.name] = refit(r, "member")
        member_runs.append(runs[r.name])
    # Where fine-tuning was tried, the other side (frozen or fine-tuned) is refit too, for the report's test column
    # only: the choice above is already made.
    compared = _counterparts(preset, results, members) if tuner is not None else []
    for r in compared:
        runs[r.name] = refit(r, "comparison for the report (not chosen)")
    final = runs.get(chosen.name)
    test_scores = _test_scores(member_runs, members, ensembles, y, groups, metric, len(classes))
    for r in compared:
        probs, labels, _ = runs[r.name].probabilities("test")
        test_scores[r.name] = _interval(probs, labels, metric, len(classes))
    if chosen.combiner:
        from mmzoo.ensemble.build import build_combiner
        from mmzoo.fit.runs import write_ensemble

        probs = np.stack([m.oof for m in members], axis=1)
        combiner = build_combiner({"name": chosen.combiner}, len(members), len(classes))
        if combiner.requires_fit:
            combiner.fit(probs / probs.sum(-1, keepdims=True), y, groups=groups)
        extra = {"preset": preset.name, "cv_metric": metric, "cv_mean": chosen.mean, "cv_std": chosen.std,
                 "cv_folds": chosen.fold_scores, "fitted_on": "out-of-fold train+val predictions",
                 "member_cv": {runs[m.name].name: m.mean for m in members}}
        final = write_ensemble(f"{base}-ensemble", member_runs, combiner, {"name": chosen.combiner},
                               {"mean": chosen.mean, "std": chosen.std}, options.out, extra)
        chosen_weights = _weights(combiner, [m.name for m in members])
    else:
        chosen_weights = None

    exported = None
    if options.export:
        from mmzoo.onnx.export import export_run

        exported = export_run(final, options.export_dir or report_dir, say=say)
    report = {
        "dataset": dataset.name, "label_set": label_set, "classes": classes, "preset": preset.name,
        "metric": metric, "folds": folds, "rows": {"train+val": len(trval), "test": len(test)},
        "groups": int(len(np.unique(groups))),
        "warnings": data_warnings,
        "candidates": [_row(r) for r in results],
        "models": [dict(_row(r), run=runs[r.name].name, test=test_scores[r.name], **refit_cost[r.name])
                   for r in members],
        "finetune": _finetune_record(preset, tuner, results, members, runs, test_scores, refit_cost),
        "ensembles": [dict(_row(r), test=test_scores[r.name]) for r in ensembles],
        "chosen": {"name": chosen.name, "run": final.name, "path": str(final.path), "cv_mean": chosen.mean,
                   "cv_std": chosen.std, "cv_se": chosen.se, "test": test_scores[chosen.name],
                   "weights": chosen_weights},
        "best_cv": {"name": best.name, "cv_mean": best.mean, "cv_se": best.se},
        "export": None if exported is None else {"path": str(exported["path"]),
                                                 "parity": exported.get("parity")},
        "seconds": time.perf_counter() - started,
    }
    from mmzoo.fit.report import write_report

    report["report"] = write_report(report, report_dir)
    return report


def _check_outputs(options: FitOptions, report_dir: Path) -> None:
    """Refuse an output folder that cannot be written before the long work starts, not after it."""
    from mmzoo import atomic
    from mmzoo.runs.folders import DEFAULT_ROOT

    for flag, folder in (("--report", report_dir), ("--export-dir", options.export_dir if options.export else None),
                         ("--out", options.out or DEFAULT_ROOT)):
        problem = folder is not None and atomic.unwritable(folder)
        if problem:
            raise RunError(f"cannot write the fit's output to {folder}: {problem}", hint=f"pass a writable {flag} DIR")


def _check_fusions(preset) -> None:
    from mmzoo.zoo.plugins import get_zoo

    for name in preset.fusions:
        part = get_zoo().get("fusion", name)
        cls = part.load() if part is not None else None
        if cls is not None and getattr(cls, "uses_tokens", False):
            raise RegistryError(f"preset {preset.name!r}: fusion {name!r} reads token features, but fit trains "
                                "heads on pooled features", hint=f"remove {name!r} from the preset's fusions")


def _dataset_ref(data: str, dataset) -> str:
    """What the runs record as their dataset: the registered name, or the folder's absolute path."""
    from mmzoo.zoo.plugins import get_zoo

    if get_zoo().get("dataset", data) is not None:
        return data
    return str(Path(data).resolve())


def _row(r) -> dict:
    return {"name": r.name, "cv_mean": r.mean, "cv_std": r.std, "cv_se": r.se, "cv_folds": r.fold_scores,
            "epochs": r.epochs, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
            "family": r.candidate.family if r.candidate is not None else "ensemble"}


def _sides(results, members, kind: str):
    """(frozen, best fine-tuned by CV mean, every fine-tuned) of one model kind; the frozen side is the kind's
    member when that is frozen, else the frozen candidate the one-standard-error rule picks among frozen ones."""
    from mmzoo.fit.search import one_standard_error

    rows = [r for r in results if r.candidate is not None and r.candidate.kind == kind]
    tuned = [r for r in rows if r.candidate.family == "finetune"]
    if not tuned:
        return None, None, []
    member = next((m for m in members if m.candidate.kind == kind), None)
    frozen = member if member is not None and member.candidate.family != "finetune" else \
        one_standard_error([r for r in rows if r.candidate.family != "finetune"])[0]
    return frozen, max(tuned, key=lambda r: r.mean), tuned


def _counterparts(preset, results, members) -> list:
    """Per fine-tuned kind, the side that is not its member: the frozen one or the best fine-tuned."""
    out = []
    for kind in preset.finetune["kinds"]:
        frozen, best_tuned, _ = _sides(results, members, kind)
        member = next((m for m in members if m.candidate.kind == kind), None)
        if frozen is not None and member is not None:
            out.append(best_tuned if member.candidate.family != "finetune" else frozen)
    return out


def _finetune_record(preset, tuner, results, members, runs, test_scores, refit_cost) -> dict | None:
    """Fine-tuning's part of the report: its settings, the prefix caches' cost, and per kind the chosen frozen
    candidate next to the fine-tuned ones (CV, wall and CPU time; test for the two that were refit)."""
    if tuner is None:
        return None
    kinds = {}
    for kind in preset.finetune["kinds"]:
        frozen, best_tuned, tuned = _sides(results, members, kind)
        if frozen is None:
            continue
        def side(r):
            return dict(_row(r), test=test_scores.get(r.name), run=runs[r.name].name if r.name in runs else None,
                        **refit_cost.get(r.name, {}))

        kinds[kind] = {"frozen": side(frozen), "finetuned": [side(r) for r in tuned],
                       "best_finetuned": best_tuned.name}
    return {"settings": preset.finetune, "prefix_seconds": tuner.prefix_seconds,
            "prefix_cpu_seconds": tuner.prefix_cpu_seconds, "kinds": kinds}


def _weights(combiner, names: list[str]) -> dict | None:
    weights = getattr(combiner, "weights", None)
    if weights is None:
        if combiner.name == "mean":
            return {n: 1.0 / len(names) for n in names}
        return None
    return {n: float(w) for n, w in zip(names, weights, strict=True)}


def _test_scores(member_runs, members, ensembles, y_trval, groups, metric: str, num_classes: int) -> dict:
    """Test score with a 95% bootstrap interval for every refit model and every ensemble's combiner."""
    from mmzoo.ensemble.build import build_combiner

    out = {}
    test = [run.probabilities("test") for run in member_runs]
    labels = test[0][1]
    for r, (probs, _, _) in zip(members, test, strict=True):
        out[r.name] = _interval(probs, labels, metric, num_classes)
    stacked = np.stack([p for p, _, _ in test], axis=1).astype(np.float64)  # (N, M, C)
    stacked = stacked / stacked.sum(-1, keepdims=True)
    oof = np.stack([m.oof for m in members], axis=1)
    oof = oof / oof.sum(-1, keepdims=True)
    for r in ensembles:
        combiner = build_combiner({"name": r.combiner}, len(members), num_classes)
        if combiner.requires_fit:
            combiner.fit(oof, y_trval, groups=groups)
        out[r.name] = _interval(combiner.predict(stacked), labels, metric, num_classes)
    return out


def _interval(probs: np.ndarray, labels: np.ndarray, metric: str, num_classes: int, draws: int = 500) -> dict:
    from mmzoo.fit.search import score

    rng = np.random.default_rng(0)
    point = score(probs, labels, metric, num_classes)
    boots = [score(probs[i], labels[i], metric, num_classes)
             for i in (rng.integers(0, len(labels), len(labels)) for _ in range(draws))]
    low, high = np.percentile(boots, [2.5, 97.5])
    return {"score": point, "low": float(low), "high": float(high),
            "accuracy": float((probs.argmax(1) == labels).mean()),
            "macro_f1": score(probs, labels, "macro_f1", num_classes)}
