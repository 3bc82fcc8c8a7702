"""Provides train_tokens(): one token tagger from a resolved spec to a finished run folder.

Reads top to bottom like mmzoo.train.trainer: data and windows, model and optimiser (a lower peak
learning rate for the pretrained encoder than for the new head), maybe resume, then epochs of
length-bucketed, dynamically padded batches under bf16 autocast where the CPU is fast at it,
each followed by entity F1 on validation, a checkpoint and early stopping; finally the best
weights are scored on val and test and their word probabilities are stored for ensembles.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from mmzoo import atomic
from mmzoo.data import bio
from mmzoo.errors import TrainingError
from mmzoo.runs import folders as runs
from mmzoo.tokens.align import IGNORE, WordAligner, collate, scatter
from mmzoo.tokens.image_cache import image_inputs
from mmzoo.tokens.metrics import entity_metrics
from mmzoo.train import checkpoint
from mmzoo.train.progress import progress_bar
from mmzoo.zoo.token_schema import TASK


def is_token_spec(spec: dict | None) -> bool:
    return bool(spec) and spec.get("task", {}).get("type") == TASK


def is_token_run(spec: dict | None, options) -> bool:
    """Whether train() is asked for a token model (a new spec, or a token run to resume)."""
    if options.resume:
        return is_token_spec(runs.find_run(options.resume, options.out).spec.get("model"))
    return is_token_spec(spec)


def aligner_for(model) -> WordAligner:
    prep = model.text_encoder.preprocessor
    return WordAligner(prep.tokenizer_json, prep.max_length, prep.pad_id)


def batches(rows: list, batch_size: int, rng: np.random.Generator | None) -> list[list[int]]:
    """Length-bucketed batches: rows sorted by length (with a little noise when shuffling), batch order shuffled."""
    lengths = np.array([len(r.ids) for r in rows], np.float64)
    if rng is not None:
        lengths = lengths + rng.uniform(0, 4, len(rows))  # neighbours of similar length mix between epochs
    order = np.argsort(lengths, kind="stable")
    out = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(out)
    return out


def _tensors(rows, pad_id: int, device, images=None, sentences: list | None = None) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(v).to(device) for k, v in collate(rows, pad_id).items()}
    if images is not None:  # each row (window) reads its sentence's picture (mmzoo.tokens.image_cache)
        out.update(images.batch([sentences[r.sentence].image for r in rows]))
    return out


@torch.no_grad()
def predict_words(model, aligner: WordAligner, sentences: list, device, batch_size: int = 64,
                  images=None) -> list[np.ndarray]:
    """Word probabilities (words, L) per sentence, in float32 without autocast (``images``: image_inputs')."""
    model.eval()
    images = images if images is not None else image_inputs(model, device)
    rows = aligner.rows([s.tokens for s in sentences])
    row_probs: list = [None] * len(rows)
    for idx in batches(rows, batch_size, None):
        t = _tensors([rows[i] for i in idx], aligner.pad_id, device, images, sentences)
        probs = model.probs_at(t).cpu().numpy()
        for k, i in enumerate(idx):
            row_probs[i] = probs[k]
    return scatter(rows, row_probs, [len(s.tokens) for s in sentences], model.num_classes)


def score(probs: list[np.ndarray], sentences: list, labels: list[str], outside_scale: float = 1.0,
          decoder: str = "viterbi") -> dict:
    return entity_metrics([s.tags for s in sentences],
                          [bio.decode(p, labels, outside_scale, decoder) for p in probs])


def train_tokens(spec: dict | None, options):
    """Train one token tagger (``options`` is a :class:`mmzoo.train.trainer.Options`); returns the finished Run."""
    from mmzoo.tokens.model import create_tagger, freeze_word_embeddings
    from mmzoo.train import optim
    from mmzoo.train import trainer as loop
    from mmzoo.train.factory import open_dataset

    say = (lambda msg: None) if options.quiet else (lambda msg: print(msg, file=sys.stderr))
    emit = options.on_event or (lambda event: None)
    ckpt = None
    if options.resume:
        run = runs.find_run(options.resume, options.out)
        if run.finished:
            raise TrainingError(f"{run.name} already finished; nothing to resume")
        spec = run.spec["model"]
        ckpt = checkpoint.latest(run.path / "checkpoints")
    else:
        run = runs.new_run(options.run_name or spec["name"], options.out)
    if options.sample_weights is not None or options.train_rows is not None:
        raise TrainingError("boosting and bagging recipes are not supported for token models",
                            hint="use a members or seeds ensemble of token models")
    tcfg = spec["train"]
    loop.seed_everything(tcfg["seed"])
    device = loop.pick_device(options.device)
    dataset = open_dataset(spec["task"]["dataset"])
    if getattr(dataset, "task", "classification") != TASK:
        raise TrainingError(f"dataset {dataset.name!r} has one label per sample, but model {spec['name']!r} is a "
                            "token tagger (task.type: tokens)", hint="use a token dataset such as wnut17")
    labels = dataset.labels
    if spec.get("image") and not getattr(dataset, "has_images", False):
        raise TrainingError(f"model {spec['name']!r} conditions its tags on an image, but no sentence of dataset "
                            f"{dataset.name!r} has one", hint="add `image` paths to the manifest rows, or remove "
                            "the model's 'image' and 'fusion'")
    model = create_tagger(spec, labels).to(device)
    if tcfg.get("freeze_embeddings"):
        freeze_word_embeddings(model.text_encoder)
    images = image_inputs(model, device)  # a frozen image encoder's features are computed once
    aligner = aligner_for(model)
    splits = {s: dataset.split(s) for s in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise TrainingError(f"dataset {dataset.name!r} needs train and val sentences")
    full_spec = {"model": spec, "data": {"dataset": dataset.name, "source": dataset.source, "label_set": "tags",
                                         "fingerprint": dataset.fingerprint, "classes": labels, "task": TASK},
                 "device": str(device), "mmzoo_version": _version(), **options.extra_spec}
    if not options.resume:
        atomic.write_yaml(run.path / "spec.yaml", full_spec)
    run.set_status("running")
    emit({"type": "start", "run": run.name, "path": str(run.path)})

    index = {label: i for i, label in enumerate(labels)}
    train_rows = aligner.rows([s.tokens for s in splits["train"]])
    targets = [w.token_labels([index[t] for t in splits["train"][w.sentence].tags]) for w in train_rows]
    # Two parameter groups: the encoders (text, and image when there is one) move slower than the freshly
    # initialised head and fusion.
    encoders = ("text_encoder.", "image_encoder.")
    encoder_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(encoders)]
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(encoders)]
    encoder_lr = tcfg["encoder_lr"] if tcfg["encoder_lr"] is not None else tcfg["lr"]
    groups = [{"params": head_params, "peak": tcfg["lr"]}]
    if encoder_params:
        groups.append({"params": encoder_params, "peak": encoder_lr})
    optimizer = optim.adamw(groups, tcfg["lr"], tcfg["weight_decay"])
    steps_per_epoch = math.ceil(len(train_rows) / tcfg["batch_size"])
    total_steps = steps_per_epoch * tcfg["epochs"]
    progress = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0,
                "history": []}
    best_state = copy.deepcopy(checkpoint.trained_state(model))
    if ckpt is not None:
        progress, best_state = checkpoint.restore(ckpt, model, optimizer)
        say(f"mmzoo: resuming {run.name} after epoch {progress['epoch']}")
    amp = loop.autocast_dtype(tcfg["precision"], device)
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    metric = tcfg["metric"]
    for epoch in range(progress["epoch"] + 1, tcfg["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        plan = batches(train_rows, tcfg["batch_size"], np.random.default_rng(tcfg["seed"] * 100_003 + epoch))
        total_loss = 0.0
        with progress_bar(f"epoch {epoch}/{tcfg['epochs']}", len(plan), "loss {task.fields[loss]:.4f}",
                          enabled=not options.quiet, plain=False) as bar:
            for b, idx in enumerate(plan):
                if options.should_stop and options.should_stop():
                    run.set_status("cancelled", epoch=progress["epoch"])
                    raise loop.Cancelled(f"cancelled during epoch {epoch}; {run.name} keeps the checkpoint of "
                                    f"epoch {progress['epoch']}", hint=f"resume with `mmzoo train --resume {run.path}`")
                for group in optimizer.param_groups:
                    group["lr"] = optim.lr_at(progress["step"], total_steps, group["peak"], tcfg["warmup"])
                t = _tensors([train_rows[i] for i in idx], aligner.pad_id, device, images, splits["train"])
                width = t["input_ids"].shape[1]
                y = torch.full((len(idx), width), IGNORE, dtype=torch.int64)
                for k, i in enumerate(idx):
                    y[k, :len(targets[i])] = torch.tensor(targets[i])
                with autocast:
                    logits = model(t)["logits"]  # (B, T, L)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), ignore_index=IGNORE)
                seen = loss.item()
                if not math.isfinite(seen):
                    run.set_status("failed", error="non-finite loss")
                    raise TrainingError(f"loss became {seen} at epoch {epoch}, step {b + 1} of {run.name}",
                                        hint="lower lr/encoder_lr, or set precision: fp32")
                optim.optimizer_step(optimizer, loss, model.trainable_parameters(), tcfg["grad_clip"])
                progress["step"] += 1
                total_loss += seen
                bar.advance()
                bar.update(loss=total_loss / (b + 1))
                emit({"type": "step", "epoch": epoch, "step": b + 1, "steps": len(plan), "loss": seen})
        train_seconds = time.perf_counter() - started
        val = score(predict_words(model, aligner, splits["val"], device, images=images), splits["val"], labels)
        progress["seconds"] += time.perf_counter() - started
        value = val["f1"] if metric == "entity_f1" else val["token_accuracy"]
        record = {"epoch": epoch, "loss": total_loss / len(plan), "val_entity_f1": val["f1"],
                  "val_token_accuracy": val["token_accuracy"], "lr": optimizer.param_groups[0]["lr"],
                  "epoch_train_seconds": train_seconds, "seconds": progress["seconds"]}
        progress["history"].append(record)
        improved = value > progress["best"]
        if improved:
            progress.update(best=value, best_epoch=epoch, bad_epochs=0)
            best_state = copy.deepcopy(checkpoint.trained_state(model))
        else:
            progress["bad_epochs"] += 1
        progress["epoch"] = epoch
        checkpoint.save(run.path / "checkpoints", model, best_state, optimizer, progress)
        atomic.write_jsonl(run.path / "history.jsonl", progress["history"])
        say(f"epoch {epoch:3d}  loss {record['loss']:.4f}  val entity F1 {val['f1']:.4f}  "
            f"({train_seconds:.1f}s training)" + ("  *" if improved else ""))
        emit({"type": "epoch", **record})
        if tcfg["patience"] and progress["bad_epochs"] >= tcfg["patience"]:
            say(f"early stop: no better val {metric} for {tcfg['patience']} epochs")
            break
    model.load_state_dict(best_state, strict=False)
    return finish(run, model, aligner, splits, labels, progress, device, images)


def finish(run, model, aligner, splits: dict, labels: list[str], progress: dict, device, images=None):
    """Score the best weights on val and test; store word probabilities for ensembles and export parity."""
    atomic.save_tensors(run.path / "model.safetensors", checkpoint.trained_state(model))
    history = progress["history"]
    metrics = {"task": TASK, "best_epoch": progress["best_epoch"], "epochs": progress["epoch"],
               "train_seconds": progress["seconds"],
               "epoch_train_seconds": [h["epoch_train_seconds"] for h in history],
               "parameters": sum(p.numel() for p in model.parameters()),
               "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    probs = {split: predict_words(model, aligner, splits[split], device, images=images) for split in ("val", "test")}
    # The decoder and its P(O) multiplier are chosen on val, like the epoch; test only reports.
    decoder, scale = bio.choose_decoding(lambda d, s: score(probs["val"], splits["val"], labels, s, d)["f1"])
    metrics.update(decoder=decoder, outside_scale=scale)
    for split in ("val", "test"):
        if splits[split]:
            save_word_probs(run, split, probs[split], splits[split], labels)
            metrics[split] = score(probs[split], splits[split], labels, scale, decoder)
    atomic.write_json(run.path / "metrics.json", metrics)
    run.set_status("finished")
    return run


def save_word_probs(run, split: str, probs: list[np.ndarray], sentences: list, labels: list[str]) -> None:
    """probs_<split>.safetensors: word probabilities (total words, L), gold label ids and sentence lengths."""
    index = {label: i for i, label in enumerate(labels)}
    flat = np.concatenate(probs) if probs else np.zeros((0, len(labels)), np.float32)
    gold = np.array([index[t] for s in sentences for t in s.tags], np.int64)
    atomic.save_arrays(run.path / f"probs_{split}.safetensors",
                       {"probs": flat.astype(np.float32), "labels": gold,
                        "lengths": np.array([len(s.tokens) for s in sentences], np.int64)},
                       metadata={"ids": json.dumps([s.id for s in sentences]), "classes": json.dumps(labels)})


def _version() -> str:
    from mmzoo import __version__

    return __version__
