"""Provides the ensemble graph with shared encoders: each frozen encoder that members share runs once.

Members share an encoder when it is frozen in each of them, has the same spec entry
(encoder name and parameters), the same weights and buffers (SHA-256 of its state), and
reads the same graph inputs (the same preprocessing). Such an encoder is traced once, as
its own graph, and every member's head reads its pooled features, tokens and mask. An
encoder that was fine-tuned (``freeze: false``) stays with its member, which then has an
encoder graph of its own. The decision is made here, on the torch models, so nothing
depends on an optimiser pass of the runtime.

``build_graph(..., share_encoders=False)`` builds the earlier layout (each member traced
whole, then merged), kept for benchmarks and tests that compare the two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch

from mmzoo.onnx import graphs, merge

FIELDS = {"text": ("input_ids", "attention_mask"), "image": ("pixel_values",)}


@dataclass
class EncoderPlan:
    """One encoder graph of the merged ensemble and the members whose heads read it."""

    index: int
    modality: str
    encoder: torch.nn.Module
    inputs: dict[str, str]  # graph input name -> model field
    members: list[int] = field(default_factory=list)
    shared_key: tuple | None = None  # None: fine-tuned, this member's own copy

    @property
    def outputs(self) -> tuple[str, str, str]:
        return tuple(f"e{self.index}_{self.modality}_{f}" for f in graphs.FEATURE_FIELDS)

    @property
    def token_axis(self) -> str | None:
        """The dynamic token axis of a text encoder (its inputs' sequence axis); image grids are fixed."""
        name = next((n for n, f in self.inputs.items() if f == "input_ids"), None)
        return None if name is None else f"{name[: -len('input_ids')]}sequence"


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state (parameter and buffer names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _shared_key(model, modality: str, inputs: dict[str, str]) -> tuple | None:
    """What must match for two members to share this encoder; None when it was fine-tuned."""
    encoder = getattr(model, f"{modality}_encoder")
    if not getattr(encoder, "frozen", False):
        return None
    entry = {k: v for k, v in (model.spec.get(modality) or {}).items() if k != "freeze"}
    return (modality, type(encoder).__qualname__, json.dumps(entry, sort_keys=True, default=str),
            tuple(sorted(inputs)), state_digest(encoder))


def plan_encoders(models: list, member_inputs: list[dict[str, str]]) -> list[EncoderPlan]:
    """The encoder graphs an ensemble needs, in first-use order, each with the members it feeds."""
    plans: list[EncoderPlan] = []
    by_key: dict[tuple, EncoderPlan] = {}
    for k, (model, names) in enumerate(zip(models, member_inputs, strict=True)):
        for modality in model.modalities:
            inputs = {name: fld for name, fld in names.items() if fld in FIELDS[modality]}
            key = _shared_key(model, modality, inputs)
            plan = by_key.get(key) if key is not None else None
            if plan is None:
                plan = EncoderPlan(len(plans), modality, getattr(model, f"{modality}_encoder"), inputs, shared_key=key)
                plans.append(plan)
                if key is not None:
                    by_key[key] = plan
            plan.members.append(k)
    return plans


def build_graph(source, example: dict[str, np.ndarray], opset: int, share_encoders: bool = True) -> onnx.ModelProto:
    """The ensemble (``source.combiner`` set) as one float32 graph: encoders, member heads, combiner."""
    combiner = graphs.combiner_graph(source.combiner, len(source.models), len(source.classes), opset)
    if not share_encoders:
        parts = zip(source.models, source.member_inputs, source.member_names, strict=True)
        members = [graphs.member_graph(model, names, example, opset, what=f"member {name}")
                   for model, names, name in parts]
        return merge.merge_ensemble(members, combiner)
    plans = plan_encoders(source.models, source.member_inputs)
    encoders, features = [], {}
    for plan in plans:
        what = f"the {plan.modality} encoder of member{'s' * (len(plan.members) > 1)} " + ", ".join(
            source.member_names[k] for k in plan.members)
        encoders.append(graphs.encoder_graph(plan.encoder, plan.inputs, example, list(plan.outputs), opset, what))
        with torch.no_grad():  # tracing reuses these tensors, so no inference-mode tensors
            feats = plan.encoder({f: torch.from_numpy(example[n]) for n, f in plan.inputs.items()})
        features[plan.index] = (feats.pooled.float(), feats.tokens.float(), feats.mask)
    heads = []
    for k, (model, name) in enumerate(zip(source.models, source.member_names, strict=True)):
        mine = {p.modality: p for p in plans if k in p.members}
        order = list(model.modalities)
        heads.append(graphs.head_graph(
            model, {m: mine[m].outputs for m in order}, {m: features[mine[m].index] for m in order},
            {m: mine[m].token_axis for m in order}, opset, what=f"the head of member {name}"))
    return merge.merge_ensemble(heads, combiner, encoders=encoders)

