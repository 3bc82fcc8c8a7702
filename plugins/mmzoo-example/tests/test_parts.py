"""Tests mmzoo-example's parts with mmzoo's contract checks, plus the behaviour each part promises."""

import numpy as np
import torch

from mmzoo.testing import check_combiner, check_dataset, check_encoder, check_fusion, check_plugin

SMALL = {"char_ngrams": {"dim": 16, "buckets": 512, "max_length": 32}, "hadamard": {"dim": 8},
         "colour-match": {"images": 60, "image_size": 8}}


def test_everything_the_plugin_registers_meets_mmzoo_contracts():
    check_plugin("example", params=SMALL)  # every part, built small; and listing the plugin stays torch-free


def test_char_ngrams_meets_the_encoder_contract():
    check_encoder("char_ngrams", dim=16, n=3, buckets=512, max_length=32)


def test_char_ngrams_pools_the_mean_of_every_ngram():
    encoder = check_encoder("char_ngrams", dim=8, n=2, buckets=64, export_onnx=False)
    ids = encoder.preprocessor(["ab"])["input_ids"]  # (1, 2): the characters a and b
    pooled = encoder({"input_ids": torch.from_numpy(ids), "attention_mask": torch.ones(1, 2, dtype=torch.long)}).pooled

    def bucket(*chars):  # the hash the encoder documents, written out for one n-gram
        code = len(chars)
        for c in chars:
            code = (code * 1_000_003 + int(c)) % 64
        return code

    a, b = ids[0]
    rows = encoder.embed.weight[[bucket(a), bucket(b), bucket(a, b)]]  # "a", "b", "ab"
    assert torch.allclose(pooled[0], rows.mean(0), atol=1e-6)


def test_hadamard_meets_the_fusion_contract():
    check_fusion("hadamard", text_dim=12, image_dim=20, num_classes=3, dim=8)


def test_geometric_mean_meets_the_combiner_contract():
    check_combiner("geometric_mean", num_members=3, num_classes=4, temperature=2.0)


def test_geometric_mean_lets_a_confident_member_veto_a_class():
    combiner = check_combiner("geometric_mean", num_members=2, num_classes=3, export_onnx=False)
    probs = np.array([[[0.89, 0.10, 0.01], [0.001, 0.3, 0.699]]], dtype=np.float32)  # (1, 2, 3)
    expected = np.sqrt(probs.prod(axis=1))  # geometric mean per class, then renormalised
    assert np.allclose(combiner.predict(probs), expected / expected.sum(), atol=1e-6)
    # the second member all but rules class 0 out: the arithmetic mean still picks it, the geometric one does not
    assert probs.mean(axis=1).argmax() == 0 and combiner.predict(probs).argmax() == 1


def test_colour_match_is_a_valid_dataset_with_both_answers_per_image():
    data = check_dataset("colour-match", images=60, image_size=8)
    texts = {}
    for sample in data.samples:
        texts.setdefault(sample.group, []).append(sample.labels["match"])
    assert all(sorted(labels) == ["match", "no_match"] for labels in texts.values())
