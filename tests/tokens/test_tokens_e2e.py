"""Token tagging end to end on a toy task: tiny taggers learn it, ensemble, export with parity, predict."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hugo"]
PLACES = [["paris"], ["rome"], ["oslo"], ["lima"], ["new", "york"], ["san", "jose"]]
FILLERS = ["the", "a", "went", "to", "saw", "with", "and", "today", "we", "met", "in", "from"]

REGISTRY = textwrap.dedent("""
    models:
      toy_tagger:
        description: tiny character CNN tagger for the token tests
        text: {{encoder: small_text, dim: 32, layers: 2, max_length: 48}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 12, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
      toy_tagger_b:
        description: the toy tagger with another seed and kernel
        text: {{encoder: small_text, dim: 32, layers: 2, kernel_size: 7, max_length: 48}}
        task: {{dataset: {data}, type: tokens}}
        train: {{epochs: 12, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32, seed: 1}}
      bad_tagger:
        description: a token model that also names an image encoder
        text: {{encoder: small_text}}
        image: {{encoder: small_cnn}}
        fusion: concat
        task: {{dataset: wnut17, type: tokens}}
      bad_classifier:
        description: a classifier on a token dataset
        text: {{encoder: small_text}}
        task: {{dataset: wnut17}}
    ensembles:
      toy_pair:
        description: the two toy taggers, averaged per word
        members: [toy_tagger, toy_tagger_b]
        combiner: mean
      toy_stack:
        description: stacking is refused for token models
        members: [toy_tagger, toy_tagger_b]
        combiner: stacking
""")


def _sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for _ in range(rng.randint(2, 6)):
        roll = rng.random()
        if roll < 0.25:
            tokens.append(rng.choice(NAMES))
            tags.append("B-PER")
        elif roll < 0.45:
            place = rng.choice(PLACES)
            tokens += place
            tags += ["B-LOC"] + ["I-LOC"] * (len(place) - 1)
        else:
            tokens.append(rng.choice(FILLERS))
            tags.append("O")
    return tokens, tags


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy token dataset (manifest.jsonl) and a registry naming two tiny taggers on it."""
    root = tmp_path_factory.mktemp("tokens")
    data = root / "toy"
    data.mkdir()
    rng = random.Random(0)
    rows = []
    for split, n in (("train", 300), ("val", 60), ("test", 60)):
        for _ in range(n):
            tokens, tags = _sentence(rng)
            rows.append(json.dumps({"tokens": tokens, "tags": tags, "split": split}))
    (data / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY.format(data=data))
    return SimpleNamespace(root=root, data=data, registry=registry, runs=root / "runs")


@pytest.fixture(scope="module")
def trained(toy):
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    return [train(resolve_spec(name, str(toy.registry)), Options(out=toy.runs, quiet=True))
            for name in ("toy_tagger", "toy_tagger_b")]


def test_registry_validates_token_models(toy):
    from mmzoo.zoo.registry import load_registry

    registry = load_registry(toy.registry)
    assert registry.get("toy_tagger").ok and registry.get("toy_tagger").spec["text"]["freeze"] is False
    bad = " ".join(str(p) for p in registry.get("bad_tagger").problems)
    assert "fusion 'concat' does not support token models" in bad and "registry.yaml:" in bad
    assert "fusions that do: cross_attention, film" in bad
    wrong = " ".join(str(p) for p in registry.get("bad_classifier").problems)
    assert "add `type: tokens`" in wrong
    stack = " ".join(str(p) for p in registry.get("toy_stack").problems)
    assert "combiner 'stacking' does not apply to token models" in stack


def test_tiny_tagger_learns_the_toy_task(trained):
    for run in trained:
        m = run.metrics
        assert m["task"] == "tokens" and m["test"]["f1"] >= 0.9, m["test"]
        assert set(m["test"]["per_type"]) == {"PER", "LOC"}


def test_eval_and_compare_show_the_per_type_table(trained, toy, capsys):
    from mmzoo.cli import main

    assert main(["eval", str(trained[0].path)]) == 0
    out = capsys.readouterr().out
    assert "entity-level exact match" in out and "micro avg" in out and "LOC" in out
    assert main(["compare", str(trained[0].path), str(trained[1].path)]) == 0
    out = capsys.readouterr().out
    assert "test F1" in out and "PER" in out


@pytest.fixture(scope="module")
def ensembled(trained, toy):
    from mmzoo.tokens.ensemble import build_token_ensemble

    out = {}
    for combiner in ("mean", "weighted", "vote"):
        spec = {"name": f"toy_{combiner}", "kind": "ensemble", "recipe": {"runs": [r.name for r in trained]},
                "combiner": {"name": combiner}}
        out[combiner] = build_token_ensemble(spec, trained, root=toy.runs)
    return out


def test_token_ensembles_combine_per_word(ensembled, trained):
    for combiner, run in ensembled.items():
        m = run.metrics
        assert m["combiner"] == combiner and m["test"]["f1"] >= 0.9
        assert abs(sum(m["weights"]) - 1) < 1e-6
        assert set(m["members"]) == {r.name for r in trained}


def test_unsupported_combiners_are_refused(trained, toy, capsys):
    from mmzoo.cli import main

    assert main(["ensemble", "--runs", str(trained[0].path), str(trained[1].path), "--combiner", "stacking",
                 "--out", str(toy.runs)]) == 1
    assert "does not apply to token runs" in capsys.readouterr().err
    assert main(["ensemble", "--runs", str(trained[0].path), str(trained[1].path), "--combiner", "vote",
                 "--out", str(toy.runs)]) == 0
    out = capsys.readouterr().out
    assert "combiner vote" in out and "micro avg" in out


@pytest.fixture(scope="module")
def exported(ensembled, trained, toy):
    from mmzoo.tokens.export import export_token_run

    return {"model": export_token_run(trained[0], toy.root / "exports"),
            "vote": export_token_run(ensembled["vote"], toy.root / "exports"),
            "weighted": export_token_run(ensembled["weighted"], toy.root / "exports")}


def test_export_parity_on_val_entity_f1(exported):
    for result in exported.values():
        figures = result["parity"]["fp32"]
        assert figures["onnx_f1"] == figures["torch_f1"] and figures["max_abs_diff"] < 1e-4
        assert figures["sentences"] == 60


def test_export_metadata_describes_text_to_spans(exported):
    from mmzoo.onnx import metadata as md

    meta = md.read(exported["vote"]["path"])
    assert meta["task"] == "tokens" and meta["kind"] == "ensemble" and meta["combiner"] == "vote"
    assert meta["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert meta["tokens"]["scheme"] == "BIO" and "first" in meta["tokens"]["word_piece"]
    assert meta["tokens"]["word_split"]["pattern"] and "tokenizer_json" in meta["preprocessing"][0]["config"]


def test_export_carries_the_decoding_chosen_on_val_and_the_runtime_follows_it(exported, trained, tmp_path):
    import onnx

    from mmzoo.errors import ExportError
    from mmzoo.onnx import metadata as md
    from mmzoo.tokens.runtime import TokenPredictor

    path = exported["model"]["path"]
    meta = md.read(path)
    assert meta["tokens"]["decoder"] == trained[0].metrics["decoder"] in ("viterbi", "argmax")
    assert TokenPredictor(path, device="cpu").decoder == meta["tokens"]["decoder"]
    for decoder, expect in ((None, "argmax"), ("beam", None)):  # a file from before the choice; an unknown one
        model = onnx.load(str(path))
        changed = {**meta, "tokens": {k: v for k, v in meta["tokens"].items() if k != "decoder"}}
        if decoder:
            changed["tokens"]["decoder"] = decoder
        md.set_props(model, changed)
        target = tmp_path / f"{decoder}.onnx"
        onnx.save(model, str(target))
        if expect:
            assert TokenPredictor(target, device="cpu").decoder == expect
        else:
            with pytest.raises(ExportError, match="decoder 'beam'"):
                TokenPredictor(target, device="cpu")


def test_predict_prints_entities_without_torch(exported):
    path = exported["weighted"]["path"]
    script = textwrap.dedent(f"""
        import sys
        from mmzoo.cli import main
        code = main(["predict", {path!r}, "--text", "today alice went to new york", "--json"])
        main(["predict", {path!r}, "--text", "bob met carol in oslo"])
        print("LOADED", [m for m in ("torch", "transformers", "timm") if m in sys.modules], code)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "LOADED [] 0"
    report = json.loads(res.stdout[:res.stdout.index("\n}\n") + 2])
    got = [(e["type"], e["text"], e["start"], e["end"]) for e in report["entities"]]
    assert got == [("PER", "alice", 6, 11), ("LOC", "new york", 20, 28)]
    assert all(0 < e["score"] <= 1 for e in report["entities"])
    table = res.stdout[res.stdout.index("\n}\n") + 3:]
    assert "PER" in table and "carol" in table and "oslo" in table


def test_predict_refuses_images_for_token_models(exported, capsys):
    from mmzoo.cli import main

    assert main(["predict", exported["model"]["path"], "--text", "alice", "--image", "x.png"]) == 1
    assert "token (NER) model" in capsys.readouterr().err


def test_demo_token_part_reuses_runs_and_prints_the_entity_table(trained, toy, monkeypatch):
    from mmzoo.cli import demo, demo_tokens

    monkeypatch.setattr(demo_tokens, "TOKEN_MODELS", ("toy_tagger", "toy_tagger_b"))
    args = SimpleNamespace(registry=str(toy.registry), out=toy.runs, retrain=False, device="cpu")
    report = demo_tokens.token_demo(args, demo.train_or_reuse)
    assert [r["run"] for r in report["rows"][:2]] == [r.name for r in trained]  # reused, not retrained
    assert report["chosen"]["combiner"]["name"] in ("mean", "weighted", "vote")
    text = demo_tokens.render_token_demo(report)
    assert "chosen on val" in text and "micro avg" in text and "PER" in text


def test_registry_token_ensemble_reuses_members(trained, toy, capsys):
    from mmzoo.cli import main

    assert main(["--registry", str(toy.registry), "ensemble", "toy_pair", "--combiner", "weighted", "--json",
                 "--out", str(toy.runs)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "tokens" and report["combiner"]["name"] == "weighted"
    assert all(m["reused"] for m in report["members"]) and report["test"]["f1"] >= 0.9


def test_cancelled_token_run_resumes_to_the_same_result(toy):
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Cancelled, Options, train

    spec = resolve_spec("toy_tagger", str(toy.registry))
    spec["train"]["epochs"] = 3
    whole = train(spec, Options(out=toy.root / "resume", quiet=True, run_name="whole"))
    calls = {"n": 0}

    def stop() -> bool:  # cancel during the second epoch (after 19 + 1 steps of 19 per epoch)
        calls["n"] += 1
        return calls["n"] > 20

    with pytest.raises(Cancelled):
        train(spec, Options(out=toy.root / "resume", quiet=True, run_name="cut", should_stop=stop))
    cut = next((toy.root / "resume" / "cut").iterdir())
    resumed = train(None, Options(out=toy.root / "resume", quiet=True, resume=str(cut)))
    assert resumed.metrics["val"] == whole.metrics["val"] and resumed.metrics["test"] == whole.metrics["test"]


def test_freeze_embeddings_keeps_the_word_table_and_trains_the_rest(toy, tmp_path):
    import torch

    from mmzoo.runs.folders import Run
    from mmzoo.tokens.model import create_tagger
    from mmzoo.train.checkpoint import load_run_model
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, seed_everything, train

    spec = resolve_spec("toy_tagger", str(toy.registry))
    spec["train"].update(epochs=2, freeze_embeddings=True)
    run = train(spec, Options(out=tmp_path, quiet=True))
    seed_everything(spec["train"]["seed"])  # as the trainer does before building: the same initial weights
    initial = dict(create_tagger(spec, Run(run.path).spec["data"]["classes"]).named_parameters())
    trained = dict(load_run_model(Run(run.path)).named_parameters())
    tables = [n for n in trained if "embed" in n]
    assert tables and all(torch.equal(trained[n], initial[n]) for n in tables)
    assert any(not torch.equal(trained[n], initial[n]) for n in trained if n not in tables)
    assert run.run_spec.model["train"]["freeze_embeddings"] is True


def test_a_spec_without_freeze_embeddings_reuses_runs_made_before_it_existed():
    from mmzoo.runs.spec import _comparable

    old = {"name": "m", "train": {"lr": 0.001, "encoder_lr": 0.0001}}
    assert _comparable({**old, "train": {**old["train"], "freeze_embeddings": False}}) == _comparable(old)
    assert _comparable({**old, "train": {**old["train"], "freeze_embeddings": True}}) != _comparable(old)


def test_classifier_only_verbs_refuse_token_runs_and_data_with_a_message(trained, ensembled, toy, capsys):
    """bench, distill and fit are for classifiers: each refuses token input by name (they crashed before)."""
    from mmzoo.cli import main

    cases = [(["bench", str(trained[0].path)], "token exports are fp32 only"),
             (["distill", str(ensembled["mean"].path), "--student", "toy_tagger", "--out", str(toy.runs)],
              "is a token (NER) ensemble"),
             (["fit", str(toy.data), "--preset", "fast", "--out", str(toy.root / "fit-runs")],
              "is a token (NER) dataset")]
    for argv, message in cases:
        assert main(argv) == 1, argv
        captured = capsys.readouterr().err
        assert message in captured and "internal error" not in captured, captured
    assert main(["data", "check", "wnut17"]) == 0  # a registered token dataset, by name
    assert "ok (token dataset, types: corporation, creative-work" in capsys.readouterr().out
