"""Provides train(): one model from a resolved spec to a finished run folder.

Reads top to bottom: set up (data, model, optimiser), maybe resume, then the
epoch loop (train, evaluate, checkpoint, early-stop), then the final evaluation
of the best weights on val and test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmzoo import atomic
from mmzoo.errors import TrainingError
from mmzoo.runs import folders as runs
from mmzoo.runs import lock as runlock
from mmzoo.train import checkpoint, distributed, threads
from mmzoo.train.inputs import SplitInputs, initial_pooled, prepare
from mmzoo.train.metrics import classification_metrics
from mmzoo.train.optim import adamw, lr_at, optimizer_step
from mmzoo.train.progress import progress_bar


class Cancelled(TrainingError):
    """Training was cancelled; the last complete checkpoint is kept for --resume."""


@dataclass
class Options:
    out: Path | None = None
    device: str = "auto"
    resume: str | None = None
    on_event: Callable[[dict], None] | None = None  # progress for the TUI: {"type": "step"|"epoch"|...}
    should_stop: Callable[[], bool] | None = None
    sample_weights: np.ndarray | None = None  # per training sample, for boosting
    train_rows: np.ndarray | None = None  # indices into the train split, for bagging (with repeats)
    run_name: str | None = None  # folder name under out/, defaults to the model name
    quiet: bool = False
    extra_spec: dict = field(default_factory=dict)  # recorded in spec.yaml (e.g. recipe details)
    threads: int | None = None  # torch CPU threads; None: the train section's `threads`, else chosen from the work
    loss_hook: Callable | None = None  # (out, idx, loss, LossContext) -> the loss to minimise (see mmzoo.ensemble.distill)
    init_from: Path | None = None  # a finished run's model.safetensors to start from (a warm-started student)


@dataclass
class LossContext:
    """What a loss hook may read besides the batch's outputs: the model, the train split's inputs, the step."""

    model: torch.nn.Module
    data: SplitInputs
    device: torch.device
    step: int  # optimiser steps taken before this one (the same after a resume)
    seed: int


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but torch sees no CUDA device", hint="use --device cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the hardware runs it fast (CUDA, or a CPU with AMX); fp32 otherwise."""
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return torch.bfloat16 if "amx_bf16" in flags else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def forward(model, data: SplitInputs, idx: torch.Tensor, device) -> dict[str, torch.Tensor]:
    cached, raw = data.batch(idx, device)
    feats = dict(cached)
    if raw:
        feats.update(model.encode(raw))
    if data.prefixes:  # partly frozen encoders: their trained last blocks run on cached prefix states
        feats.update(model.encode_suffix(data.prefix_batch(idx, device)))
    return model.head(feats)


@torch.no_grad()
def predict(model, data: SplitInputs, device, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, C) in float32, computed without autocast for stable numbers."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        out.append(torch.softmax(forward(model, data, idx, device)["logits"].float(), dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes), np.float32)


def joint_loss(out: dict, y: torch.Tensor, weights: torch.Tensor | None, train: dict,
               total: torch.Tensor | None = None) -> torch.Tensor:
    """Fusion loss plus weighted auxiliary text-only and image-only losses (per-sample weighted).

    ``total`` replaces the batch's own weight sum as the normaliser (DDP: see mmzoo.train.distributed).
    """
    if total is None and weights is None:
        def ce(logits):  # uniform weights: the plain mean, without per-sample bookkeeping
            return F.cross_entropy(logits.float(), y)
    else:
        denominator = weights.sum() if total is None else total

        def ce(logits):
            return (F.cross_entropy(logits.float(), y, reduction="none") * weights).sum() / denominator

    loss = ce(out["logits"])
    if "text_logits" in out:
        loss = loss + train["aux_text"] * ce(out["text_logits"])
    if "image_logits" in out:
        loss = loss + train["aux_image"] * ce(out["image_logits"])
    return loss


# Task families (the registry's task.type) that train with their own loop, by "module:function"; imported only
# when such a model trains, so this module names no package above it.
TASK_LOOPS = {"tokens": "mmzoo.tokens.train:train_tokens"}


def _task_loop(spec: dict | None, options: Options):
    """The own training loop of a spec's task family (or of the run being resumed), or None for classification."""
    import importlib

    if options.resume:
        try:
            spec = runs.find_run(options.resume, options.out, newest="unfinished").spec.get("model")
        except Exception:  # resume itself reports a bad run reference, with its own message
            return None
    task_type = ((spec or {}).get("task") or {}).get("type", "classification")
    target = TASK_LOOPS.get(task_type)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def train(spec: dict, options: Options | None = None):
    """Train one model; returns the finished :class:`mmzoo.runs.Run`.

    Under torchrun every rank calls this and trains with DDP (see mmzoo.train.distributed).
    """
    options = options or Options()
    task_loop = _task_loop(spec, options)
    if task_loop is not None:  # a task family with its own loop (single process), e.g. tokens
        return task_loop(spec, options)
    with distributed.session(pick_device(options.device)) as ctx, contextlib.ExitStack() as held, \
            threads.restored():
        if not ctx.is_main:  # rank 0 alone prints, shows progress and reports events
            options = replace(options, quiet=True, on_event=None)
        return _train(spec, options, ctx, held)


def _train(spec: dict, options: Options, ctx: distributed.Context, held: contextlib.ExitStack):
    from mmzoo.data.checks import require_trainable
    from mmzoo.train.factory import create_model, open_dataset
    from mmzoo.zoo import provenance

    emit = options.on_event or (lambda event: None)
    say = (lambda msg: None) if options.quiet else (lambda msg: print(msg, file=sys.stderr))
    if options.resume:
        run = ctx.shared_run(lambda: runs.find_run(options.resume, options.out, newest="unfinished"))
        _check_resumable(run, options)
        if ctx.is_main:  # one trainer per run; the lock is dropped when this process ends, however it ends
            held.enter_context(runlock.hold(run.path, run.name))
            runlock.sweep_runs(run.path.parent.parent)  # what killed writers left (new_run sweeps for new runs)
        if run.finished:  # checked under the lock: another process may just have finished it
            raise TrainingError(f"{run.name} already finished; nothing to resume")
        spec = run.spec["model"]
        ckpt, note = checkpoint.find_latest(run.path / "checkpoints")
        if note:
            say(f"mmzoo: {run.name}: {note}")
        elif ckpt is None:
            say(f"mmzoo: {run.name} has no complete checkpoint yet; restarting it from epoch 1")
    else:
        run, ckpt = ctx.shared_run(lambda: runs.new_run(options.run_name or spec["name"], options.out)), None
        if ctx.is_main:
            held.enter_context(runlock.hold(run.path, run.name))
    tcfg, task = spec["train"], spec["task"]
    seed_everything(tcfg["seed"])
    device = ctx.device
    dataset = open_dataset(task["dataset"])
    label_set = task["label_set"] or dataset.default_label_set
    require_trainable(dataset, label_set)  # one class, or no val/test rows: nothing honest to report
    classes = dataset.classes(label_set)
    # frozen encoders are built only if a feature is missing from the cache (see mmzoo.train.deferred)
    model = create_model(spec, num_classes=len(classes), defer_frozen=True).to(device)
    full_spec = {"model": spec, "data": {"dataset": dataset.name, "source": dataset.source, "label_set": label_set,
                                         "fingerprint": dataset.fingerprint, "classes": classes},
                 "device": str(device), "mmzoo_version": _version(),
                 "plugins": provenance.record(provenance.model_parts(spec)), **ctx.describe(), **options.extra_spec}
    if not options.resume and ctx.is_main:
        atomic.write_yaml(run.path / "spec.yaml", full_spec)
        run.record_digests("spec.yaml")
    run.set_status("running")
    emit({"type": "start", "run": run.name, "path": str(run.path)})

    amp = autocast_dtype(tcfg["precision"], device)
    wanted = threads.requested(options.threads, tcfg.get("threads"))
    threads.use(threads.choose(threads.ENCODER, wanted))  # encoding missing features runs encoders
    with ctx.main_first():  # rank 0 fills the feature cache; the other ranks then read it
        data = prepare(model, dataset, label_set, device, amp, show=not options.quiet)
    train_data = data["train"]
    # a head over cached features gains nothing from more threads, and loses much on a busy machine
    threads.use(threads.choose(threads.ENCODER if train_data.preprocessors else threads.HEAD, wanted))
    if ckpt is None:  # on resume the checkpoint restores the standardisation with the weights
        model.fit_standardizers(initial_pooled(model, train_data, device))
        if options.init_from is not None:  # the same spec and train split: its standardisation is the one just fitted
            checkpoint.load_trained_state(model, options.init_from)
    rows = np.arange(len(train_data)) if options.train_rows is None else np.asarray(options.train_rows)
    weights = torch.ones(len(train_data)) if options.sample_weights is None else torch.as_tensor(
        options.sample_weights, dtype=torch.float32)
    if len(rows) == 0:
        raise TrainingError(f"dataset {dataset.name!r} has no training samples")
    step = ctx.wrap(model, forward)  # first: on CUDA it swaps BatchNorm for SyncBatchNorm (same parameters)
    params = model.trainable_parameters()
    # the head at lr, trained encoder layers at encoder_lr (lower, for pretrained weights) when it is set
    optimizer = adamw(model.param_groups(tcfg["lr"], tcfg.get("encoder_lr")), tcfg["lr"], tcfg["weight_decay"])
    steps_per_epoch = math.ceil(len(rows) / tcfg["batch_size"])
    total_steps = steps_per_epoch * tcfg["epochs"]
    metric_name = tcfg["metric"]

    progress = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0,
                "history": []}
    best_state = copy.deepcopy(checkpoint.trained_state(model))
    if ckpt is not None:
        progress, best_state = checkpoint.restore(ckpt, model, optimizer)
        say(f"mmzoo: resuming {run.name} after epoch {progress['epoch']}")
    first_epoch = progress["epoch"] + 1
    if _early_stopped(progress, tcfg):  # killed after early stopping's last checkpoint: stop where it stopped
        say(f"mmzoo: early stopping had ended {run.name} after epoch {progress['epoch']}; finishing it")
        first_epoch = tcfg["epochs"] + 1

    y_all = train_data.targets
    # Entering a disabled autocast still costs time on every step; skip it outright for fp32.
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    for epoch in range(first_epoch, tcfg["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = torch.from_numpy(rows)[torch.randperm(len(rows), generator=torch.Generator().manual_seed(
            tcfg["seed"] * 100_003 + epoch))]  # a fixed order per (seed, epoch) makes resume exact
        total_loss = 0.0
        with progress_bar(f"epoch {epoch}/{tcfg['epochs']}", steps_per_epoch,
                          "loss {task.fields[loss]:.4f}  val {task.fields[metric]:.3f}",
                          enabled=not options.quiet, plain=False) as bar:
            bar.update(metric=max(progress["best"], 0.0))
            for b in range(steps_per_epoch):
                if options.should_stop and options.should_stop():
                    run.set_status("cancelled", epoch=progress["epoch"])
                    raise Cancelled(f"cancelled during epoch {epoch}; {run.name} keeps the checkpoint of "
                                    f"epoch {progress['epoch']}", hint=f"resume with `mmzoo train --resume {run.path}`")
                idx = order[b * tcfg["batch_size"]:(b + 1) * tcfg["batch_size"]]
                idx, batch_weights, total = ctx.shard(idx, weights)  # this rank's rows of the global batch
                for group in optimizer.param_groups:  # each group's own peak, on one schedule
                    group["lr"] = lr_at(progress["step"], total_steps, group.get("peak", tcfg["lr"]), tcfg["warmup"])
                with autocast:
                    out = step(train_data, idx, device)
                uniform = options.sample_weights is None and total is None
                loss = joint_loss(out, y_all[idx].to(device), None if uniform else batch_weights.to(device), tcfg,
                                  total)
                if options.loss_hook is not None:
                    with autocast:
                        loss = options.loss_hook(out, idx, loss, LossContext(model, train_data, device,
                                                                             progress["step"], tcfg["seed"]))
                # the global batch's loss, the same on every rank; one host sync per step, read once
                seen = ctx.mean(loss.detach()).item()
                if not math.isfinite(seen):
                    run.set_status("failed", error="non-finite loss")
                    raise TrainingError(f"loss became {seen} at epoch {epoch}, step {b + 1} of {run.name}",
                                        hint="lower --lr, or use precision: fp32 in the model's train section")
                optimizer_step(optimizer, loss, params, tcfg["grad_clip"])
                progress["step"] += 1
                total_loss += seen
                bar.advance()
                bar.update(loss=total_loss / (b + 1))
                emit({"type": "step", "epoch": epoch, "step": b + 1, "steps": steps_per_epoch, "loss": seen})
        val_probs = predict(model, data["val"], device)
        val = classification_metrics(val_probs, data["val"].targets.numpy(), classes)
        progress["seconds"] += time.perf_counter() - started
        record = {"epoch": epoch, "loss": total_loss / steps_per_epoch, "val_accuracy": val["accuracy"],
                  "val_macro_f1": val["macro_f1"], "val_nll": val["nll"], "lr": optimizer.param_groups[0]["lr"],
                  "seconds": progress["seconds"]}
        progress["history"].append(record)
        improved = val[metric_name] > progress["best"]
        if improved:
            progress.update(best=val[metric_name], best_epoch=epoch, bad_epochs=0)
            best_state = copy.deepcopy(checkpoint.trained_state(model))
        else:
            progress["bad_epochs"] += 1
        progress["epoch"] = epoch
        if ctx.is_main:  # every rank evaluated the same weights; one writes
            checkpoint.save(run.path / "checkpoints", model, best_state, optimizer, progress)
            atomic.write_jsonl(run.path / "history.jsonl", progress["history"])
        say(f"epoch {epoch:3d}  loss {record['loss']:.4f}  val {metric_name} {val[metric_name]:.4f}"
            + ("  *" if improved else ""))
        emit({"type": "epoch", **record})
        if ctx.agree(_early_stopped(progress, tcfg)):  # rank 0 decides
            say(f"early stop: no better val {metric_name} for {tcfg['patience']} epochs")
            break

    model.load_state_dict(best_state, strict=False)
    if not ctx.is_main:
        return run  # rank 0 writes the results; distributed.session holds every rank until it has
    return finish(run, model, data, classes, progress, device)


def finish(run, model, data: dict[str, SplitInputs], classes: list[str], progress: dict, device):
    """Evaluate the best weights on val and test, then write the run's result files."""
    atomic.save_tensors(run.path / "model.safetensors", checkpoint.trained_state(model))
    parameters, trainable = model.parameter_counts()
    metrics = {"best_epoch": progress["best_epoch"], "epochs": progress["epoch"],
               "train_seconds": progress["seconds"], "parameters": parameters, "trainable_parameters": trainable}
    for split in ("val", "test"):
        probs = predict(model, data[split], device)
        labels = data[split].targets.numpy()
        atomic.save_arrays(run.path / f"probs_{split}.safetensors",
                           {"probs": probs.astype(np.float32), "labels": labels.astype(np.int64)},
                           metadata={"ids": json.dumps([s.id for s in data[split].samples]),
                                     "classes": json.dumps(classes)})
        metrics[split] = classification_metrics(probs, labels, classes)
    run.record_digests("model.safetensors", "probs_val.safetensors", "probs_test.safetensors")
    atomic.write_json(run.path / "metrics.json", metrics)
    run.set_status("finished")
    return run


def _early_stopped(progress: dict, tcfg: dict) -> bool:
    """Early stopping's rule, on the state a checkpoint keeps (so a resumed run stops where it would have)."""
    return bool(tcfg["patience"]) and progress["bad_epochs"] >= tcfg["patience"]


def _check_resumable(run, options: Options) -> None:
    """Refuse what `train --resume` cannot continue exactly: ensembles, and members trained on resampled data."""
    spec = run.spec
    run.verify("spec.yaml")  # a spec edited since training would silently train something else
    if spec.get("kind") == "ensemble":
        raise TrainingError(f"{run.name} is an ensemble run; `mmzoo train --resume` continues model runs only",
                            hint=runs.resume_hint(run))
    if spec.get("teacher") is not None and options.loss_hook is None:
        raise TrainingError(f"{run.name} is a distilled run; resuming it without its teacher would silently train "
                            "on the hard labels alone", hint=f"resume it with `mmzoo train --resume {run.path}`, which asks its teacher again")
    if spec.get("resample") is not None and options.train_rows is None and options.sample_weights is None:
        raise TrainingError(f"{run.name} trained on resampled data ({spec['resample'].get('kind')}); resuming it "
                            "without that data would silently train on the whole split", hint=runs.resume_hint(run))


def _version() -> str:
    from mmzoo import __version__

    return __version__
