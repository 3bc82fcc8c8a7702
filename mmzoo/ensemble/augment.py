"""Provides the input perturbations distillation queries its teacher on: copies of train samples, never others.

A ``Draw`` is made once per training step from ``(seed, step)`` alone, so a run is deterministic under its
seed and a resumed run draws what the uninterrupted one would have. The same draw is applied to the
student's batch and to every teacher member's batch, whatever form each model reads its inputs in: raw
encoder inputs (``pixel_values``, ``input_ids`` with ``attention_mask``) or cached frozen-encoder
``Features``. Each perturbation touches what it can and leaves the rest as it is:

- ``shift``: images rolled by up to an eighth of their side, each row its own offset (raw pixels only);
- ``noise``: Gaussian noise on continuous inputs: normalised pixels (sigma 0.3) and cached features (sigma
  0.3 of each dimension's spread in the batch);
- ``mixup``: each row blended with another row of the batch, weight drawn from Beta(0.4, 0.4), on
  continuous inputs (pixels, cached features); raw token ids stay the row's own;
- ``swap``: half the rows take the image of another row of the batch: new text-image pairs.

Names combine with ``+`` (``shift+swap``). ``none`` perturbs nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from mmzoo.errors import TrainingError

KINDS = ("shift", "noise", "mixup", "swap")
SHIFT_FRACTION = 0.125  # of the image side
PIXEL_SIGMA = 0.3  # in normalised pixel units
FEATURE_SIGMA = 0.3  # of each feature dimension's spread in the batch
MIXUP_BETA = 0.4
SWAP_SHARE = 0.5


def parse(augment: str | None) -> tuple[str, ...]:
    """The perturbations a ``--augment`` value names, in canonical order; () for ``none``."""
    if augment is None or augment.strip() in ("", "none"):
        return ()
    names = [n.strip() for n in augment.split("+")]
    unknown = [n for n in names if n not in KINDS]
    if unknown or not names:
        raise TrainingError(f"--augment: unknown perturbation {', '.join(map(repr, unknown)) or repr(augment)}",
                            hint=f"use none, or one or more of {', '.join(KINDS)} joined by '+' (e.g. shift+swap)")
    return tuple(k for k in KINDS if k in names)


def canonical(augment: str | None) -> str:
    return "+".join(parse(augment)) or "none"


@dataclass
class Draw:
    """One step's random choices, shared by the student and every teacher member."""

    kinds: tuple[str, ...]
    seed: int  # noise is drawn per input from this seed, its name and its shape
    shift: torch.Tensor  # (B, 2) fractions in [-1, 1]
    partner: torch.Tensor  # (B,) the row mixed or swapped with
    weight: torch.Tensor  # (B,) mixup weight of the row's own input
    swapped: torch.Tensor  # (B,) bool, rows that take their partner's image

    @classmethod
    def make(cls, kinds: tuple[str, ...], seed: int, step: int, rows: int) -> Draw:
        seed = (seed * 1_000_003 + step * 7_919 + 12_345) % 2**62
        rng = np.random.default_rng(seed)
        shift = torch.from_numpy(rng.uniform(-1.0, 1.0, (rows, 2)))
        partner = torch.from_numpy(rng.permutation(rows))
        weight = torch.from_numpy(rng.beta(MIXUP_BETA, MIXUP_BETA, rows)).float()
        swapped = torch.from_numpy(rng.random(rows) < SWAP_SHARE)
        return cls(kinds, seed, shift, partner, weight, swapped)

    def noise(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = zlib.crc32(f"{name}:{tuple(like.shape)}".encode())
        gen = torch.Generator().manual_seed((self.seed + key) % 2**62)
        return torch.randn(like.shape, generator=gen).to(like.device, like.dtype)


def _blend(x: torch.Tensor, draw: Draw) -> torch.Tensor:
    w = draw.weight.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return w * x + (1 - w) * x[draw.partner.to(x.device)]


def _pixels(x: torch.Tensor, draw: Draw) -> torch.Tensor:
    """(B, 3, H, W) normalised pixels."""
    if "shift" in draw.kinds:
        size = x.shape[-1]
        most = max(1, round(SHIFT_FRACTION * size))
        offsets = torch.round(draw.shift * most).long().tolist()
        x = torch.stack([torch.roll(img, shifts=(dy, dx), dims=(-2, -1)) for img, (dy, dx) in zip(x, offsets,
                                                                                                   strict=True)])
    if "mixup" in draw.kinds:
        x = _blend(x, draw)
    if "noise" in draw.kinds:
        x = x + PIXEL_SIGMA * draw.noise("pixel_values", x)
    return x


def _features(name: str, f, draw: Draw):
    """A cached ``Features`` (a NamedTuple: pooled (B, D), tokens (B, N, D), mask (B, N))."""
    pooled, tokens = f.pooled, f.tokens
    if "mixup" in draw.kinds:
        pooled, tokens = _blend(pooled, draw), _blend(tokens, draw)
    if "noise" in draw.kinds:
        spread = pooled.std(dim=0, keepdim=True).nan_to_num(0.0)  # (1, D)
        pooled = pooled + FEATURE_SIGMA * spread * draw.noise(f"{name}.pooled", pooled)
        tokens = tokens + FEATURE_SIGMA * spread.unsqueeze(1) * draw.noise(f"{name}.tokens", tokens)
    mask = f.mask
    if "mixup" in draw.kinds:  # a blended token sequence is valid wherever either source was
        mask = mask | mask[draw.partner.to(mask.device)]
    return f._replace(pooled=pooled, tokens=tokens, mask=mask)


def apply(draw: Draw | None, cached: dict, raw: dict[str, torch.Tensor]):
    """One model's batch inputs, perturbed by ``draw``: (cached features, raw encoder inputs)."""
    if draw is None or not draw.kinds:
        return cached, raw
    cached = {m: _features(m, f, draw) for m, f in cached.items()}
    raw = dict(raw)
    if "pixel_values" in raw:
        raw["pixel_values"] = _pixels(raw["pixel_values"], draw)
    if "swap" in draw.kinds:
        take = torch.where(draw.swapped, draw.partner, torch.arange(len(draw.partner)))
        if "image" in cached:
            f = cached["image"]
            cached["image"] = f._replace(pooled=f.pooled[take], tokens=f.tokens[take], mask=f.mask[take])
        if "pixel_values" in raw:
            raw["pixel_values"] = raw["pixel_values"][take.to(raw["pixel_values"].device)]
    return cached, raw
