"""Provides the per-kind contract checks: check_encoder, check_fusion, check_combiner, check_dataset, check_params."""

from __future__ import annotations

import copy
import inspect
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmzoo.combiners.base import Combiner
from mmzoo.data import SPLITS, Dataset
from mmzoo.data.preprocess import ImagePreprocessor, from_config
from mmzoo.encoders.base import Encoder, Features
from mmzoo.errors import MmzooError, PluginError, TrainingError
from mmzoo.fusions.base import Fusion, mlp_head
from mmzoo.testing.common import (
    ATOL,
    check_fusion_batches_and_export,
    check_train_batches,
    close,
    fail,
    gradients,
    images,
    onnx_round_trip,
    random_features,
    registered,
)
from mmzoo.zoo.parts import Part

# Arguments mmzoo passes positionally before a part's declared params, per kind.
LEADING = {"encoder": 0, "fusion": 4, "combiner": 2, "dataset": 0}
TEXTS = ("a handwritten seven", "red apple", "7")


def check_params(part: Part) -> None:
    """Every declared param is accepted by the factory, every argument it requires is declared, defaults pass."""
    what = f"{part.kind} {part.name!r}"
    factory = part.load()
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to compare
    accepted = list(signature.parameters.values())[LEADING[part.kind]:]
    named = {p.name: p for p in accepted if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted)
    for param in part.params:
        if param.name not in named and not takes_any:
            fail(what, f"declares param {param.name!r}, but {part.factory} does not accept it")
        if not param.required and param.check(param.default) is not None:
            fail(what, f"param {param.name!r} default {param.default!r} {param.check(param.default)}")
    for name, p in named.items():
        if p.default is p.empty and part.param(name) is None:
            fail(what, f"{part.factory} requires {name!r}, which is not declared, so registry.yaml cannot set it")


def _build(kind: str, target: Any, args: tuple, params: dict) -> tuple[Any, str, Part | None]:
    if not isinstance(target, str):
        if params:
            raise PluginError(f"params {sorted(params)} only apply when the {kind} is given by name")
        return target, f"{kind} {getattr(target, 'name', '') or type(target).__name__!r}", None
    part = registered(kind, target)
    check_params(part)
    return part.create(*args, **params), f"{kind} {target!r}", part


class _EncoderGraph(nn.Module):
    def __init__(self, encoder: Encoder, fields: list[str]):
        super().__init__()
        self.encoder, self.fields = encoder, fields

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.encoder(dict(zip(self.fields, tensors, strict=True)))
        return out.pooled, out.tokens


def check_encoder(encoder: str | Encoder, /, *, export_onnx: bool = True, **params: Any) -> Encoder:
    """Check an encoder (a registered name built with ``params``, or an instance); returns it."""
    encoder, what, part = _build("encoder", encoder, (), params)
    if not isinstance(encoder, Encoder):
        fail(what, f"must be a mmzoo.encoders.base.Encoder subclass, got {type(encoder).__name__}")
    if encoder.modality not in ("text", "image") or (part and part.modality != encoder.modality):
        fail(what, f"modality {encoder.modality!r} must be 'text' or 'image' and match its registration")
    if isinstance(encoder.output_dim, bool) or not isinstance(encoder.output_dim, int) or encoder.output_dim < 1:
        fail(what, f"output_dim must be a positive int set in __init__, got {encoder.output_dim!r}")
    prep = encoder.preprocessor
    if prep is None or prep.config.get("kind") != encoder.modality:
        fail(what, "needs a mmzoo.data.preprocess preprocessor of its own modality in self.preprocessor")
    items = list(TEXTS) if encoder.modality == "text" else images(3)
    rebuilt = from_config(json.loads(json.dumps(prep.config)))  # what an ONNX sidecar replays
    for key, value in prep(items).items():
        if not np.array_equal(value, rebuilt(items)[key]):
            fail(what, f"its preprocessor, rebuilt from its JSON config, gives different {key}")
    feed = {k: torch.from_numpy(v) for k, v in prep(items).items()}
    torch.manual_seed(0)
    encoder.eval()
    with torch.no_grad():
        out = encoder(feed)
        if not isinstance(out, Features):
            fail(what, f"forward must return mmzoo.encoders.base.Features, got {type(out).__name__}")
        alone = [encoder({k: torch.from_numpy(v) for k, v in prep([item]).items()}).pooled[0] for item in items]
    b, d = len(items), encoder.output_dim
    if out.pooled.shape != (b, d) or out.tokens.ndim != 3 or out.tokens.shape[::2] != (b, d):
        fail(what, f"pooled must be (B, {d}) and tokens (B, N, {d}); got {tuple(out.pooled.shape)} "
                   f"and {tuple(out.tokens.shape)} for B={b}")
    if out.mask.dtype != torch.bool or out.mask.shape != out.tokens.shape[:2] or not bool(out.mask.any(dim=1).all()):
        fail(what, "mask must be bool (B, N), True on real tokens, with at least one per sample")
    if not (torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()):
        fail(what, "produced NaN or infinite features")
    for row, pooled in enumerate(alone):  # padding and batch-mates must not leak into a sample's features
        close(what, f"pooled features of sample {row} alone and inside a padded batch", pooled, out.pooled[row])
    encoder.train()
    out = encoder(feed)
    (out.pooled.sum() + (out.tokens * out.mask.unsqueeze(-1)).sum()).backward()
    gradients(what, encoder)
    encoder.zero_grad(set_to_none=True)
    one = {k: torch.from_numpy(v) for k, v in prep(items[-1:]).items()}
    check_train_batches(what, encoder, (feed,), (one,), lambda out: out.pooled)
    encoder.eval()
    if export_onnx:
        fields = list(feed)
        axes = {n: ({0: "batch", 1: "sequence"} if n != "pixel_values" else {0: "batch"}) for n in fields}
        other = prep(items[1:] if encoder.modality == "text" else images(2))
        onnx_round_trip(what, _EncoderGraph(encoder, fields).eval(), tuple(feed.values()), fields,
                        {**axes, "pooled": {0: "batch"}, "tokens": {0: "batch", 1: "tokens"}},
                        tuple(torch.from_numpy(other[n]) for n in fields), ["pooled", "tokens"])
    _check_freeze(what, copy.deepcopy(encoder), feed)
    _check_split(what, encoder, feed)
    return encoder


def _check_split(what: str, encoder: Encoder, feed: dict) -> None:
    """An encoder that offers train_last: prefix then suffix is its forward, and only the suffix trains."""
    blocks = encoder.trainable_blocks()
    if not blocks:
        return
    with torch.no_grad():
        whole = encoder(feed)
        for n in sorted({1, blocks}):
            split = encoder.forward_suffix(encoder.forward_prefix(feed, n), n)
            close(what, f"forward_suffix(forward_prefix(x, {n}), {n}) against forward(x)", split.pooled, whole.pooled)
    tuned = copy.deepcopy(encoder)
    tuned.freeze()
    tuned.unfreeze_last(1)
    suffix = {id(p) for m in tuned.suffix_modules(1) for p in m.parameters()}
    trainable = {id(p) for p in tuned.parameters() if p.requires_grad}
    if not suffix or trainable != suffix:
        fail(what, "unfreeze_last(1) must make exactly the parameters of suffix_modules(1) trainable")


def _check_freeze(what: str, encoder: Encoder, feed: dict) -> None:
    """After freeze(), a training step with weight decay must change no weight or buffer."""
    encoder.freeze()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    head = nn.Linear(encoder.output_dim, 2)
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=0.1, weight_decay=0.1)
    encoder.train()  # a frozen encoder stays in eval mode even so (BatchNorm statistics, dropout)
    head(encoder(feed).pooled).sum().backward()
    optimizer.step()
    if encoder.training:
        fail(what, "train() switched a frozen encoder to training mode; keep Encoder.train from the base class")
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        fail(what, f"freeze() left {changed[:3]} changing during training")


def check_fusion(fusion: str | Fusion, /, *, text_dim: int = 12, image_dim: int = 20, num_classes: int = 3,
                 export_onnx: bool = True, **params: Any) -> Fusion:
    """Check a fusion (a registered name built with these dims and ``params``, or an instance); returns it."""
    args = (text_dim, image_dim, num_classes, mlp_head(16, 0.0))
    fusion, what, part = _build("fusion", fusion, args, params)
    if not isinstance(fusion, Fusion):
        fail(what, f"must be a mmzoo.fusions.base.Fusion subclass, got {type(fusion).__name__}")
    c = fusion.num_classes
    text = random_features(4, 6, fusion.text_dim, 4, seed=1)  # the last 2 text tokens are padding
    image = random_features(4, 5, fusion.image_dim, 5, seed=2)
    torch.manual_seed(0)
    fusion.eval()
    with torch.no_grad():
        logits = fusion(text, image)
        alone = fusion(Features(*(t[:1] for t in text)), Features(*(t[:1] for t in image)))
        junk = Features(text.pooled, text.tokens.masked_fill(~text.mask.unsqueeze(-1), 1e4), text.mask)
        if fusion.uses_tokens:
            close(what, "logits with different values in padded tokens", fusion(junk, image), logits)
        else:  # the feature cache hands such fusions the pooled vector as their only token
            single = Features(text.pooled, text.pooled.unsqueeze(1), text.mask[:, :1])
            close(what, "logits with and without tokens (uses_tokens is False, so tokens must not be read)",
                   fusion(single, image), logits)
    if logits.shape != (4, c) or not bool(torch.isfinite(logits).all()):
        fail(what, f"forward must return finite logits (B, {c}), got {tuple(logits.shape)}")
    close(what, "logits of one sample alone and inside a batch", alone[0], logits[0])
    fusion.train()
    inputs = [t.clone().requires_grad_(t.is_floating_point()) for t in (*text, *image)]
    loss = nn.functional.cross_entropy(fusion(Features(*inputs[:3]), Features(*inputs[3:])), torch.arange(4) % c)
    loss.backward()
    gradients(what, fusion)
    for modality, (pooled, tokens) in (("text", inputs[:2]), ("image", inputs[3:5])):
        reached = sum(float(t.grad.abs().sum()) for t in (pooled, tokens) if t.grad is not None)
        if reached == 0.0:
            fail(what, f"the logits do not depend on the {modality} features")
    check_fusion_batches_and_export(what, fusion, text, image, export_onnx, {0: "batch"})
    return fusion


def _member_probs(n: int, members: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and members of decreasing skill: softmax(skill * one-hot + noise), float32 (N, M, C)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    skill = np.linspace(3.0, 0.5, members)[None, :, None]  # (1, M, 1)
    logits = skill * np.eye(classes)[labels][:, None, :] + rng.normal(0.0, 1.0, (n, members, classes))  # (N, M, C)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32), labels.astype(np.int64)


def check_combiner(combiner: str | Combiner, /, *, num_members: int = 3, num_classes: int = 4,
                   feature_width: int = 8, export_onnx: bool = True, **params: Any) -> Combiner:
    """Check a combiner (a registered name built for these sizes with ``params``, or an instance); returns it.

    ``feature_width`` is the width F of the member features (N, M, F) handed to a combiner whose
    ``reads_member_features`` is True (e.g. ``check_combiner("moe", feature_dim=8)``).
    """
    combiner, what, _ = _build("combiner", combiner, (num_members, num_classes), params)
    if not isinstance(combiner, Combiner):
        fail(what, f"must be a mmzoo.combiners.base.Combiner subclass, got {type(combiner).__name__}")
    m, c = combiner.num_members, combiner.num_classes
    probs, labels = _member_probs(90, m, c, seed=0)
    features = None
    if combiner.reads_member_features:
        features = np.random.default_rng(0).normal(size=(len(probs), m, feature_width)).astype(np.float32)
    extra = () if features is None else (features,)
    if combiner.requires_fit and not combiner.is_fitted:
        try:
            combiner.predict(probs, *extra)
        except TrainingError:
            pass
        else:
            fail(what, "predicted before fit although requires_fit is True")
    _check_recipe_weights(what, combiner)
    torch.manual_seed(0)
    if combiner.fit(probs, labels, *extra) is not combiner or not combiner.is_fitted:
        fail(what, "fit must return self and leave the combiner fitted")
    out = combiner.predict(probs, *extra)
    if out.shape != (len(probs), c) or not np.isfinite(out).all() or (out < 0).any() \
            or not np.allclose(out.sum(-1), 1.0, atol=ATOL):
        fail(what, f"forward must return a probability distribution per sample (N, {c}); got shape {out.shape}, "
                   f"row sums in [{out.sum(-1).min():.4f}, {out.sum(-1).max():.4f}]")
    close(what, "combined probabilities of one sample alone and inside a batch",
          torch.from_numpy(combiner.predict(probs[:1], *(f[:1] for f in extra))[0]), torch.from_numpy(out[0]))
    _check_reports(what, combiner, len(probs))
    try:
        combiner.predict(np.log(probs), *extra)
    except TrainingError:
        pass
    else:
        fail(what, "accepted log-probabilities as member probabilities; keep the base class's predict checks")
    trainable = [p for p in combiner.parameters() if p.requires_grad]
    if trainable:
        combiner.train()
        tensors = (torch.from_numpy(probs), *(torch.from_numpy(f) for f in extra))
        picked = combiner(*tensors)[torch.arange(len(labels)), torch.from_numpy(labels)]  # (N,)
        (-picked.clamp_min(1e-7).log().mean()).backward()
        gradients(what, combiner)
        combiner.zero_grad(set_to_none=True)
    combiner.eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "combiner.safetensors"
        try:
            combiner.save(path)
            loaded = type(combiner).load(path)
        except MmzooError as exc:
            fail(what, f"does not survive Combiner.save then Combiner.load: {exc.message}")
    if type(loaded) is not type(combiner) or loaded.config != json.loads(json.dumps(combiner.config)):
        fail(what, "Combiner.load(save(...)) rebuilt a different combiner; pass every param up to Combiner.__init__")
    close(what, "predictions before save and after load", torch.from_numpy(loaded.predict(probs, *extra)),
          torch.from_numpy(out))
    if export_onnx and features is None:  # mmzoo exports only combiners that read probabilities
        other = torch.from_numpy(_member_probs(5, m, c, seed=1)[0])
        onnx_round_trip(what, copy.deepcopy(combiner).float().eval(), (torch.from_numpy(probs[:3]),),
                        ["member_probs"], {"member_probs": {0: "batch"}, "probs": {0: "batch"}}, (other,), ["probs"])
    return combiner


def _check_recipe_weights(what: str, combiner: Combiner) -> None:
    """A combiner whose weights come from the recipe takes them; any other refuses them with a TrainingError."""
    m = combiner.num_members
    if combiner.weights_from_recipe:
        if combiner.set_member_weights(np.linspace(1.0, 0.5, m)) is not combiner:
            fail(what, "set_member_weights must return self")
        return
    try:
        combiner.set_member_weights(np.full(m, 1.0 / m))
    except TrainingError:
        return
    fail(what, "took member weights from a recipe although weights_from_recipe is False; keep the base "
               "class's set_member_weights, which refuses them")


def _check_reports(what: str, combiner: Combiner, n: int) -> None:
    """member_weights() and out_of_fold_predictions() are None or what the core expects of them."""
    weights = combiner.member_weights()
    if weights is not None:
        w = np.asarray(weights)
        if w.shape != (combiner.num_members,) or not np.isfinite(w).all() or (w < 0).any() \
                or not np.isclose(w.sum(), 1.0, atol=ATOL):
            fail(what, f"member_weights() must be None or ({combiner.num_members},) non-negative weights summing "
                       f"to 1, got {w.tolist() if w.size < 20 else w.shape}")
    oof = combiner.out_of_fold_predictions()
    if oof is not None:
        o = np.asarray(oof)
        if o.shape != (n, combiner.num_classes) or not np.isfinite(o).all() or (o < 0).any() \
                or not np.allclose(o.sum(-1), 1.0, atol=ATOL):
            fail(what, f"out_of_fold_predictions() must be None or a distribution per validation sample "
                       f"({n}, {combiner.num_classes}), got shape {o.shape}")


def check_dataset(dataset: str | Dataset, /, **params: Any) -> Dataset:
    """Check a dataset (a registered name built with ``params``, or an instance); returns it."""
    data, what, part = _build("dataset", dataset, (), params)
    if getattr(data, "task", None) == "tokens" or (part is not None and part.task == "tokens"):
        return _check_token_dataset(data, what, part, params)
    if not isinstance(data, Dataset):
        fail(what, f"the factory must return a mmzoo.data.Dataset, got {type(data).__name__}")
    if data.default_label_set not in data.label_sets:
        fail(what, f"default_label_set {data.default_label_set!r} is not one of {sorted(data.label_sets)}")
    for name, classes in data.label_sets.items():
        if len(classes) < 2 or len(set(classes)) != len(classes):
            fail(what, f"label set {name!r} needs at least two distinct class names, got {classes}")
    ids, group_split = set(), {}
    for s in data.samples:
        if s.id in ids:
            fail(what, f"sample id {s.id!r} appears twice")
        ids.add(s.id)
        if s.split not in SPLITS or not isinstance(s.text, str):
            fail(what, f"sample {s.id!r}: split must be one of {SPLITS} and text a str")
        for name, classes in data.label_sets.items():
            if s.labels.get(name) not in classes:
                fail(what, f"sample {s.id!r}: label {s.labels.get(name)!r} of set {name!r} is not one of {classes}")
        if s.group and group_split.setdefault(s.group, s.split) != s.split:
            fail(what, f"group {s.group!r} straddles splits {group_split[s.group]!r} and {s.split!r}")
    if not isinstance(data.fingerprint, str) or not data.fingerprint:
        fail(what, "needs a fingerprint that changes with its content (it keys feature caches and ensembles)")
    readable = ImagePreprocessor(resize=8, crop=8)
    for split in SPLITS:
        samples = data.split(split)
        if not samples:
            fail(what, f"split {split!r} is empty")
        readable([samples[0].image])  # raises if the trainer could not read it
    if part is not None and part.create(**params).fingerprint != data.fingerprint:
        fail(what, "building it twice with the same params gave different fingerprints; seed its randomness")
    return data


def _check_token_dataset(data, what: str, part, params: dict):
    """A token (NER) dataset: a TokenDataset whose sentences carry one valid BIO tag per token."""
    from mmzoo.data import bio
    from mmzoo.data.tokens import TokenDataset

    if not isinstance(data, TokenDataset):
        fail(what, f"a task='tokens' factory must return a mmzoo.data.tokens.TokenDataset, got {type(data).__name__}")
    labels, ids = set(data.labels), set()
    for s in data.sentences:
        if s.id in ids:
            fail(what, f"sentence id {s.id!r} appears twice")
        ids.add(s.id)
        if s.split not in SPLITS or not s.tokens or len(s.tokens) != len(s.tags):
            fail(what, f"sentence {s.id!r}: split must be one of {SPLITS}, with one tag per token and >= 1 token")
        if not set(s.tags) <= labels or bio.orphans(s.tags):
            fail(what, f"sentence {s.id!r}: tags must be valid BIO over {data.types} (repair orphan I- tags)")
    for split in ("train", "val"):
        if not data.split(split):
            fail(what, f"split {split!r} is empty")
    if not isinstance(data.fingerprint, str) or not data.fingerprint:
        fail(what, "needs a fingerprint that changes with its content (it keys ensembles)")
    if part is not None and part.create(**params).fingerprint != data.fingerprint:
        fail(what, "building it twice with the same params gave different fingerprints; seed its randomness")
    return data
