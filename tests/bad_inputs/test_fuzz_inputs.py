"""Property tests: whatever a registry file or a manifest holds, the answer is a valid spec or clean problems.

Never a traceback, and within bounded time (hypothesis' deadline) and memory (tracemalloc).
"""

from __future__ import annotations

import json
import string
import tracemalloc

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmzoo.data.manifest import Problem, check_folder
from mmzoo.errors import MmzooError
from mmzoo.zoo.registry import load_registry

FAST = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
MEMORY = 64 * 2**20

KEYS = st.sampled_from(["models", "ensembles", "text", "image", "fusion", "train", "task", "head", "encoder",
                        "name", "members", "seeds", "n", "model", "epochs", "lr", "batch_size", "dataset",
                        "combiner", "freeze", "dim", "../x", "<<", "m", "e"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["small_text", "small_cnn", "concat", "mean",
                                                           "digits-match", "m", ".nan", "-3"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=4)
NOISE = st.text(alphabet=string.printable + "&*!|>%@`\u00e9\ufeff\x00", max_size=200)


def _check_registry(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        registry = load_registry(files=[path])  # problems are collected, never raised
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY
    for problem in registry.all_problems():
        assert problem.file == str(path) and problem.line >= 1 and problem.message
    for entry in registry.entries.values():
        assert (entry.spec is None) == bool(entry.problems)
        if entry.spec is not None:
            json.dumps(entry.spec)  # a valid spec is plain data


@FAST
@given(doc=DOCUMENTS)
def test_registry_structures_give_specs_or_problems(tmp_path, doc):
    _check_registry(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())


@FAST
@given(doc=DOCUMENTS, noise=NOISE, at=st.integers(0, 10_000))
def test_mangled_registry_text_gives_specs_or_problems(tmp_path, doc, noise, at):
    text = yaml.safe_dump(doc, allow_unicode=True)
    at %= len(text) + 1
    _check_registry(tmp_path, (text[:at] + noise + text[at:]).encode("utf-8", "surrogatepass"))


@FAST
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_registry_give_problems(tmp_path, raw):
    _check_registry(tmp_path, raw)


ROW_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS,
                                                                               max_size=3))
ROWS = st.lists(st.dictionaries(st.sampled_from(["text", "image", "label", "id", "split", "x"]), ROW_VALUES,
                                max_size=6), max_size=8)


def _check_manifest(folder, name: str, data: bytes) -> None:
    for old in folder.glob("manifest.*"):
        old.unlink()
    (folder / name).write_bytes(data)
    tracemalloc.start()
    try:
        problems = check_folder(folder)
    except MmzooError:  # a whole-folder refusal is a clean answer too
        problems = []
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY
    assert all(isinstance(p, Problem) and p.message for p in problems)


@FAST
@given(rows=ROWS, noise=NOISE)
def test_manifest_rows_give_clean_problems(tmp_path_factory, rows, noise):
    folder = tmp_path_factory.mktemp("ds")
    lines = [json.dumps(r) for r in rows] + [noise]
    _check_manifest(folder, "manifest.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass"))


@FAST
@given(raw=st.binary(max_size=400), csv=st.booleans())
def test_arbitrary_bytes_as_a_manifest_give_clean_problems(tmp_path_factory, raw, csv):
    folder = tmp_path_factory.mktemp("ds")
    header = b"text,image,label\n" if csv else b""
    _check_manifest(folder, "manifest.csv" if csv else "manifest.jsonl", header + raw)


NUMBERS = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=4))


@FAST
@given(train=st.dictionaries(st.sampled_from(["epochs", "lr", "weight_decay", "batch_size", "warmup", "grad_clip",
                                              "patience", "aux_text", "aux_image", "seed"]), NUMBERS, max_size=5),
       head=st.dictionaries(st.sampled_from(["hidden", "dropout"]), NUMBERS, max_size=2))
def test_a_valid_spec_always_satisfies_every_declared_range(tmp_path, train, head):
    from mmzoo.zoo import schema

    doc = {"models": {"m": {"text": "small_text", "task": {"dataset": "digits-match"}, "train": train, "head": head}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    entry = load_registry(files=[path]).get("m")
    if entry.spec is None:
        assert entry.problems and all(p.line >= 1 for p in entry.problems)
        return
    for section in ("train", "head"):
        for param in schema.SECTIONS[section]:
            assert param.check(entry.spec[section][param.name]) is None, (section, param.name)
