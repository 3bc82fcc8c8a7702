"""Provides what every contract check shares: the error it raises, tolerances, ONNX round trips, probes."""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from mmzoo.encoders.base import Features
from mmzoo.errors import PluginError
from mmzoo.zoo.parts import Part

# float32 rounding of the same maths in another batch shape, or in onnxruntime, stays well inside this.
ATOL = 1e-4
OPSET = 17  # mmzoo export's default


def fail(what: str, message: str) -> NoReturn:
    """Raise the PluginError every check reports a breach with."""
    raise PluginError(f"{what}: {message}", hint="see docs/plugins.md, 'The interface each kind implements'")


def registered(kind: str, name: str) -> Part:
    """The installed part ``name`` of ``kind``, or a PluginError saying how to install it."""
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get(kind, name)
    if part is None:
        raise PluginError(f"no {kind} named {name!r} is registered",
                          hint="install your plugin (pip install -e .), or point MMZOO_PLUGIN_PATH at its hook "
                               "module, and look for its errors in `mmzoo plugins`")
    return part


def close(what: str, label: str, got: torch.Tensor, want: torch.Tensor) -> None:
    if got.shape != want.shape or not torch.allclose(got.float(), want.float(), atol=ATOL, rtol=ATOL):
        diff = (got.float() - want.float()).abs().max().item() if got.shape == want.shape else "shape"
        fail(what, f"{label} differ (max |diff| {diff}, shapes {tuple(got.shape)} vs {tuple(want.shape)})")


def gradients(what: str, module: nn.Module) -> None:
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        fail(what, f"no gradient reached {len(missing)} trainable parameter(s), e.g. {missing[:3]}; "
                   "every trainable parameter must affect the output (or set requires_grad=False)")


def onnx_round_trip(what: str, module: nn.Module, example: tuple, names: list[str], axes: dict, other: tuple,
                    outputs: list[str]) -> None:
    """Export ``module`` as mmzoo's exporter does, run ``other`` (other shapes) in onnxruntime, compare."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buffer, input_names=names, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the exporter raises many types; each one means the part cannot ship as ONNX
        fail(what, f"torch.onnx.export failed at opset {OPSET}: {type(exc).__name__}: {exc}")
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    # the exporter drops inputs the graph never reads (e.g. tokens of a pooled-only fusion)
    used = {i.name for i in session.get_inputs()}
    got = session.run(None, {n: t.numpy() for n, t in zip(names, other, strict=True) if n in used})
    with torch.no_grad():
        want = module(*other)
    for label, g, w in zip(outputs, got, want if isinstance(want, tuple) else (want,), strict=True):
        close(what, f"ONNX and torch {label} at other shapes", torch.from_numpy(g), w)


def images(n: int) -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 4 * i, 48, 3), dtype=np.uint8)) for i in range(n)]


# Layers whose train-mode batch statistics mmzoo handles: under DDP it swaps them for SyncBatchNorm.
BATCH_STAT_LAYERS = (nn.modules.batchnorm._BatchNorm,)


def _float_leaves(module: nn.Module, args: tuple, batch: int) -> tuple[tuple, list[torch.Tensor], list]:
    """``args`` with every float tensor made a leaf that records gradients; with none (token ids), the
    first float activation (B, ...) inside ``module`` becomes that leaf instead, through a forward hook."""
    leaves: list[torch.Tensor] = []

    def lift(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.shape[:1] == (batch,):
            leaves.append(value.detach().clone().requires_grad_(True))
            return leaves[-1]
        if isinstance(value, dict):
            return {k: lift(v) for k, v in value.items()}
        if isinstance(value, tuple):
            lifted = [lift(v) for v in value]
            return type(value)(*lifted) if hasattr(value, "_fields") else tuple(lifted)
        return value

    lifted = tuple(lift(a) for a in args)
    handles = []
    if not leaves:
        def hook(_module: nn.Module, _inputs: Any, out: Any) -> Any:
            if leaves or not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.shape[:1] == (batch,)):
                return None
            leaves.append(out.detach().requires_grad_(True))
            return leaves[-1]

        handles = [m.register_forward_hook(hook) for m in module.modules()]
    return lifted, leaves, handles


def check_train_batches(what: str, module: nn.Module, batch: tuple, alone: tuple,
                        output: Callable[[Any], torch.Tensor]) -> None:
    """Train mode: a batch of one must run, and only torch BatchNorm layers may mix the samples of a batch.

    The trainer's last batch can hold a single sample, and under DistributedDataParallel every
    process sees only its shard: mmzoo syncs torch's BatchNorm layers across processes, but a
    layer of your own that normalises over the batch axis would silently train on shard statistics.
    ``batch`` and ``alone`` hold the forward's arguments for B > 1 samples and for one sample;
    ``output`` picks the tensor (B, ...) to compare from what forward returns. Mixing is found by
    gradients: with torch's BatchNorm layers in eval mode, sample 0's output must not depend on the
    other samples' inputs (dropout and stochastic depth are per sample, so they do not mix).
    """
    was_training = module.training
    state = copy.deepcopy(module.state_dict())  # train-mode BatchNorm updates its running statistics
    try:
        module.train()
        try:
            with torch.no_grad():
                module(*alone)
        except Exception as exc:  # any error here means training would stop at a one-sample last batch
            fail(what, f"forward fails in train mode on a batch of one sample ({type(exc).__name__}: {exc}); "
                       "the trainer's last batch can hold one sample")
        twin = copy.deepcopy(module).train()
        for m in twin.modules():
            if isinstance(m, BATCH_STAT_LAYERS):
                m.eval()  # their batch dependence is allowed and handled by mmzoo
        size = len(output(twin(*batch)).detach())
        args, leaves, handles = _float_leaves(twin, batch, size)
        try:
            out = output(twin(*args))  # (B, ...)
        finally:
            for handle in handles:
                handle.remove()
        probe = torch.randn(out[0].shape, generator=torch.Generator().manual_seed(0))
        (out[0].float() * probe).sum().backward()
        for leaf in leaves:
            grad = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
            own, others = grad[0].abs().max(), grad[1:].abs().max()
            if others > 1e-6 * own + 1e-12:
                fail(what, "in train mode, sample 0's output depends on the other samples of its batch (with torch "
                           "BatchNorm layers in eval mode, so something else mixes samples); use torch's BatchNorm, "
                           "which mmzoo syncs across processes, or per-sample normalisation such as LayerNorm")
    finally:
        module.load_state_dict(state)
        module.train(was_training)


def random_features(batch: int, tokens: int, dim: int, real: int, seed: int) -> Features:
    """Seeded pooled (B, D) and token (B, T, D) features whose first ``real`` tokens are unmasked."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    mask[:, :real] = True
    return Features(torch.randn(batch, dim, generator=g), torch.randn(batch, tokens, dim, generator=g), mask)


class FusionGraph(nn.Module):
    """A fusion (or a fusion's token form) as a module of six tensors, for tracing to ONNX."""

    def __init__(self, fusion: nn.Module):
        super().__init__()
        self.fusion = fusion

    def forward(self, *t: torch.Tensor) -> torch.Tensor:
        return self.fusion(Features(*t[:3]), Features(*t[3:]))


FUSION_INPUTS = ["text_pooled", "text_tokens", "text_mask", "image_pooled", "image_tokens", "image_mask"]


def check_fusion_batches_and_export(what: str, fusion: nn.Module, text: Features, image: Features, export_onnx: bool,
                                    logits_axes: dict) -> None:
    """The end both fusion checks share: batch-independent training, then (optionally) an ONNX round trip
    with other batch and token sizes; ``logits_axes`` names the output's dynamic axes."""
    fusion.zero_grad(set_to_none=True)
    first = (Features(*(t[:1] for t in text)), Features(*(t[:1] for t in image)))
    check_train_batches(what, fusion, (text, image), first, lambda logits: logits)
    fusion.eval()
    if export_onnx:
        axes = {n: {0: "batch", 1: f"{n[:5]}tokens"} if not n.endswith("pooled") else {0: "batch"}
                for n in FUSION_INPUTS}
        other = (*random_features(2, 3, fusion.text_dim, 2, 3), *random_features(2, 7, fusion.image_dim, 7, 4))
        onnx_round_trip(what, FusionGraph(fusion).eval(), (*text, *image), FUSION_INPUTS,
                        {**axes, "logits": logits_axes}, other, ["logits"])
