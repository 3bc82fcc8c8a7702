"""Feature standardisation: a dimension that barely moves on train must not blow up an unseen value."""

from __future__ import annotations

import torch

from mmzoo.encoders.base import Features
from mmzoo.train.standardize import Standardizer


def _z(std: Standardizer, pooled: torch.Tensor) -> torch.Tensor:
    return std(Features(pooled, pooled[:, None, :], torch.ones(len(pooled), 1, dtype=torch.bool))).pooled


def test_a_nearly_dead_dimension_is_not_scaled_to_unit_variance():
    # Frozen CNN features: 8 live dimensions and one ReLU channel that is 0 on train but for a 5e-6 wobble.
    # A test image on which that channel fires (0.03, small next to the live features) gave z about 6,000.
    gen = torch.Generator().manual_seed(0)
    live = torch.rand(100, 8, generator=gen) * 0.5
    dead = torch.zeros(100, 1)
    dead[0] = 5e-5
    std = Standardizer(9).fit(torch.cat([live, dead], dim=1))
    z_train = _z(std, torch.cat([live, dead], dim=1))
    z_test = _z(std, torch.tensor([[0.25] * 8 + [0.03]]))
    assert z_test.abs().max() < 10  # was about 6,000 (0.03 / 5e-6)
    # the live dimensions are still standardised exactly
    assert torch.allclose(z_train[:, :8].std(dim=0, unbiased=False), torch.ones(8), atol=1e-5)


def test_a_constant_dimension_is_left_unscaled():
    x = torch.cat([torch.linspace(0, 1, 10)[:, None], torch.full((10, 1), 3.0)], dim=1)
    std = Standardizer(2).fit(x)
    assert std.std[1] == 1.0 and std.mean[1] == 3.0
