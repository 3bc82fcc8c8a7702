"""Image-conditioned tagging: the picture decides an entity's type, so only a tagger that reads it can learn it.

Every sentence names one entity from a pool of made-up words ("i saw zorbel today"); whether that word
is a PER or a LOC is decided by the sentence's picture alone (reddish: PER, bluish: LOC; no picture:
PER). A text-only tagger finds the span but can only guess the type (about half the entities); a
tagger whose tokens are conditioned on the image (FiLM or cross-attention) learns the type too.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["zorbel", "quant", "mirova", "tesk", "belun", "farro", "gilm", "hovat", "kresh", "lumo", "nadir", "oskel"]
TEMPLATES = [["i", "saw", "{}", "today"], ["we", "met", "{}", "there"], ["{}", "was", "great"],
             ["photos", "of", "{}", "again"], ["look", "at", "{}"], ["they", "called", "{}", "yesterday"]]

REGISTRY = textwrap.dedent("""
    models:
      pic_text:
        description: text-only tagger (cannot see the picture)
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
      pic_film:
        description: the picture scales and shifts every token (FiLM)
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        image: {{encoder: small_cnn, dim: 16, image_size: 16, channels: [8, 16]}}
        fusion: {{name: film, dim: 32}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
      pic_xattn:
        description: each token attends to the picture's grid cells
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 3, max_length: 48}}
        image: {{encoder: small_cnn, dim: 16, image_size: 16, channels: [8, 16]}}
        fusion: {{name: cross_attention, dim: 32, heads: 2, dropout: 0.0}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 10, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32, seed: 1}}
      pic_gated:
        description: gated has no token form
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        fusion: gated
        task: {{dataset: {data}, type: tokens}}
      pic_nofusion:
        description: an image without a fusion
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        task: {{dataset: {data}, type: tokens}}
      pic_film_condition:
        description: the classification FiLM's condition param is not a token FiLM param
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        fusion: {{name: film, condition: text}}
        task: {{dataset: {data}, type: tokens}}
""")


def picture(path: Path, colour: str, rng: np.random.Generator) -> None:
    from PIL import Image

    base = {"red": (200, 40, 40), "blue": (40, 60, 200)}[colour]
    noise = rng.integers(-40, 40, (16, 16, 3))
    Image.fromarray(np.clip(np.array(base) + noise, 0, 255).astype(np.uint8)).save(path)


def make_dataset(folder: Path, seed: int = 0, sizes=(("train", 240), ("val", 60), ("test", 60))) -> None:
    """manifest.jsonl rows whose one entity's type is the picture's: red PER, blue LOC, none PER."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True)
    pictures = {colour: [] for colour in ("red", "blue")}
    for colour, paths in pictures.items():
        for i in range(12):
            path = f"img/{colour}{i}.png"
            picture(folder / path, colour, nprng)
            paths.append(path)
    rows = []
    for split, n in sizes:
        for k in range(n):
            template = rng.choice(TEMPLATES)
            words = [rng.choice(WORDS) if t == "{}" else t for t in template]
            colour = None if k % 10 == 9 else rng.choice(["red", "blue"])  # one sentence in ten has no picture
            kind = "LOC" if colour == "blue" else "PER"
            tags = [f"B-{kind}" if t == "{}" else "O" for t in template]
            row = {"id": f"{split}-{k}", "tokens": words, "tags": tags, "split": split}
            if colour:
                row["image"] = rng.choice(pictures[colour])
            rows.append(json.dumps(row))
    (folder / "manifest.jsonl").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    root = tmp_path_factory.mktemp("pics")
    make_dataset(root / "pics")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY.format(data=root / "pics"))
    return SimpleNamespace(root=root, data=root / "pics", registry=registry, runs=root / "runs")


@pytest.fixture(scope="module")
def trained(pics):
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    return {name: train(resolve_spec(name, str(pics.registry)), Options(out=pics.runs, quiet=True))
            for name in ("pic_text", "pic_film", "pic_xattn")}


def test_validation_names_the_fusions_that_support_tokens(pics):
    from mmzoo.zoo.registry import load_registry

    registry = load_registry(pics.registry)
    assert registry.get("pic_film").ok and registry.get("pic_xattn").ok
    assert registry.get("pic_film").spec["fusion"] == {"name": "film", "dim": 32}  # the token form's params
    gated = [str(p) for p in registry.get("pic_gated").problems]
    assert len(gated) == 1 and "registry.yaml:" in gated[0], gated
    assert ("model 'pic_gated': fusion 'gated' does not support token models" in gated[0]
            and "fusions that do: cross_attention, film" in gated[0])
    nofusion = " ".join(str(p) for p in registry.get("pic_nofusion").problems)
    assert "needs a 'fusion' (fusions that support token models: cross_attention, film)" in nofusion
    condition = " ".join(str(p) for p in registry.get("pic_film_condition").problems)
    assert "unknown key 'condition'" in condition


def test_only_the_image_conditioned_taggers_learn_the_type(trained):
    text = trained["pic_text"].metrics["test"]["f1"]
    for name in ("pic_film", "pic_xattn"):
        conditioned = trained[name].metrics["test"]
        print(f"{name}: test entity F1 {conditioned['f1']:.4f} vs text-only {text:.4f}")
        assert conditioned["f1"] >= 0.95, conditioned
        assert set(conditioned["per_type"]) == {"PER", "LOC"}
    # the span is easy, the type is a coin flip: a text-only tagger is right on about half the entities
    assert 0.3 <= text <= 0.75, trained["pic_text"].metrics["test"]


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


def test_a_changed_picture_changes_the_fingerprint(pics, tmp_path):
    import shutil

    from mmzoo.data.tokens import load_token_folder

    copy = tmp_path / "copy"
    shutil.copytree(pics.data, copy)
    before = load_token_folder(copy).fingerprint
    picture(copy / "img" / "red0.png", "blue", np.random.default_rng(5))
    assert load_token_folder(copy).fingerprint != before


def test_an_image_model_on_text_only_data_is_refused(pics, tmp_path):
    from mmzoo.errors import TrainingError
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    plain = tmp_path / "plain"
    plain.mkdir()
    rows = [json.loads(line) for line in (pics.data / "manifest.jsonl").read_text().splitlines()]
    (plain / "manifest.jsonl").write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "image"})
                                                    for r in rows) + "\n")
    spec = resolve_spec("pic_film", str(pics.registry))
    spec["task"]["dataset"] = str(plain)
    with pytest.raises(TrainingError, match="no sentence of dataset 'plain' has one"):
        train(spec, Options(out=tmp_path / "runs", quiet=True))


@pytest.fixture(scope="module")
def ensembled(trained, pics):
    from mmzoo.tokens.ensemble import build_token_ensemble

    members = [trained["pic_film"], trained["pic_xattn"]]
    spec = {"name": "pic_mean", "kind": "ensemble", "recipe": {"runs": [r.name for r in members]},
            "combiner": {"name": "mean"}}
    return build_token_ensemble(spec, members, root=pics.runs)


def test_an_ensemble_of_image_conditioned_taggers(ensembled):
    assert ensembled.metrics["combiner"] == "mean" and ensembled.metrics["test"]["f1"] >= 0.95


@pytest.fixture(scope="module")
def exported(trained, ensembled, pics):
    from mmzoo.tokens.export import export_token_run

    return {"film": export_token_run(trained["pic_film"], pics.root / "exports"),
            "text": export_token_run(trained["pic_text"], pics.root / "exports"),
            "ensemble": export_token_run(ensembled, pics.root / "exports")}


def test_export_reads_the_picture_with_parity(exported):
    from mmzoo.onnx import metadata as md

    for key in ("film", "ensemble"):
        result = exported[key]
        figures = result["parity"]["fp32"]
        assert result["reads_images"] and result["inputs"][-2:] == ["pixel_values", "has_image"]
        assert figures["sentences"] == 60 and figures["onnx_f1"] == figures["torch_f1"] >= 0.95
        assert figures["max_abs_diff"] < 1e-4
    meta = md.read(exported["film"]["path"])
    assert [p["modality"] for p in meta["preprocessing"]] == ["text", "image"]
    assert meta["preprocessing"][1]["config"]["crop"] == 16 and "no-image" in meta["inputs"][-1]["description"]
    assert not exported["text"]["reads_images"] and exported["text"]["inputs"] == ["input_ids", "attention_mask",
                                                                                   "word_positions"]


def test_the_runtime_types_the_entity_by_the_picture(exported, pics):
    from mmzoo.tokens.runtime import TokenPredictor

    predictor = TokenPredictor(exported["ensemble"]["path"], device="cpu")
    words = ["i", "saw", "zorbel", "today"]
    red, blue = pics.data / "img" / "red3.png", pics.data / "img" / "blue3.png"
    probs = predictor.word_probs([words, words, words], [str(red), str(blue), None])
    labels = predictor.labels
    assert [labels[int(p[2].argmax())] for p in probs] == ["B-PER", "B-LOC", "B-PER"]
    assert all(labels[int(p[i].argmax())] == "O" for p in probs for i in (0, 1, 3))


def test_predict_with_an_image_without_torch(exported, pics):
    path = exported["film"]["path"]
    blue = str(pics.data / "img" / "blue1.png")
    script = textwrap.dedent(f"""
        import sys
        from mmzoo.cli import main
        code = main(["predict", {path!r}, "--text", "we met quant there", "--image", {blue!r}, "--json"])
        print("LOADED", [m for m in ("torch", "transformers", "timm") if m in sys.modules], code)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "LOADED [] 0"
    report = json.loads(res.stdout[:res.stdout.index("\n}\n") + 2])
    assert [(e["type"], e["text"]) for e in report["entities"]] == [("LOC", "quant")]


def test_predict_names_a_missing_picture_and_refuses_one_for_text_only(exported, capsys):
    from mmzoo.cli import main

    assert main(["predict", exported["film"]["path"], "--text", "look at tesk", "--image", "nowhere.png"]) == 1
    assert "image nowhere.png not found" in capsys.readouterr().err
    assert main(["predict", exported["text"]["path"], "--text", "look at tesk", "--image", "nowhere.png"]) == 1
    assert "text-only token (NER) model" in capsys.readouterr().err
    assert main(["predict", exported["film"]["path"], "--text", "look at tesk"]) == 0
    captured = capsys.readouterr()
    assert "tags as for a sentence with no picture" in captured.err and "PER" in captured.out


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


def test_data_check_counts_the_sentences_with_a_picture(pics, capsys):
    from mmzoo.cli import main

    assert main(["data", "check", str(pics.data)]) == 0
    assert "324 of 360 sentences have an image" in capsys.readouterr().out


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


def test_a_cancelled_image_tagger_resumes_to_the_same_result(pics):
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Cancelled, Options, train

    spec = resolve_spec("pic_film", str(pics.registry))
    spec["train"]["epochs"] = 3
    out = pics.root / "resume"
    whole = train(spec, Options(out=out, quiet=True, run_name="whole"))
    calls = {"n": 0}

    def stop() -> bool:  # 15 steps per epoch: cancel during the second
        calls["n"] += 1
        return calls["n"] > 20

    with pytest.raises(Cancelled):
        train(spec, Options(out=out, quiet=True, run_name="cut", should_stop=stop))
    resumed = train(None, Options(out=out, quiet=True, resume=str(next((out / "cut").iterdir()))))
    assert resumed.metrics["val"] == whole.metrics["val"] and resumed.metrics["test"] == whole.metrics["test"]


def test_a_frozen_image_encoder_encodes_each_picture_once_and_exports_with_parity(pics, monkeypatch):
    from mmzoo.encoders.small_cnn import SmallCNNEncoder
    from mmzoo.tokens.export import export_token_run
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    encoded = []
    forward = SmallCNNEncoder.forward

    def counting(self, inputs):
        encoded.append(len(inputs["pixel_values"]))
        return forward(self, inputs)

    monkeypatch.setattr(SmallCNNEncoder, "forward", counting)
    spec = resolve_spec("pic_film", str(pics.registry))
    spec["image"]["freeze"] = True  # a random frozen CNN: its features still tell reddish from bluish, roughly
    run = train(spec, Options(out=pics.root / "frozen", quiet=True))
    # 24 pictures and the zero picture, once each, over 10 epochs of 15 steps and 12 scorings of val or test
    assert sum(encoded) == 25, encoded
    assert run.metrics["test"]["f1"] >= 0.7, run.metrics["test"]  # text alone: about 0.5 (0.80 measured)
    figures = export_token_run(run, pics.root / "frozen-export")["parity"]["fp32"]  # the graph encodes pixels
    assert figures["onnx_f1"] == figures["torch_f1"] and figures["max_abs_diff"] < 1e-4


def test_eval_and_compare_show_the_image_conditioned_runs(trained, capsys):
    from mmzoo.cli import main

    assert main(["compare", *(str(r.path) for r in trained.values())]) == 0
    out = capsys.readouterr().out
    assert "tokens+image:film" in out and "tokens+image:cross_attention" in out
    assert main(["eval", str(trained["pic_xattn"].path)]) == 0
    assert "LOC" in capsys.readouterr().out
