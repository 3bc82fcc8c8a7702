"""One contract test parametrized over every registered encoder and fusion, whatever plugin provides it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmzoo.encoders.base import Features
from mmzoo.fusions.base import mlp_head
from mmzoo.zoo.plugins import get_zoo

TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}
# The smallest configuration of each part that has one; other parts (third-party ones too) use their defaults.
TINY_ENCODERS = {
    "hf": {"config": TINY_BERT, "max_length": 32},
    "small_text": {"dim": 16, "layers": 1, "kernel_size": 3, "max_length": 32},
    "timm": {"model": "resnet10t", "pretrained": False, "image_size": 64},
    "torchvision": {"model": "mobilenet_v3_small", "weights": None, "image_size": 64},
    "small_cnn": {"dim": 16, "image_size": 16, "channels": [8, 16]},
    "efficientnet_lite0": {"image_size": 64},
}
TEXTS = ["a handwritten seven", "red apple", "7"]

zoo = get_zoo()
ENCODERS = zoo.names("encoder")
FUSIONS = zoo.names("fusion")


def images(n: int) -> list:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def build_encoder(name: str):
    return zoo.get("encoder", name).build(**TINY_ENCODERS.get(name, {}))


def encoder_inputs(encoder, batch: int) -> dict[str, torch.Tensor]:
    items = TEXTS[:batch] if encoder.modality == "text" else images(batch)
    return {k: torch.from_numpy(v) for k, v in encoder.preprocessor(items).items()}


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("batch", [1, 3])
def test_encoder_contract(name, batch):
    torch.manual_seed(0)
    encoder = build_encoder(name)
    out = encoder(encoder_inputs(encoder, batch))
    assert isinstance(out, Features)
    assert out.pooled.shape == (batch, encoder.output_dim)
    assert out.tokens.shape[0] == batch and out.tokens.shape[2] == encoder.output_dim
    assert out.mask.shape == out.tokens.shape[:2] and out.mask.dtype == torch.bool and out.mask.any(dim=1).all()
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()
    # backward reaches every trainable parameter
    (out.pooled.sum() + (out.tokens * out.mask.unsqueeze(-1)).sum()).backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached: {missing[:5]}"
    assert encoder.preprocessor.config["kind"] == encoder.modality


@pytest.mark.parametrize("name", ENCODERS)
def test_frozen_encoder_weights_do_not_change(name):
    torch.manual_seed(0)
    encoder = build_encoder(name)
    encoder.freeze()
    head = torch.nn.Linear(encoder.output_dim, 2)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=0.1, weight_decay=0.1)
    encoder.train()  # a frozen encoder must stay in eval mode (BatchNorm stats, dropout) even so
    loss = head(encoder(encoder_inputs(encoder, 3)).pooled).sum()
    loss.backward()
    optimizer.step()
    assert not encoder.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed"


@pytest.mark.parametrize("name", FUSIONS)
@pytest.mark.parametrize("batch", [1, 4])
def test_fusion_contract(name, batch):
    torch.manual_seed(0)
    fusion = zoo.get("fusion", name).build(12, 20, 3, mlp_head(16, 0.0))
    text = Features(torch.randn(batch, 12), torch.randn(batch, 5, 12), torch.ones(batch, 5, dtype=torch.bool))
    image = Features(torch.randn(batch, 20), torch.randn(batch, 4, 20), torch.ones(batch, 4, dtype=torch.bool))
    text.mask[:, 3:] = False
    logits = fusion(text, image)
    assert logits.shape == (batch, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    missing = [n for n, p in fusion.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached: {missing[:5]}"
