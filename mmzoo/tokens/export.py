"""Provides export_token_run: a token model or token ensemble -> one parity-checked ONNX graph.

The graph maps ``input_ids``, ``attention_mask`` (rows, T) and ``word_positions`` (rows, W) to
word probabilities ``probs`` (rows, W, L); an ensemble's members and its combiner (mean,
weighted or vote, with fitted weights) are one traced module. The metadata (key
``mmzoo.tokens``) says how to go from raw text to spans: the word-splitting pattern, the
tokenizer, which sub-token carries each word, the windows for long sentences, the labels and
the BIO decoding. Parity: the ONNX side, run through the torch-free runtime on every
validation sentence, must give the same entity F1 as the run's stored torch predictions.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

from mmzoo import atomic
from mmzoo.data import bio
from mmzoo.errors import ExportError
from mmzoo.onnx import metadata as md
from mmzoo.runs.folders import Run
from mmzoo.tokens.align import WORD_PATTERN
from mmzoo.zoo.token_schema import TASK

INPUTS = ("input_ids", "attention_mask", "word_positions")
MAX_ABS_DIFF = 1e-4


def load_tagger(run: Run):
    """A finished token model run's tagger, in eval mode, float32."""
    from mmzoo.tokens.model import create_tagger
    from mmzoo.train.checkpoint import load_trained_state

    tagger = create_tagger(run.spec["model"], run.spec["data"]["classes"])
    load_trained_state(tagger, run.path / "model.safetensors")
    return tagger.eval().float()


def _members(run: Run) -> tuple[list[Run], list[float], bool]:
    spec = run.spec
    if spec.get("kind") != "ensemble":
        return [run], [1.0], False
    members = [Run(Path(m["path"])) for m in spec["members"]]
    missing = [str(m.path) for m in members if not (m.path / "model.safetensors").exists()]
    if missing:
        raise ExportError(f"{run.name}: member run(s) {', '.join(missing)} are missing",
                          hint="restore the member run folders, or rebuild the ensemble")
    return members, [float(m["weight"]) for m in spec["members"]], spec["combiner"]["name"] == "vote"


def _shared_tokenizer(taggers, names) -> dict:
    configs = [t.text_encoder.preprocessor.config for t in taggers]
    keys = ("tokenizer_json", "max_length", "pad_id")
    for name, cfg in zip(names[1:], configs[1:], strict=True):
        if any(cfg[k] != configs[0][k] for k in keys):
            raise ExportError(f"member {name} uses another tokenizer or max_length than {names[0]}; one graph takes "
                              "one set of sub-token inputs",
                              hint="ensemble members with different tokenizers combine with `mmzoo ensemble --runs` "
                                   "(word-level), but export as one graph only members sharing a tokenizer")
    return {k: configs[0][k] for k in keys}


def _shared_image(taggers, names) -> dict | None:
    """The image preprocessing every image-reading member shares (None when no member reads images)."""
    readers = [(name, t.image_encoder.preprocessor.config) for name, t in zip(names, taggers, strict=True)
               if t.reads_images]
    for name, cfg in readers[1:]:
        if cfg != readers[0][1]:
            raise ExportError(f"member {name} preprocesses images otherwise than {readers[0][0]}; one graph takes "
                              "one pixel_values input",
                              hint="export members whose image encoders share image_size and normalisation, or "
                                   "combine them at the word level with `mmzoo ensemble --runs`")
    return readers[0][1] if readers else None


def export_token_run(run: Run, out_dir: str | Path, opset: int | None = 17, precision: str = "fp32",
                     say: Callable[[str], None] = lambda msg: None) -> dict:
    """Export ``run`` into ``out_dir``; returns {"path", "parity", ...}. Nothing is left behind on failure."""
    opset = 17 if opset is None else opset  # `mmzoo export` passes None when --opset is not given
    from mmzoo.onnx.graphs import _trace
    from mmzoo.tokens.align import WordAligner
    from mmzoo.tokens.model import WordProbs

    if precision != "fp32":
        raise ExportError(f"token runs export in fp32 only (asked for {precision})",
                          hint="leave out --quantize and --fp16 for token (NER) runs")
    started = time.perf_counter()
    members, weights, vote = _members(run)
    taggers = [load_tagger(m) for m in members]
    tokenizer = _shared_tokenizer(taggers, [m.name for m in members])
    image = _shared_image(taggers, [m.name for m in members])
    labels = run.spec["data"]["classes"]
    module = WordProbs(taggers, weights, vote).eval()
    aligner = WordAligner(tokenizer["tokenizer_json"], tokenizer["max_length"], tokenizer["pad_id"])
    from mmzoo.tokens.align import collate

    example = collate(aligner.rows([["mmzoo", "exports", "taggers"], ["in", "one", "graph"]]), aligner.pad_id)
    axes = {"input_ids": {0: "rows", 1: "sequence"}, "attention_mask": {0: "rows", 1: "sequence"},
            "word_positions": {0: "rows", 1: "words"}, "probs": {0: "rows", 1: "words"}}
    inputs = INPUTS
    if image is not None:  # one row with a picture, one without: both paths of the "no image" blend are traced
        from mmzoo.tokens.images import INPUTS as IMAGE_INPUTS
        from mmzoo.tokens.images import SentenceImages

        size = image["crop"]
        example.update(SentenceImages(image).batch([None, None]))
        example["pixel_values"][0] = np.random.default_rng(0).standard_normal((3, size, size))
        example["has_image"][0] = 1.0
        inputs = INPUTS + IMAGE_INPUTS
        axes.update(pixel_values={0: "rows"}, has_image={0: "rows"})
    model = _trace(module, tuple(torch.from_numpy(example[k]) for k in inputs), list(inputs), axes, opset,
                   f"token {run.spec.get('kind', 'model')} {run.name}")
    meta = describe(run, members, tokenizer, labels, weights, vote, opset, aligner, image)
    from mmzoo.tokens.ensemble import decoding_of

    meta["tokens"]["decoder"], meta["tokens"]["outside_scale"] = decoding_of(run)
    out_dir = Path(out_dir).absolute()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".mmzoo-export-", dir=out_dir))
    except OSError as exc:
        raise ExportError(f"cannot write to {out_dir}: {exc.strerror}", hint="pass a writable -o DIR") from None
    try:
        staged = work / "fp32.onnx"
        md.set_props(model, {**meta, "parity": {}})
        onnx.save(model, str(staged))
        figures = parity(staged, run, labels)
        say(f"parity on {figures['sentences']} val sentences: entity F1 onnx {figures['onnx_f1']:.4f} vs torch "
            f"{figures['torch_f1']:.4f}, max |diff| {figures['max_abs_diff']:.1e}")
        if figures["onnx_f1"] != figures["torch_f1"] or figures["max_abs_diff"] > MAX_ABS_DIFF:
            raise ExportError(f"{run.name}: the ONNX graph disagrees with torch on val (entity F1 "
                              f"{figures['onnx_f1']:.6f} vs {figures['torch_f1']:.6f}, max |diff| "
                              f"{figures['max_abs_diff']:.2e})", hint="try another --opset")
        md.set_props(model, {**meta, "parity": {"fp32": figures}})
        onnx.checker.check_model(model)
        final = out_dir / f"{run.model}.onnx"
        with atomic.atomic_path(final) as target:
            onnx.save(model, str(target))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"path": str(final.resolve()), "run": run.name, "kind": run.spec.get("kind", "model"), "task": TASK,
            "precision": "fp32", "opset": opset, "members": [m.name for m in members], "inputs": list(inputs),
            "parity": {"fp32": figures}, "bytes": final.stat().st_size, "seconds": time.perf_counter() - started,
            "reads_images": image is not None}


def describe(run, members, tokenizer: dict, labels, weights, vote, opset, aligner, image: dict | None = None) -> dict:
    from mmzoo import __version__

    meta = {
        "format_version": md.FORMAT_VERSION, "version": __version__, "task": TASK,
        "kind": run.spec.get("kind", "model"), "precision": "fp32", "opset": opset, "run": run.name,
        "labels": labels,
        "inputs": [{"name": "input_ids", "type": "int64", "shape": ["rows", "sequence"]},
                   {"name": "attention_mask", "type": "int64", "shape": ["rows", "sequence"]},
                   {"name": "word_positions", "type": "int64", "shape": ["rows", "words"],
                    "description": "index in input_ids of the first sub-token of each word the row owns"}],
        "outputs": [{"name": "probs", "type": "float32", "shape": ["rows", "words", len(labels)],
                     "description": "word tag probabilities; column j is mmzoo.labels[j]"}],
        "preprocessing": [{"id": "tokens", "modality": "text", "kind": "tokens", "inputs": {k: k for k in INPUTS},
                           "config": {"kind": "tokens", **tokenizer}}],
        "tokens": {
            "scheme": "BIO", "outside": bio.OUTSIDE, "types": bio.types_of(labels),
            "word_split": {"kind": "regex", "pattern": WORD_PATTERN, "flags": "unicode",
                           "note": "each match is a word; its character offsets give the entity spans"},
            "tokenizer": "tokenizer_json in mmzoo.preprocessing; words are encoded together with "
                         "is_pretokenized=true and without special tokens, then each row is "
                         f"prefix_ids + sub-tokens + suffix_ids (prefix {aligner.prefix}, suffix {aligner.suffix})",
            "prefix_ids": aligner.prefix, "suffix_ids": aligner.suffix, "max_length": aligner.max_length,
            "word_piece": "first: a word's prediction is read at its first sub-token",
            "windows": "a sentence over max_length sub-tokens is cut into overlapping windows of whole words, "
                       "the next starting about half a window before the previous one ends; each word is owned "
                       "by the window where it sits farthest from a cut (mmzoo.tokens.align._window_spans)",
            "empty_words": "a word with no sub-token is tagged O with probability 1",
            "decoding": "multiply each word's P(O) by outside_scale (chosen on val), then by `decoder` (chosen "
                        "on val): 'viterbi' takes the tag sequence with the highest product of word "
                        "probabilities among valid BIO sequences (I-X only after B-X or I-X, never first); "
                        "'argmax' takes each word's best tag, then an I-X that continues no X entity becomes "
                        "B-X. Entities are maximal B-X I-X* runs; score = mean (unscaled) probability of the "
                        "chosen tags (mmzoo.data.bio.decode)",
        },
        "members": [{"index": k, "run": m.name, "weight": w} for k, (m, w) in enumerate(zip(members, weights,
                                                                                              strict=True))],
        "combiner": run.spec["combiner"]["name"] if run.spec.get("kind") == "ensemble" else "",
        "spec": run.spec if run.spec.get("kind") != "ensemble" else {"ensemble": run.spec["ensemble"],
                                                                      "combiner": run.spec["combiner"]},
    }
    if image is not None:
        size = image["crop"]
        meta["inputs"] += [
            {"name": "pixel_values", "type": "float32", "shape": ["rows", 3, size, size],
             "description": "each row's sentence picture, preprocessed as mmzoo.preprocessing[1] says; zeros "
                            "when the sentence has none"},
            {"name": "has_image", "type": "float32", "shape": ["rows"],
             "description": "1 when the row's sentence has a picture, 0 when not (the tagger's learned "
                            "no-image embedding then replaces the image features)"}]
        meta["preprocessing"].append({"id": "image", "modality": "image", "kind": "image",
                                      "inputs": {"pixel_values": "pixel_values", "has_image": "has_image"},
                                      "config": image})
        meta["tokens"]["image"] = ("every row (window) of a sentence gets the sentence's picture; a sentence "
                                   "without one gets zero pixels and has_image 0")
    return meta


def parity(path: Path, run: Run, labels: list[str]) -> dict:
    """ONNX (through the torch-free runtime) vs the run's stored torch word probabilities on val."""
    from mmzoo.tokens.ensemble import decoding_of, f1_of, word_probs
    from mmzoo.tokens.runtime import TokenPredictor
    from mmzoo.train.factory import open_dataset

    torch_probs, gold, lengths, ids = word_probs(run, "val")
    decoder, scale = decoding_of(run)
    dataset = open_dataset(run.spec["data"]["source"] if Path(run.spec["data"]["source"]).is_dir()
                           else run.spec["data"]["dataset"])
    by_id = {s.id: s for s in dataset.split("val")}
    sentences = [by_id[i].tokens for i in ids]
    predictor = TokenPredictor(path, device="cpu")
    images = [by_id[i].image for i in ids] if predictor.reads_images else None
    onnx_probs = np.concatenate(predictor.word_probs(sentences, images))
    return {"sentences": len(sentences), "words": int(len(gold)),
            "max_abs_diff": float(np.abs(onnx_probs - torch_probs).max()) if len(gold) else 0.0,
            "argmax_agreement": float((onnx_probs.argmax(-1) == torch_probs.argmax(-1)).mean()) if len(gold) else 1.0,
            "onnx_f1": f1_of(onnx_probs, gold, lengths, labels, scale, decoder)["f1"],
            "torch_f1": f1_of(torch_probs, gold, lengths, labels, scale, decoder)["f1"]}
