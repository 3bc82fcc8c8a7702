"""Tests the built-in fusions: shapes, masking, gradients, ONNX parity and what each can learn."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mmzoo.encoders.base import Features
from mmzoo.errors import RegistryError
from mmzoo.fusions import meta
from mmzoo.fusions.base import Fusion, mlp_head
from mmzoo.zoo.parts import Part

ROOT = Path(__file__).resolve().parents[2]


def _registered() -> dict[str, Part]:
    parts: dict[str, Part] = {}

    def register(name, factory, *, description, params=(), modality=None, tokens=None, token_params=None):
        parts[name] = Part("fusion", name, factory, description, tuple(params), modality, tokens=tokens,
                           token_params=token_params)

    meta.register_all(register)
    return parts


PARTS = _registered()

# Small settings for every fusion, plus the variants that take a different code path.
CONFIGS = [
    ("concat", {}),
    ("concat", {"dim": 6}),
    ("late", {}),
    ("gated", {"dim": 8}),
    ("bilinear", {"rank": 3, "dim": 8}),
    ("cross_attention", {"dim": 8, "heads": 2, "layers": 2, "dropout": 0.0}),
    ("film", {"dim": 8}),
    ("film", {"condition": "image", "dim": 8}),
]
CONFIG_IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CONFIGS]
INPUT_NAMES = ["text_pooled", "text_tokens", "text_mask", "image_pooled", "image_tokens", "image_mask"]
TOKEN_INPUTS = {"text_tokens", "text_mask", "image_tokens", "image_mask"}
# Pooled-only fusions are shown not to read tokens at all by the ONNX test's graph inputs.
TOKEN_CONFIGS = [(name, params) for name, params in CONFIGS if PARTS[name].load().uses_tokens]
HYPOTHESIS = settings(max_examples=50, deadline=None, database=None)


@pytest.fixture(autouse=True)
def _one_thread():
    # These tensors are tiny: a second thread only adds contention on a 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(name: str, params: dict, text_dim: int, image_dim: int, classes: int, hidden: int = 16) -> Fusion:
    return PARTS[name].create(text_dim, image_dim, classes, mlp_head(hidden, 0.0), **params)


def features(gen: torch.Generator, batch: int, tokens: int, dim: int, lengths: list[int] | None = None) -> Features:
    if lengths is None:
        lengths = torch.randint(1, tokens + 1, (batch,), generator=gen).tolist()
    mask = torch.arange(tokens).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, N)
    return Features(torch.randn(batch, dim, generator=gen), torch.randn(batch, tokens, dim, generator=gen), mask)


def _pair(batch: int) -> tuple[Features, Features]:
    gen = torch.Generator().manual_seed(batch)
    return features(gen, batch, 3, 5), features(gen, batch, 4, 6)


def scramble_padding(feats: Features, gen: torch.Generator) -> Features:
    noise = 1000 * torch.randn(feats.tokens.shape, generator=gen)  # (B, N, D)
    return feats._replace(tokens=torch.where(feats.mask.unsqueeze(-1), feats.tokens, noise))


shapes = st.fixed_dictionaries(
    {
        "config": st.sampled_from(CONFIGS),
        "batch": st.integers(1, 5),
        "text_tokens": st.integers(1, 7),
        "image_tokens": st.integers(1, 7),
        "text_dim": st.integers(1, 9),
        "image_dim": st.integers(1, 9),
        "classes": st.integers(1, 4),
        "seed": st.integers(0, 2**16),
    }
)


def test_configs_cover_every_registered_fusion():
    assert {name for name, _ in CONFIGS} == set(PARTS)


@pytest.mark.parametrize("name", sorted(PARTS))
def test_each_fusion_builds_from_its_declared_defaults_alone(name):
    part = PARTS[name]
    cls = part.load()
    assert issubclass(cls, Fusion) and cls.name == name
    assert part.description and cls.__doc__
    assert all(p.help for p in part.params)
    assert build(name, {}, 5, 6, 3)(*_pair(1)).shape == (1, 3)


def test_metadata_is_torch_free():
    code = "import sys; from mmzoo.fusions import meta; meta.register_all(lambda *a, **k: None); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@HYPOTHESIS
@given(shapes)
def test_logits_have_batch_by_class_shape_and_are_finite(draw):
    name, params = draw["config"]
    gen = torch.Generator().manual_seed(draw["seed"])
    fusion = build(name, params, draw["text_dim"], draw["image_dim"], draw["classes"]).eval()
    text = features(gen, draw["batch"], draw["text_tokens"], draw["text_dim"])
    image = features(gen, draw["batch"], draw["image_tokens"], draw["image_dim"])
    with torch.no_grad():
        logits = fusion(text, image)
    assert logits.shape == (draw["batch"], draw["classes"])
    assert torch.isfinite(logits).all()


@HYPOTHESIS
@given(st.data())
def test_padded_tokens_do_not_change_the_output(data):
    name, params = data.draw(st.sampled_from(TOKEN_CONFIGS))
    batch = data.draw(st.integers(1, 5))
    text_dim, image_dim = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    classes = data.draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))

    def padded(dim: int) -> Features:
        tokens = data.draw(st.integers(2, 7))
        # The first sample always has padding, so every example exercises the mask.
        lengths = [data.draw(st.integers(1, tokens - 1))] + [
            data.draw(st.integers(1, tokens)) for _ in range(batch - 1)
        ]
        return features(gen, batch, tokens, dim, lengths)

    fusion = build(name, params, text_dim, image_dim, classes).eval()
    text, image = padded(text_dim), padded(image_dim)
    with torch.no_grad():
        clean = fusion(text, image)
        scrambled = fusion(scramble_padding(text, gen), scramble_padding(image, gen))
    torch.testing.assert_close(scrambled, clean, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("modality", ["text", "image"])
def test_token_fusion_reads_real_tokens(modality):
    # Guards the padding test above against passing because tokens are ignored altogether.
    fusion = build("cross_attention", dict(CONFIGS[5][1]), 5, 6, 3).eval()
    text, image = _pair(4)
    target = text if modality == "text" else image
    changed = target._replace(tokens=target.tokens + 1.0)
    with torch.no_grad():
        before = fusion(text, image)
        after = fusion(changed, image) if modality == "text" else fusion(text, changed)
    assert (before - after).abs().max() > 1e-3


def test_token_fusion_survives_a_sample_without_real_tokens():
    fusion = build("cross_attention", dict(CONFIGS[5][1]), 5, 6, 3).eval()
    gen = torch.Generator().manual_seed(0)
    text = features(gen, 2, 3, 5, lengths=[0, 2])
    image = features(gen, 2, 4, 6, lengths=[3, 0])
    with torch.no_grad():
        assert torch.isfinite(fusion(text, image)).all()


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=CONFIG_IDS)
def test_batch_of_one_matches_its_row_in_a_batch(name, params):
    fusion = build(name, params, 5, 6, 3).eval()
    text, image = _pair(3)
    with torch.no_grad():
        batched = fusion(text, image)
        for i in range(3):
            row = fusion(Features(*(x[i : i + 1] for x in text)), Features(*(x[i : i + 1] for x in image)))
            torch.testing.assert_close(row, batched[i : i + 1], rtol=1e-5, atol=1e-5)
    fusion.train()
    fusion(*_pair(1)).sum().backward()


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=CONFIG_IDS)
def test_backward_reaches_every_parameter(name, params):
    torch.manual_seed(0)
    fusion = build(name, params, 5, 6, 3).train()
    text, image = _pair(6)
    F.cross_entropy(fusion(text, image), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    for param_name, param in fusion.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name


class _PlainTensors(torch.nn.Module):
    """Lets the ONNX exporter see the six tensors a Features pair is made of."""

    def __init__(self, fusion: Fusion) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, text_pooled, text_tokens, text_mask, image_pooled, image_tokens, image_mask):
        return self.fusion(
            Features(text_pooled, text_tokens, text_mask), Features(image_pooled, image_tokens, image_mask)
        )


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=CONFIG_IDS)
def test_onnx_export_matches_torch_at_other_shapes(name, params):
    torch.manual_seed(0)
    fusion = build(name, params, 5, 6, 3).eval()
    gen = torch.Generator().manual_seed(1)
    example = (*features(gen, 2, 3, 5), *features(gen, 2, 4, 6))
    dynamic = {n: {0: "batch", 1: n.split("_")[0] + "_len"} for n in TOKEN_INPUTS}
    dynamic |= {"text_pooled": {0: "batch"}, "image_pooled": {0: "batch"}, "logits": {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # MultiheadAttention's shape checks compare traced sizes (parity below proves them
        # harmless), and the legacy exporter announces its own deprecation.
        for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        torch.onnx.export(
            _PlainTensors(fusion),
            example,
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=INPUT_NAMES,
            output_names=["logits"],
            dynamic_axes=dynamic,
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    # The graph keeps only what forward reads, which makes uses_tokens checkable.
    assert (TOKEN_INPUTS <= declared) == fusion.uses_tokens
    assert fusion.uses_tokens or not (TOKEN_INPUTS & declared)
    text = features(gen, 5, 6, 5, lengths=[6, 1, 3, 6, 2])
    image = features(gen, 5, 2, 6, lengths=[1, 2, 2, 1, 2])
    feed = {n: x.numpy() for n, x in zip(INPUT_NAMES, (*text, *image), strict=True) if n in declared}
    (got,) = session.run(["logits"], feed)
    with torch.no_grad():
        want = fusion(text, image).numpy()
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


# The learning task: label = (text's hidden class == image's hidden class). Every text class
# meets every image class, matches 4 times and mismatches 2 times each, so P(match) = 0.4
# whatever one modality alone shows. Late fusion's logit is f(text) + g(image); with the label
# independent of each modality, cross-entropy's optimum over such sums is a constant, so it
# ends predicting "no match" (60%). Pooled features are exact class prototypes (a modality
# alone cannot memorise samples); tokens add noise and scrambled padding.
CLASSES, TEXT_DIM, IMAGE_DIM = 4, 8, 6


@pytest.fixture(scope="module")
def match_task() -> tuple[Features, Features, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    cells = [(i, j) for i in range(CLASSES) for j in range(CLASSES) for _ in range(4 if i == j else 2)] * 2
    text_class = torch.tensor([c[0] for c in cells])
    image_class = torch.tensor([c[1] for c in cells])

    def modality(dim: int, tokens: int, cls: torch.Tensor) -> Features:
        prototypes = torch.randn(CLASSES, dim, generator=gen)
        pooled = prototypes[cls]  # (B, D)
        feats = features(gen, len(cells), tokens, dim)
        noisy = pooled.unsqueeze(1) + 0.3 * torch.randn(feats.tokens.shape, generator=gen)  # (B, N, D)
        return scramble_padding(Features(pooled, noisy, feats.mask), gen)

    text = modality(TEXT_DIM, 3, text_class)
    image = modality(IMAGE_DIM, 4, image_class)
    return text, image, (text_class == image_class).long()


def _train_accuracy(name: str, params: dict, task) -> float:
    text, image, labels = task
    torch.manual_seed(0)
    fusion = build(name, params, TEXT_DIM, IMAGE_DIM, 2, hidden=32).train()
    optimizer = torch.optim.Adam(fusion.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.cross_entropy(fusion(text, image), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (fusion.eval()(text, image).argmax(-1) == labels).float().mean().item()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("concat", {}),
        ("gated", {"dim": 16}),
        ("bilinear", {"rank": 4, "dim": 16}),
        ("film", {"dim": 16}),
        ("cross_attention", {"dim": 16, "heads": 2, "dropout": 0.0}),
    ],
)
def test_interacting_fusions_learn_the_cross_modal_match(name, params, match_task):
    assert _train_accuracy(name, params, match_task) >= 0.9


def test_late_fusion_cannot_learn_the_cross_modal_match(match_task):
    assert _train_accuracy("late", {}, match_task) < 0.7


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("cross_attention", {"dim": 10, "heads": 4}, "divisible by heads"),
        ("film", {"condition": "audio"}, "condition"),
        ("gated", {"dim": 0}, "dim"),
        ("bilinear", {"rank": -1}, "rank"),
        ("concat", {"dim": -2}, "dim"),
        ("late", {"dim": 8}, r"unknown param\(s\): dim"),
        ("cross_attention", {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_params_raise_a_registry_error(name, params, needle):
    with pytest.raises(RegistryError, match=needle) as caught:
        build(name, params, 5, 6, 3)
    assert name in str(caught.value) and caught.value.hint


@pytest.mark.parametrize(("hidden", "dropout"), [(-1, 0.1), (8, 1.0), (True, 0.1)])
def test_bad_head_settings_are_refused_by_the_head_params(hidden, dropout):
    from mmzoo.zoo.schema import HEAD_PARAMS

    declared = {p.name: p for p in HEAD_PARAMS}
    complaints = [declared["hidden"].check(hidden), declared["dropout"].check(dropout)]
    assert any(complaints)


def test_mlp_head_shapes():
    linear = mlp_head(0, 0.1)(7, 3)
    assert [type(m) for m in linear] == [torch.nn.Linear]
    deep = mlp_head(16, 0.2)(7, 3)
    assert [m.weight.shape for m in deep if isinstance(m, torch.nn.Linear)] == [(16, 7), (3, 16)]
    assert deep(torch.randn(4, 7)).shape == (4, 3)
