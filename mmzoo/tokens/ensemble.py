"""Provides token ensembles: members' word probabilities combined per word, then decoded to valid BIO.

The decoder (constrained Viterbi or argmax plus repair) and its P(O) multiplier are chosen on val
for the combined probabilities, so an ensemble never emits an invalid BIO sequence.

Members are aligned at the WORD level (each run stores one probability row per word of each
sentence), so members with different tokenizers or window sizes combine. Combiners:

- ``mean``: the average of the members' word distributions;
- ``weighted``: a weighted average, the weights chosen by coordinate ascent on validation entity F1;
- ``vote``: each member's argmax tag counts once; ties go to the higher mean probability.

``stacking``, ``greedy``, ``moe`` and ``samme`` are refused: they learn from one label per
sample (or sample weights of a boosting recipe), which a sentence of tags does not have.
"""

from __future__ import annotations

import json

import numpy as np

from mmzoo import atomic
from mmzoo.data import bio
from mmzoo.errors import RegistryError, RunError
from mmzoo.runs.folders import Run, new_run
from mmzoo.tokens.metrics import entity_metrics
from mmzoo.zoo.token_schema import COMBINERS, TASK

SPLITS = ("val", "test")


def check_combiner(name: str) -> None:
    if name not in COMBINERS:
        raise RegistryError(f"combiner {name!r} does not apply to token runs (NER): it learns from one label per "
                            "sample, and a token ensemble combines a distribution per word",
                            hint=f"use one of: {', '.join(COMBINERS)}")


def word_probs(run: Run, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(probs (words, L), gold label ids (words,), sentence lengths, sentence ids) of a token run."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    file = run.path / f"probs_{split}.safetensors"
    if not file.exists():
        raise RunError(f"{run.name} has no {split} predictions ({file.name} missing); is the run finished?")
    arrays = load_file(str(file))
    with safe_open(str(file), "np") as fh:
        ids = json.loads((fh.metadata() or {}).get("ids", "[]"))
    if "lengths" not in arrays:
        raise RunError(f"{run.name} is not a token run (its {file.name} holds no sentence lengths)")
    return arrays["probs"], arrays["labels"], arrays["lengths"], ids


def combine(member: np.ndarray, weights: np.ndarray, vote: bool) -> np.ndarray:
    """(words, M, L) -> (words, L); the arithmetic of :func:`mmzoo.tokens.model.combine_torch`."""
    if vote:
        hard = np.eye(member.shape[-1], dtype=np.float32)[member.argmax(-1)]  # (words, M, L)
        return (hard * weights[None, :, None]).sum(1) * 0.999 + 0.001 * member.mean(1)
    return (member * weights[None, :, None]).sum(1)


def split_sentences(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def f1_of(flat_probs: np.ndarray, gold: np.ndarray, lengths: np.ndarray, labels: list[str],
          outside_scale: float = 1.0, decoder: str = "viterbi") -> dict:
    true = [[labels[i] for i in s] for s in split_sentences(gold, lengths)]
    pred = [bio.decode(p, labels, outside_scale, decoder) for p in split_sentences(flat_probs, lengths)]
    return entity_metrics(true, pred)


def decoding_of(run: Run) -> tuple[str, float]:
    """How a finished token run decodes: (decoder, P(O) multiplier); runs from before the choice used argmax."""
    return run.metrics.get("decoder", bio.LEGACY_DECODER), float(run.metrics.get("outside_scale", 1.0))


def choose_decoding(flat_probs: np.ndarray, gold, lengths, labels: list[str]) -> tuple[str, float]:
    """The (decoder, P(O) multiplier) with the best VALIDATION entity F1 (see :func:`mmzoo.data.bio.choose_decoding`)."""
    return bio.choose_decoding(lambda d, s: f1_of(flat_probs, gold, lengths, labels, s, d)["f1"])


def fit_weights(member: np.ndarray, gold, lengths, labels, rounds: int = 2) -> np.ndarray:
    """Member weights by coordinate ascent on validation entity F1, starting from uniform."""
    m = member.shape[1]
    weights = np.full(m, 1.0 / m)
    best = f1_of(combine(member, weights, False), gold, lengths, labels)["f1"]
    for _ in range(rounds):
        for i in range(m):
            for factor in (0.0, 0.5, 2.0, 4.0):
                trial = weights.copy()
                trial[i] *= factor
                if trial.sum() <= 0:
                    continue
                trial /= trial.sum()
                score = f1_of(combine(member, trial, False), gold, lengths, labels)["f1"]
                if score > best + 1e-9:
                    best, weights = score, trial
    return weights


def build_token_ensemble(spec: dict, runs: list[Run], *, root=None, notes: list[str] | None = None) -> Run:
    """Combine finished token runs (fitted on val only), score val and test, write the ensemble run folder."""
    from mmzoo.ensemble.build import check_members

    name = spec["combiner"]["name"]
    check_combiner(name)
    data = check_members(runs)
    labels = data["classes"]
    stacked, gold, lengths = {}, {}, {}
    for split in SPLITS:
        first = word_probs(runs[0], split)
        columns = [first[0]]
        for run in runs[1:]:
            other = word_probs(run, split)
            if other[3] != first[3] or not np.array_equal(other[2], first[2]):
                raise RunError(f"runs {runs[0].name} and {run.name} predicted different {split} sentences",
                               hint="the dataset changed between them; retrain one of them")
            columns.append(other[0])
        stacked[split], gold[split], lengths[split] = np.stack(columns, axis=1), first[1], first[2]  # (words, M, L)
    m = len(runs)
    weights = np.full(m, 1.0 / m)
    if name == "weighted":
        weights = fit_weights(stacked["val"], gold["val"], lengths["val"], labels)
    vote = name == "vote"
    metrics: dict = {"task": TASK, "combiner": name, "weights": weights.tolist(),
                     "val_note": "in-sample: the weights were chosen on val" if name == "weighted" else
                     "not fitted on val"}
    combined = {split: combine(stacked[split], weights, vote) for split in SPLITS}
    decoder, scale = choose_decoding(combined["val"], gold["val"], lengths["val"], labels)
    metrics.update(decoder=decoder, outside_scale=scale)
    for split in SPLITS:
        metrics[split] = f1_of(combined[split], gold[split], lengths[split], labels, scale, decoder)
    members = {}
    for k, run in enumerate(runs):
        own_decoder, own_scale = decoding_of(run)  # each member decoded as its own run is
        members[run.name] = {f"{split}_f1": f1_of(stacked[split][:, k], gold[split], lengths[split], labels,
                                                  own_scale, own_decoder)["f1"] for split in SPLITS}
    best = max(members, key=lambda n: (members[n]["val_f1"], -list(members).index(n)))  # chosen on val
    metrics.update(members=members, best_member=best,
                   beat_best_member=metrics["test"]["f1"] >= members[best]["test_f1"],
                   train_seconds=sum(r.metrics.get("train_seconds", 0.0) for r in runs))
    run = new_run(spec["name"], root)
    run.set_status("running")
    notes = list(notes or [""] * m)
    entries = [{"name": r.name, "path": str(r.path.resolve()), "weight": float(w),
                **({"weight_note": note} if note else {})} for r, w, note in zip(runs, weights, notes, strict=True)]
    combiner = {**spec["combiner"], "weights": weights.tolist(), "decoder": decoder, "outside_scale": scale}
    from mmzoo.train.trainer import _version

    atomic.write_yaml(run.path / "spec.yaml", {"kind": "ensemble", "ensemble": spec, "members": entries,
                                               "combiner": combiner, "data": data, "mmzoo_version": _version()})
    for split in SPLITS:
        _, _, _, ids = word_probs(runs[0], split)
        atomic.save_arrays(run.path / f"probs_{split}.safetensors",
                           {"probs": combined[split].astype(np.float32), "labels": gold[split],
                            "lengths": lengths[split]},
                           metadata={"ids": json.dumps(ids), "classes": json.dumps(labels)})
    atomic.write_json(run.path / "metrics.json", metrics)
    run.set_status("finished")
    return run

