"""Provides the torch -> ONNX step: a member or a combiner traced into an onnx ModelProto.

The legacy TorchScript exporter (``dynamo=False``) is used: it exports these models in
about a second where the dynamo exporter takes 8-21 s, folds BatchNorm, and always
writes a single file.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.errors import ExportError

DEFAULT_OPSET = 17
# What an encoder graph returns, in order: the fields of mmzoo.encoders.base.Features.
FEATURE_FIELDS = ("pooled", "tokens", "mask")


class MemberGraph(nn.Module):
    """Flat graph inputs -> class probabilities (B, C) of one MultimodalClassifier."""

    def __init__(self, model: nn.Module, fields: list[str]):
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        logits = self.model(dict(zip(self.fields, tensors, strict=True)))["logits"]  # (B, C)
        return torch.softmax(logits.float(), dim=-1)  # (B, C)


class EncoderGraph(nn.Module):
    """Flat graph inputs of one modality -> that encoder's (pooled (B, D), tokens (B, N, D), mask (B, N))."""

    def __init__(self, encoder: nn.Module, fields: list[str]):
        super().__init__()
        self.encoder, self.fields = encoder, fields

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.encoder(dict(zip(self.fields, tensors, strict=True)))
        return feats.pooled.float(), feats.tokens.float(), feats.mask


class HeadGraph(nn.Module):
    """Each modality's (pooled, tokens, mask) -> class probabilities (B, C) of one MultimodalClassifier's head."""

    def __init__(self, model: nn.Module, modalities: list[str]):
        super().__init__()
        self.model, self.modalities = model, modalities

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        width = len(FEATURE_FIELDS)
        feats = {m: Features(*tensors[i * width:(i + 1) * width]) for i, m in enumerate(self.modalities)}
        logits = self.model.head(feats)["logits"]  # (B, C)
        return torch.softmax(logits.float(), dim=-1)  # (B, C)


class CombinerGraph(nn.Module):
    """Stacked member probabilities (B, M, C) -> combined probabilities (B, C)."""

    def __init__(self, combiner: nn.Module):
        super().__init__()
        self.combiner = combiner

    def forward(self, member_probs: torch.Tensor) -> torch.Tensor:
        return self.combiner(member_probs).float()  # (B, C)


def _trace(module: nn.Module, args: tuple, input_names: list[str], dynamic_axes: dict, opset: int,
           what: str, output_names: list[str] | None = None) -> onnx.ModelProto:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The tracer warns about every Python-side shape check; none changes the exported graph here.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, input_names=input_names, output_names=output_names or ["probs"],
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
    except Exception as exc:  # the exporter raises many error types; each means this part cannot export
        raise ExportError(f"torch.onnx could not export {what} at opset {opset}: {type(exc).__name__}: {exc}",
                          hint="try another --opset (13-20), or report the model's encoder/fusion") from None
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model


def member_graph(model: nn.Module, inputs: dict[str, str], example: dict[str, np.ndarray], opset: int,
                 what: str = "the model") -> onnx.ModelProto:
    """Trace one member. ``inputs`` maps graph input name -> model field; ``example`` is real feeds."""
    names = list(inputs)
    fields = [inputs[n] for n in names]
    wrapper = MemberGraph(model, fields).eval()
    args = tuple(torch.from_numpy(example[n]) for n in names)
    axes = {"probs": {0: "batch"}}
    for name in names:
        axes[name] = {0: "batch"}
        if inputs[name] in ("input_ids", "attention_mask"):
            # Members fed by the same tokenizer share one sequence-length axis name.
            prefix = name[: -len(inputs[name])]
            axes[name][1] = f"{prefix}sequence"
    return _trace(wrapper, args, names, axes, opset, what)


def encoder_graph(encoder: nn.Module, inputs: dict[str, str], example: dict[str, np.ndarray], outputs: list[str],
                  opset: int, what: str) -> onnx.ModelProto:
    """Trace one encoder alone: graph inputs ``inputs`` (name -> field) -> ``outputs`` (pooled, tokens, mask).

    Text tokens keep the inputs' dynamic sequence axis; image tokens (grid cells) have a fixed count.
    """
    names = list(inputs)
    wrapper = EncoderGraph(encoder, [inputs[n] for n in names]).eval()
    args = tuple(torch.from_numpy(example[n]) for n in names)
    sequence = next((f"{n[: -len(f)]}sequence" for n, f in inputs.items() if f == "input_ids"), None)
    axes = {name: {0: "batch"} for name in names}
    if sequence is not None:
        axes.update({name: {0: "batch", 1: sequence} for name, f in inputs.items() if f in ("input_ids", "attention_mask")})
    pooled, tokens, mask = outputs
    axes[pooled] = {0: "batch"}
    axes[tokens] = axes[mask] = {0: "batch", 1: sequence} if sequence is not None else {0: "batch"}
    return _trace(wrapper, args, names, axes, opset, what, output_names=list(outputs))


def head_graph(model: nn.Module, features: dict[str, tuple[str, str, str]], example: dict[str, tuple],
               token_axes: dict[str, str | None], opset: int, what: str) -> onnx.ModelProto:
    """Trace one member's head (fusion or single head, then softmax) on its encoders' features.

    ``features`` maps modality -> the (pooled, tokens, mask) input names the head reads,
    ``example`` modality -> real (pooled, tokens, mask) tensors, ``token_axes`` modality ->
    the dynamic token axis name (None when the token count is fixed).
    """
    modalities = list(features)
    wrapper = HeadGraph(model, modalities).eval()
    names = [name for m in modalities for name in features[m]]
    args = tuple(t for m in modalities for t in example[m])
    axes: dict = {"probs": {0: "batch"}}
    for m in modalities:
        pooled, tokens, mask = features[m]
        axes[pooled] = {0: "batch"}
        axes[tokens] = axes[mask] = {0: "batch", 1: token_axes[m]} if token_axes.get(m) else {0: "batch"}
    return _trace(wrapper, args, names, axes, opset, what)


def combiner_graph(combiner: nn.Module, members: int, classes: int, opset: int) -> onnx.ModelProto:
    """Trace a fitted combiner's forward on (B, M, C) probabilities."""
    example = torch.softmax(torch.randn(3, members, classes, generator=torch.Generator().manual_seed(0)), -1)
    wrapper = CombinerGraph(copy.deepcopy(combiner).float()).eval()
    return _trace(wrapper, (example,), ["member_probs"], {"member_probs": {0: "batch"}, "probs": {0: "batch"}},
                  opset, f"combiner {getattr(combiner, 'name', '?')!r}")
