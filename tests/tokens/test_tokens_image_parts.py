"""Image-conditioned tagging, piece by piece: manifest checks, the token-form contract and registration, the
"no image" embedding and what the image encoder sees in training (no training runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.pictures import make_pics, picture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    return make_pics(tmp_path_factory.mktemp("pics"))


def test_token_manifest_images_get_the_classification_checks(tmp_path):
    from mmzoo.data.tokens import scan

    folder = tmp_path / "bad"
    folder.mkdir()
    picture(tmp_path / "outside.png", "red", np.random.default_rng(0))
    (folder / "broken.png").write_bytes(b"not a picture")
    rows = [{"tokens": ["a"], "tags": ["O"], "image": "../outside.png"},
            {"tokens": ["a"], "tags": ["O"], "image": "/etc/passwd"},
            {"tokens": ["a"], "tags": ["O"], "image": "missing.png"},
            {"tokens": ["a"], "tags": ["O"], "image": "broken.png"},
            {"tokens": ["a"], "tags": ["O"], "image": 7}]
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, _, problems, _ = scan(folder)
    text = [str(p) for p in problems]
    assert text[0].startswith("manifest.jsonl:1:") and "outside the dataset folder" in text[0]
    assert text[1].startswith("manifest.jsonl:2:") and "outside the dataset folder" in text[1]
    assert text[2].startswith("manifest.jsonl:3:") and "not found" in text[2]
    assert text[3].startswith("manifest.jsonl:4:") and "could not be read" in text[3]
    assert text[4].startswith("manifest.jsonl:5:") and "must be a path" in text[4]


def test_the_token_fusion_contract_catches_a_fusion_that_ignores_the_image():
    import torch

    from mmzoo.errors import PluginError
    from mmzoo.fusions.tokens import TokenFusion
    from mmzoo.testing import check_token_fusion

    class Blind(TokenFusion):
        def __init__(self):
            super().__init__(12, 20, 5, None)
            self.head = torch.nn.Linear(12, 5)

        def forward(self, text, image):
            return self.head(text.tokens)

    class Pooled(Blind):
        def forward(self, text, image):
            return self.head(text.pooled)  # (B, L): one tag for the whole sentence

    with pytest.raises(PluginError, match="image conditions nothing"):
        check_token_fusion(Blind(), export_onnx=False)
    with pytest.raises(PluginError, match=r"logits \(B, T, 5\)"):
        check_token_fusion(Pooled(), export_onnx=False)


def test_a_token_form_is_declared_for_fusions_only():
    from mmzoo.zoo.plugins import PluginInfo, _make_register

    claims: dict = {}
    register = _make_register("encoder", PluginInfo("p", "p", "1"), claims)
    with pytest.raises(ValueError, match="for fusions only"):
        register("e", "pkg.mod:E", description="", modality="text", tokens="pkg.mod:T")
    register = _make_register("fusion", PluginInfo("p", "p", "1"), claims)
    with pytest.raises(TypeError, match="tokens must be a callable"):
        register("f", "pkg.mod:F", description="", tokens="not a path")
    register("f", "pkg.mod:F", description="", tokens="pkg.mod:T")
    part = claims[("fusion", "f")][0][1]
    assert part.supports_tokens and part.token_form().factory == "pkg.mod:T" and part.to_dict()["tokens"] is True


def test_a_sentence_without_a_picture_reads_the_learned_no_image_embedding(pics):
    import torch

    from mmzoo.tokens.model import create_tagger
    from mmzoo.train.factory import resolve_spec

    for name in ("pic_film", "pic_xattn"):
        tagger = create_tagger(resolve_spec(name, str(pics.registry)), ["O", "B-LOC", "B-PER"]).eval()
        ids, mask = torch.randint(2, 20, (2, 7)), torch.ones(2, 7, dtype=torch.int64)
        positions = torch.tensor([[1, 3], [2, 5]])
        pixels = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            absent = tagger.word_probs(ids, mask, positions, pixels, torch.zeros(2))
            other = tagger.word_probs(ids, mask, positions, torch.randn(2, 3, 16, 16), torch.zeros(2))
            present = tagger.word_probs(ids, mask, positions, pixels, torch.ones(2))
            tagger.no_image.data += 1.0
            moved = tagger.word_probs(ids, mask, positions, pixels, torch.zeros(2))
        assert torch.allclose(absent, other), name  # the pixels of a missing picture are never read
        assert not torch.allclose(absent, present) and not torch.allclose(absent, moved), name


def test_in_training_missing_pictures_stay_out_of_the_image_encoder(pics):
    import torch

    from mmzoo.tokens.model import create_tagger
    from mmzoo.train.factory import resolve_spec

    tagger = create_tagger(resolve_spec("pic_film", str(pics.registry)), ["O", "B-LOC", "B-PER"]).train()
    pixels = torch.randn(3, 3, 16, 16)
    with torch.no_grad():  # BatchNorm in train mode: statistics of the rows that have a picture only
        mixed = tagger.image_features({"pixel_values": pixels, "has_image": torch.tensor([1.0, 0.0, 1.0])})
        alone = tagger.image_features({"pixel_values": pixels[[0, 2]], "has_image": torch.ones(2)})
        none = tagger.image_features({"pixel_values": pixels, "has_image": torch.zeros(3)})
    assert torch.allclose(mixed.pooled[[0, 2]], alone.pooled, atol=1e-6)
    assert torch.allclose(mixed.pooled[1], tagger.no_image) and torch.allclose(none.pooled, tagger.no_image.expand(3, -1))
