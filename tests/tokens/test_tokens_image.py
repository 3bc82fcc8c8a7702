"""Image-conditioned tagging: the picture decides an entity's type, so only a tagger that reads it can learn it.

The toy data (tests/support/pictures.py): every sentence names one entity from a pool of made-up words
("i saw zorbel today"), a PER or a LOC by the sentence's picture alone (reddish: PER, bluish: LOC; none:
PER). A text-only tagger finds the span but can only guess the type (about half the entities); a
tagger whose tokens are conditioned on the image (FiLM or cross-attention) learns the type too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.pictures import make_pics, picture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    return make_pics(tmp_path_factory.mktemp("pics"))


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


def test_data_check_counts_the_sentences_with_a_picture(pics, capsys):
    from mmzoo.cli import main

    assert main(["data", "check", str(pics.data)]) == 0
    assert "324 of 360 sentences have an image" in capsys.readouterr().out


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

