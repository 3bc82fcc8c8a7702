"""One contract test over every part `mmzoo list` shows, whatever plugin provides it (cf. timm's test_models.py).

Each registered encoder, fusion, combiner and dataset goes through mmzoo.testing's check for its
kind: built through its registration, run as the trainer, ensembles and ONNX export run it. Parts
listed in TINY are built small; any other part (a newly installed plugin's, say) with its defaults.
"""

from __future__ import annotations

import pytest
import torch

from mmzoo import testing
from mmzoo.zoo.plugins import get_zoo

TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}
# The smallest configuration of each part that has one.
TINY = {
    "encoder": {
        "hf": {"config": TINY_BERT, "max_length": 32},
        "small_text": {"dim": 16, "layers": 1, "kernel_size": 3, "max_length": 32},
        "timm": {"model": "resnet10t", "pretrained": False, "image_size": 64},
        "torchvision": {"model": "mobilenet_v3_small", "weights": None, "image_size": 64},
        "small_cnn": {"dim": 16, "image_size": 16, "channels": [8, 16]},
        "efficientnet_lite0": {"image_size": 64},  # its real ImageNet weights, at a small input size
        "minilm": {"max_length": 16},  # its real weights: 22.6M parameters, hence slow
        "char_ngrams": {"dim": 16, "buckets": 512, "max_length": 32},
    },
    "fusion": {
        "gated": {"dim": 8},
        "bilinear": {"rank": 2, "dim": 8},
        "cross_attention": {"dim": 8, "heads": 2},
        "film": {"dim": 8},
        "concat": {"dim": 6},
        "hadamard": {"dim": 8},
    },
    "combiner": {
        "moe": {"epochs": 30, "hidden": 8},
        "stacking": {"folds": 3, "max_iter": 50},
    },
    "dataset": {
        "colour-match": {"images": 60, "image_size": 8},
        "digits-match": {"image_size": 8},
    },
}
# Variants that take another path through the contract: a combiner gating on member features.
VARIANTS = [("combiner", "moe", {"epochs": 30, "hidden": 8, "feature_dim": 8})]
SLOW = {("encoder", "minilm")}
CHECKS = {"encoder": testing.check_encoder, "fusion": testing.check_fusion, "combiner": testing.check_combiner,
          "dataset": testing.check_dataset}

ZOO = get_zoo()
CASES = [
    pytest.param(kind, name, TINY[kind].get(name, {}), id=f"{kind}-{name}",
                 marks=[pytest.mark.slow] if (kind, name) in SLOW else [])
    for kind in CHECKS for name in ZOO.names(kind)
] + [pytest.param(kind, name, params, id=f"{kind}-{name}-" + "-".join(params)) for kind, name, params in VARIANTS]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention on a shared machine
    yield
    torch.set_num_threads(before)


def test_every_kind_has_registered_parts():
    assert all(ZOO.names(kind) for kind in CHECKS)


@pytest.mark.parametrize(("kind", "name", "params"), CASES)
def test_part_meets_its_contract(kind, name, params):
    testing.check_params(ZOO.get(kind, name))
    CHECKS[kind](name, **params)


TOKEN_FORMS = [pytest.param(name, {k: v for k, v in TINY["fusion"].get(name, {}).items()
                                    if ZOO.get("fusion", name).token_form().param(k)}, id=f"tokens-{name}")
               for name in ZOO.names("fusion") if ZOO.get("fusion", name).supports_tokens]


def test_film_and_cross_attention_have_token_forms():
    assert {"film", "cross_attention"} <= {p.values[0] for p in TOKEN_FORMS}


@pytest.mark.parametrize(("name", "params"), TOKEN_FORMS)
def test_token_form_meets_its_contract(name, params):
    testing.check_params(ZOO.get("fusion", name).token_form())
    testing.check_token_fusion(name, **params)


@pytest.mark.parametrize("plugin", [p.name for p in ZOO.plugins])
def test_plugin_loads_cleanly_and_listing_it_stays_torch_free(plugin):
    info = next(p for p in ZOO.plugins if p.name == plugin)
    assert info.ok, info.errors
    assert testing.check_lazy(plugin) < 5.0
