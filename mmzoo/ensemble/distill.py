"""Provides distillation: one student model trained on an ensemble's soft labels.

The teacher is a finished ensemble run. Its soft labels are the ensemble's own
probabilities on the TRAIN split: each member predicts train (members over frozen
encoders read the feature cache), and the ensemble's fitted combiner combines them.
Validation and test predictions are never read, so early stopping and the final
scores stay as honest as for any run.

The student minimises ``(1 - alpha) * hard + alpha * T^2 * KL(teacher_T || student_T)``,
where ``hard`` is the usual joint cross-entropy, ``teacher_T`` the teacher's probabilities
tempered as ``softmax(log p / T)`` and ``student_T`` = ``softmax(logits / T)``. With
``alpha = 0`` the loss is exactly the ordinary one. The result is an ordinary run
(folder ``<student>_distilled``) whose spec.yaml records its teacher.

With ``augment`` (see mmzoo.ensemble.augment) every step also builds a perturbed copy of the
batch (mixup between its rows, shifted or noisy images, swapped images), asks the live teacher
(mmzoo.ensemble.live_teacher) on that copy, and the soft term becomes the mean of the KL on the
batch and the KL on its copy. The copies are made from train samples only, so the soft labels
still come from the train split; the perturbation is drawn from the seed and the step, so the
run is deterministic and resumes exactly (``mmzoo train --resume`` asks the recorded teacher again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mmzoo import atomic
from mmzoo.errors import RunError, TrainingError
from mmzoo.runs.folders import Run

# Chosen on val by benchmarks/distill.py (docs/benchmarks.md): the best mean val accuracy over emoji and
# digits-match among settings at the member's own epochs. Starting from the best member and matching the
# teacher alone (alpha 1) on mixup copies is where the teacher's answers off the training points count.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_ALPHA = 1.0
DEFAULT_AUGMENT = "mixup"
DEFAULT_WARM_START = None  # None: start from the best member with the student's spec when there is one


def member_train_probabilities(run: Run, dataset, device) -> tuple[np.ndarray, list]:
    """A finished member's (probs (N, C), ids) on the train split; computed once, then kept in the run folder.

    Frozen encoders are not built when their features are cached (see mmzoo.train.deferred).
    """
    import torch

    from mmzoo.train.checkpoint import load_trained_state
    from mmzoo.train.factory import create_model
    from mmzoo.train.inputs import prepare
    from mmzoo.train.trainer import predict

    stored = run.path / "probs_train.safetensors"
    if stored.exists():
        probs, _, ids = run.probabilities("train")
        return probs, ids
    spec = run.spec
    run.run_spec.reopen_dataset(f"member {run.name}", opened=dataset)
    model = create_model(spec["model"], num_classes=len(spec["data"]["classes"]), defer_frozen=True)
    load_trained_state(model, run.path / "model.safetensors")
    model = model.to(device).eval()
    with torch.no_grad():
        data = prepare(model, dataset, spec["data"]["label_set"], device, show=False)["train"]
        probs = predict(model, data, device)  # (N, C)
    ids = [s.id for s in data.samples]
    atomic.save_arrays(stored, {"probs": probs, "labels": data.targets.numpy().astype(np.int64)},
                       metadata={"ids": json.dumps(ids), "classes": json.dumps(spec["data"]["classes"])})
    return probs, ids


def teacher_soft_labels(ensemble: Run, dataset, device) -> tuple[np.ndarray, list]:
    """The ensemble's probabilities (N, C) on the train split of ``dataset``, with the sample ids, in split order."""
    from mmzoo.combiners.base import Combiner

    spec = ensemble.spec
    if spec.get("kind") != "ensemble":
        raise RunError(f"{ensemble.name} is a single-model run; a teacher must be an ensemble run",
                       hint="build one with `mmzoo ensemble`, then distill it")
    if not ensemble.finished:
        raise RunError(f"{ensemble.name} {ensemble.unfinished()}")
    ensemble.run_spec.reopen_dataset(f"ensemble {ensemble.name}", opened=dataset)
    train_ids = [s.id for s in dataset.split("train")]
    columns = []
    for entry in spec["members"]:
        member = Run(Path(entry["path"]))
        if not member.finished:
            raise RunError(f"ensemble {ensemble.name}: member {entry['name']} is missing or unfinished "
                           f"({entry['path']})", hint="rebuild the ensemble with `mmzoo ensemble`")
        probs, ids = member_train_probabilities(member, dataset, device)
        if ids != train_ids:
            order = {sample: i for i, sample in enumerate(ids)}
            if set(order) != set(train_ids):
                raise RunError(f"member {member.name} predicted other train samples than {dataset.name!r} holds",
                               hint="retrain the member on the current dataset")
            probs = probs[[order[i] for i in train_ids]]
        columns.append(probs)
    combiner = Combiner.load(ensemble.path / "combiner.safetensors")
    if combiner.params.get("feature_dim"):
        raise TrainingError(f"{ensemble.name}: combiner {combiner.name!r} gates on member features, which "
                            "distillation does not compute", hint="distill an ensemble that combines probabilities")
    return combiner.predict(np.stack(columns, axis=1)), train_ids  # (N, M, C) -> (N, C)


def soften(probs, temperature: float):
    """Tempered probabilities softmax(log p / T), as float32 torch (N, C)."""
    import torch

    logp = torch.log(torch.as_tensor(np.asarray(probs), dtype=torch.float32).clamp_min(1e-12))
    return torch.softmax(logp / temperature, dim=-1)


def kl_to(target, logits, temperature: float):
    """KL(target || softmax(logits / T)), averaged over rows; target (B, C) probabilities."""
    import torch
    import torch.nn.functional as F

    log_student = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, C)
    target = target.to(log_student.device)
    return (torch.special.xlogy(target, target) - target * log_student).sum(dim=-1).mean()


def distillation_loss(soft, temperature: float, alpha: float, teacher=None, kinds: tuple[str, ...] = ()):
    """The trainer's loss hook: the hard loss mixed with T^2 * KL to the tempered teacher.

    The soft term is the KL on the batch's own train rows (``soft[idx]``, the stored soft labels). With
    perturbations (``kinds``, a live ``teacher``) it is the mean of that and the KL on a perturbed copy of
    the batch, where the teacher is asked afresh: the student sees the teacher's function off the
    training points.
    """
    from mmzoo.ensemble import augment

    def loss(out: dict, idx, hard, ctx):
        soft_term = kl_to(soft[idx.cpu()], out["logits"], temperature)
        if kinds and alpha > 0:  # with alpha 0 the soft term weighs nothing: no extra forward, an ordinary run
            draw = augment.Draw.make(kinds, ctx.seed, ctx.step, len(idx))
            cached, raw = augment.apply(draw, *ctx.data.batch(idx, ctx.device))
            feats = dict(cached)
            if raw:
                feats.update(ctx.model.encode(raw))
            perturbed = ctx.model.head(feats)["logits"]  # (B, C)
            soft_term = 0.5 * (soft_term + kl_to(soften(teacher.probs(idx, draw), temperature), perturbed,
                                                  temperature))
        return (1.0 - alpha) * hard + alpha * temperature ** 2 * soft_term

    return loss


def check_settings(temperature: float, alpha: float, augment: str = "none") -> None:
    from mmzoo.ensemble.augment import parse

    if not temperature > 0:
        raise TrainingError(f"--temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise TrainingError(f"--alpha must be between 0 and 1, got {alpha}")
    parse(augment)


def check_teacher(ensemble: Run, student_spec: dict | None = None) -> None:
    """Refuse, with the reason, a teacher or student that distillation cannot use (before any training starts)."""
    spec = ensemble.spec
    if spec.get("kind") != "ensemble" or not ensemble.finished:
        raise RunError(f"{ensemble.name}: the teacher must be an ensemble run, finished (distillation learns from "
                       "an ensemble's soft labels)", hint="pick a finished run of `mmzoo ensemble` (see `mmzoo runs`)")
    student_task = ((student_spec or {}).get("task") or {}).get("type", "classification")
    if spec.get("data", {}).get("task") == "tokens":
        raise RunError(f"distillation is for classifier ensembles; {ensemble.name} is a token (NER) ensemble",
                       hint="a token ensemble already exports as one ONNX graph (`mmzoo export`)")
    if student_task == "tokens":
        raise RunError(f"distillation trains a classifier; the student {student_spec['name']} is a token (NER) model",
                       hint="pick a classification model of the ensemble's dataset as the student")


def distill(ensemble: Run, student_spec: dict, *, temperature: float = DEFAULT_TEMPERATURE,
            alpha: float = DEFAULT_ALPHA, augment: str = DEFAULT_AUGMENT, out=None, device: str = "auto",
            quiet: bool = False, run_name: str | None = None, on_event=None, should_stop=None,
            threads: int | None = None, warm_start: bool | None = DEFAULT_WARM_START) -> Run:
    """Train ``student_spec`` on ``ensemble``'s soft labels (train split only); returns the finished run.

    With ``warm_start`` the student starts from the weights of the teacher's best member (on val) that has
    the student's exact spec, instead of from scratch; ``None`` does so when there is such a member.
    """
    from mmzoo.ensemble.augment import canonical
    from mmzoo.train.trainer import Options, train

    check_settings(temperature, alpha, augment)
    check_teacher(ensemble, student_spec)
    start = None if warm_start is False else warm_start_member(ensemble, student_spec, required=bool(warm_start))
    hook = _loss_hook(ensemble, student_spec, temperature, alpha, augment, device)
    teacher = {"run": ensemble.name, "path": str(ensemble.path.resolve()), "temperature": temperature,
               "alpha": alpha, "augment": canonical(augment), "soft_labels": "train",
               "warm_start": None if start is None else {"run": start.name, "path": str(start.path.resolve())}}
    options = Options(out=out, device=device, quiet=quiet, run_name=run_name or f"{student_spec['name']}_distilled",
                      extra_spec={"teacher": teacher}, loss_hook=hook, on_event=on_event, should_stop=should_stop,
                      threads=threads, init_from=None if start is None else start.path / "model.safetensors")
    return train(student_spec, options)


def warm_start_member(ensemble: Run, student_spec: dict, required: bool = True) -> Run | None:
    """The teacher's member with the student's exact spec and the best val accuracy: the student's starting point."""
    scores = ensemble.metrics.get("members", {})
    candidates = []
    for entry in ensemble.spec["members"]:
        member = Run(Path(entry["path"]))
        if member.finished and _same_model(member.spec.get("model", {}), student_spec):
            candidates.append((scores.get(entry["name"], {}).get("val_accuracy", -1.0), member))
    if not candidates:
        if not required:
            return None
        raise RunError(f"--warm-start: no member of {ensemble.name} has the student {student_spec['name']!r}'s "
                       "exact spec to start from",
                       hint="pick as student a model the ensemble holds (its spec.yaml lists the members), or drop "
                            "--warm-start")
    return max(candidates, key=lambda c: c[0])[1]


def _same_model(member: dict, student: dict) -> bool:
    # the name and the training schedule may differ; the architecture (what the weights must fit) may not
    def shape(spec: dict) -> dict:
        return {k: v for k, v in spec.items() if k not in ("name", "train", "description")}

    return shape(member) == shape(student)


def resume_distill(run: Run, *, out=None, device: str = "auto", quiet: bool = False, on_event=None,
                   should_stop=None, threads: int | None = None) -> Run:
    """Continue an interrupted distilled run with the teacher and settings its spec.yaml records."""
    from mmzoo.train.trainer import Options, train

    record = run.spec.get("teacher")
    if not record:
        raise RunError(f"{run.name} is not a distilled run", hint=f"resume it with `mmzoo train --resume {run.path}`")
    ensemble = Run(Path(record["path"]))
    if not (ensemble.path / "spec.yaml").exists():
        raise RunError(f"{run.name}: its teacher {record['run']} is gone ({record['path']})",
                       hint="a distilled run resumes only with the ensemble it started from")
    hook = _loss_hook(ensemble, run.spec["model"], record["temperature"], record["alpha"],
                      record.get("augment", "none"), device)
    start = record.get("warm_start")  # used only if no checkpoint was written yet (restart from epoch 1)
    if start and not (Path(start["path"]) / "model.safetensors").is_file():
        raise RunError(f"{run.name}: the member it started from, {start['run']}, is gone ({start['path']})",
                       hint="a warm-started student resumes only with the member it started from")
    options = Options(out=out, device=device, resume=str(run.path), quiet=quiet, loss_hook=hook, on_event=on_event,
                      should_stop=should_stop, threads=threads,
                      init_from=Path(start["path"]) / "model.safetensors" if start else None)
    return train(None, options)


def _loss_hook(ensemble: Run, student_spec: dict, temperature: float, alpha: float, augment: str, device: str):
    from mmzoo.ensemble.augment import parse
    from mmzoo.ensemble.live_teacher import LiveTeacher
    from mmzoo.train.factory import open_dataset
    from mmzoo.train.trainer import pick_device

    kinds = parse(augment)
    data = ensemble.spec.get("data", {})
    dataset = open_dataset(student_spec["task"]["dataset"])
    label_set = student_spec["task"]["label_set"] or dataset.default_label_set
    if (dataset.name, label_set, dataset.classes(label_set)) != (data.get("dataset"), data.get("label_set"),
                                                                  data.get("classes")):
        raise TrainingError(f"student {student_spec['name']!r} learns {dataset.name!r} (label set {label_set!r}); "
                            f"teacher {ensemble.name} predicts {data.get('dataset')!r} (label set "
                            f"{data.get('label_set')!r})", hint="pick a student trained on the teacher's data")
    if kinds and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError("--augment queries the teacher in the training loop, which runs in one process",
                            hint="distill with --augment none under torchrun, or run without torchrun")
    target = pick_device(device)
    probs, _ = teacher_soft_labels(ensemble, dataset, target)
    live = LiveTeacher(ensemble, dataset, target) if kinds else None
    return distillation_loss(soften(probs, temperature), temperature, alpha, live, kinds)
