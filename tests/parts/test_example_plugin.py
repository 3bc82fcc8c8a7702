"""The tutorial's plugin, plugins/mmzoo-example, installed like any third-party package and used end to end.

Each hook has a test named ``test_<hook>_...`` that loads the plugin through mmzoo's real
plugin loader and checks what that hook registered; test_plugin_docs.py insists on it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr
from importlib import metadata
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch

from mmzoo.encoders.base import Features
from mmzoo.errors import PluginError
from mmzoo.zoo.parts import Part
from mmzoo.zoo.plugins import load_zoo

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = ROOT / "plugins" / "mmzoo-example"
REGISTRY = PLUGIN / "registry.yaml"
OWN_TESTS = PLUGIN / "tests" / "test_parts.py"
FAST = ["--batch-size", "128"]


@pytest.fixture(autouse=True, scope="module")
def installed():
    """Fail every test with the fix when the plugin is not installed (editable, from this checkout)."""
    eps = metadata.entry_points(group="mmzoo", name="example")
    if not eps:
        pytest.fail("the mmzoo-example plugin is not installed: run `make` (it installs every plugins/*/ package "
                    "editable) or `.venv/bin/pip install -e plugins/mmzoo-example`", pytrace=False)
    ep = next(iter(eps))
    spec = importlib.util.find_spec("mmzoo_example")
    if ep.dist.name != "mmzoo-example" or spec is None or not Path(spec.origin).is_relative_to(PLUGIN):
        pytest.fail(f"mmzoo_example is installed from {spec and spec.origin}, not {PLUGIN}: reinstall it with "
                    "`.venv/bin/pip install -e plugins/mmzoo-example`", pytrace=False)


def load_example(monkeypatch) -> tuple:
    """The zoo with only the example plugin, loaded by mmzoo's own loader, and its hook-call trace."""
    monkeypatch.setenv("MMZOO_PLUGINS", "example")
    monkeypatch.setenv("MMZOO_TRACE_PLUGINS", "1")
    trace = StringIO()
    with redirect_stderr(trace):
        zoo = load_zoo()
    (info,) = zoo.plugins
    assert info.name == "example" and info.package == "mmzoo-example" and info.ok, info.errors
    return zoo, trace.getvalue()


def registered_by(monkeypatch, hook: str, kind: str) -> Part:
    """Call ``hook`` through the loader; return the one part it registered, checked against its constructor."""
    from mmzoo.testing import check_params

    zoo, trace = load_example(monkeypatch)
    assert f"mmzoo: trace: example.{hook}(register)" in trace
    (part,) = zoo.parts[kind].values()
    assert part.plugin == "example" and isinstance(part.factory, str)
    check_params(part)
    return part


def test_register_encoders_adds_the_char_ngrams_text_encoder(monkeypatch):
    part = registered_by(monkeypatch, "register_encoders", "encoder")
    assert (part.name, part.modality) == ("char_ngrams", "text")
    assert part.defaults() == {"dim": 64, "n": 3, "buckets": 4096, "max_length": 64}
    encoder = part.create()
    out = encoder({k: torch.from_numpy(v) for k, v in encoder.preprocessor(["seven", "a 7"]).items()})
    assert out.pooled.shape == (2, 64) and out.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]


def test_register_fusions_adds_the_hadamard_fusion(monkeypatch):
    part = registered_by(monkeypatch, "register_fusions", "fusion")
    assert part.name == "hadamard" and [p.name for p in part.params] == ["dim"]
    from mmzoo.plugin import mlp_head

    fusion = part.create(6, 10, 3, mlp_head(0, 0.0), dim=4)
    text = Features(torch.randn(2, 6), torch.zeros(2, 1, 6), torch.ones(2, 1, dtype=torch.bool))
    zero_image = Features(torch.zeros(2, 10), torch.zeros(2, 1, 10), torch.ones(2, 1, dtype=torch.bool))
    fusion.image_proj.bias.data.zero_()
    # a zero image vector zeroes the product, so the logits are the head's bias whatever the text says
    assert torch.allclose(fusion(text, zero_image), fusion.head[0].bias.expand(2, 3))


def test_register_combiners_adds_the_geometric_mean_combiner(monkeypatch):
    part = registered_by(monkeypatch, "register_combiners", "combiner")
    assert part.name == "geometric_mean" and part.defaults() == {"temperature": 1.0}
    combiner = part.create(2, 3)
    assert not combiner.requires_fit and combiner.config["params"] == {"temperature": 1.0}


def test_register_datasets_adds_the_colour_match_dataset(monkeypatch):
    part = registered_by(monkeypatch, "register_datasets", "dataset")
    assert part.name == "colour-match"
    data = part.create()
    assert len(data.samples) == 2 * 600 and data.classes() == ["no_match", "match"]
    assert {s.split for s in data.samples} == {"train", "val", "test"}
    assert part.create(seed=1).fingerprint != data.fingerprint


def test_hook_module_stays_torch_free_and_parts_show_in_mmzoo_list(run_cli):
    probe = subprocess.run([sys.executable, "-c", "import sys, mmzoo_example; print('torch' in sys.modules)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "False", probe.stderr
    rows = json.loads(run_cli("list", "--json").stdout)
    ours = {(r["kind"], r["name"]) for r in rows if r.get("plugin") == "example"}
    assert ours == {("encoder", "char_ngrams"), ("fusion", "hadamard"), ("combiner", "geometric_mean"),
                    ("dataset", "colour-match")}
    plugins = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").stdout)}
    assert plugins["example"]["errors"] == [] and plugins["example"]["version"] == "0.1.0"


def test_registry_entries_using_the_plugin_validate_and_bad_values_are_refused(run_cli, tmp_path):
    ok = run_cli("--registry", str(REGISTRY), "validate")
    assert ok.returncode == 0 and "ok (" in ok.stdout, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  broken:\n    text: {encoder: char_ngrams, n: 5, buckets: many}\n"
                   "    task: {dataset: colour-match}\n")
    refused = run_cli("--registry", str(bad), "validate")
    assert refused.returncode == 1
    assert "bad.yaml:3" in refused.stderr and "'n' must be one of 1, 2, 3, 4, got 5" in refused.stderr
    assert "'buckets' expected int, got str ('many')" in refused.stderr


def _own_tests() -> list[str]:
    tree = ast.parse(OWN_TESTS.read_text())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


@pytest.mark.parametrize("name", _own_tests())
def test_the_plugins_own_contract_tests_pass(name):
    """plugins/mmzoo-example/tests/test_parts.py, the tutorial's tests over mmzoo.testing, run here too."""
    spec = importlib.util.spec_from_file_location("mmzoo_example_own_tests", OWN_TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, name)()


def _breaches():
    """Example parts broken in one way each, and the words the contract check must answer with."""
    from mmzoo_example.parts import CharNgramEncoder, GeometricMeanCombiner, HadamardFusion
    from torch import nn

    from mmzoo.plugin import mlp_head

    class PaddingLeaks(CharNgramEncoder):
        def forward(self, inputs):
            out = super().forward(inputs)
            return Features(out.tokens.mean(1), out.tokens, out.mask)  # averages the padding in

    class DeadWeight(CharNgramEncoder):
        def __init__(self):
            super().__init__(dim=8, n=3, buckets=64, max_length=64)
            self.unused = nn.Linear(8, 8)

    class ReadsTokens(HadamardFusion):  # says uses_tokens = False, yet pools the tokens itself
        def forward(self, text, image):
            return super().forward(text._replace(pooled=text.tokens.mean(1)), image)

    class IgnoresImage(HadamardFusion):  # image weights still get gradients, but the image never matters
        def forward(self, text, image):
            return super().forward(text, image._replace(pooled=image.pooled.detach() * 0))

    class BatchCentred(HadamardFusion):  # centres logits over the batch in train mode: a hand-made BatchNorm
        def forward(self, text, image):
            logits = super().forward(text, image)
            return logits - logits.mean(0) if self.training else logits

    class Unnormalised(GeometricMeanCombiner):
        def forward(self, probs):
            return probs.clamp_min(1e-7).log().mean(dim=1)  # log-probabilities, not a distribution

    forgetful = GeometricMeanCombiner(3, 4, temperature=3.0)
    forgetful.params = {}  # as if __init__ kept temperature from Combiner.__init__: load rebuilds it at 1.0
    return [
        ("encoder", PaddingLeaks(dim=8, n=3, buckets=64, max_length=64), "alone and inside a padded batch"),
        ("encoder", DeadWeight(), r"no gradient reached 2 trainable parameter\(s\)"),
        ("fusion", ReadsTokens(6, 10, 3, mlp_head(8, 0.0), dim=4), "uses_tokens is False"),
        ("fusion", IgnoresImage(6, 10, 3, mlp_head(8, 0.0), dim=4), "do not depend on the image"),
        ("fusion", BatchCentred(6, 10, 3, mlp_head(8, 0.0), dim=4), "sample 0.s output depends on the other samples"),
        ("combiner", Unnormalised(3, 4, temperature=1.0), "probability distribution per sample"),
        ("combiner", forgetful, "rebuilt a different combiner"),
    ]


def test_contract_checks_reject_broken_variants_of_the_example_parts():
    from mmzoo import testing

    check = {"encoder": testing.check_encoder, "fusion": testing.check_fusion, "combiner": testing.check_combiner}
    for kind, broken, words in _breaches():
        with pytest.raises(PluginError, match=words):
            check[kind](broken, export_onnx=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, list[dict]]:
    """digits_ngrams (example encoder + fusion) trained twice by the CLI, in parallel, with different seeds."""
    root = tmp_path_factory.mktemp("example-runs")
    cmds = [[sys.executable, "-m", "mmzoo.cli", "--registry", str(REGISTRY), "train", "digits_ngrams", "--out",
             str(root), "--json", *FAST, *extra] for extra in (["--epochs", "2"], ["--epochs", "1", "--seed", "1"])]
    # one thread each: the two trainings share the machine's cores instead of fighting over them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    return root, [json.loads(out) for out, _ in outs]


def test_a_model_built_from_example_parts_trains_through_the_cli(two_runs):
    from mmzoo.runs.folders import Run

    _, reports = two_runs
    run = Run(Path(reports[0]["path"]))
    assert run.finished and run.spec["model"]["text"]["encoder"] == "char_ngrams"
    assert run.spec["model"]["fusion"] == {"name": "hadamard", "dim": 64}
    assert run.metrics["epochs"] == 2 and len(run.history()) == 2
    probs, labels, _ = run.probabilities("test")
    assert np.allclose(probs.sum(1), 1.0, atol=1e-4) and reports[0]["test"]["accuracy"] == pytest.approx(
        float((probs.argmax(1) == labels).mean()))


def test_geometric_mean_ensembles_the_two_runs_through_the_cli(run_cli, two_runs):
    from mmzoo.runs.folders import Run

    root, reports = two_runs
    res = run_cli("ensemble", "--runs", *(r["path"] for r in reports), "--combiner", "geometric_mean",
                  "--out", str(root), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["combiner"] == {"name": "geometric_mean", "temperature": 1.0}
    members = np.stack([Run(Path(r["path"])).probabilities("test")[0] for r in reports], axis=1)  # (N, 2, C)
    geometric = np.exp(np.log(np.clip(members, 1e-7, None)).mean(axis=1))
    combined = Run(Path(report["path"])).probabilities("test")[0]  # (N, C)
    assert np.allclose(combined, geometric / geometric.sum(1, keepdims=True), atol=1e-5)
