"""Bad registry files: every one is a line-numbered problem, bounded in time and memory, and writes nothing."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from badinput import assert_refused, run, workspace  # noqa: F401

LAUGHS = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
]) + "\n"

MODEL = "    text: {encoder: small_text, dim: 8}\n    task: {dataset: digits-match}\n"


def model_file(train: str = "", name: str = "m") -> str:
    return f"models:\n  {name}:\n{MODEL}" + (f"    train: {train}\n" if train else "")


def test_billion_laughs_is_refused_at_once(ws, capsys):
    path = ws.write("laughs.yaml", LAUGHS)
    ws.freeze()
    tracemalloc.start()
    started = time.perf_counter()
    result = run(capsys, "validate", path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_refused(result, "laughs.yaml:1:", "anchors and aliases")
    assert seconds < 5 and peak < 50 * 2**20, (seconds, peak)
    ws.assert_unchanged()


@pytest.mark.parametrize("text,line", [
    ("models:\n  a: &x\n    b: *x\n", 2),  # recursive alias
    ("base: &b {epochs: 3}\nmodels:\n  m:\n    train:\n      <<: *b\n", 1),  # merge key needs an alias
    ("models:\n  m:\n" + MODEL + "    train: {epochs: &e 3, patience: *e}\n", 5),
])
def test_anchors_and_aliases_are_refused_with_their_line(ws, capsys, text, line):
    path = ws.write("r.yaml", text)
    assert_refused(run(capsys, "validate", path), f"r.yaml:{line}:", "aliases")


@pytest.mark.parametrize("depth,says", [(60, "nested more than 50 levels"), (20000, "deep.yaml:1:")])
def test_deep_nesting_is_refused_without_recursion(ws, capsys, depth, says):
    path = ws.write("deep.yaml", "models: " + "[" * depth + "]" * depth + "\n")
    assert_refused(run(capsys, "validate", path), "deep.yaml:1:", says)


def test_duplicate_keys_name_both_lines(ws, capsys):
    path = ws.write("dup.yaml", model_file("\n      epochs: 3\n      epochs: 5") + model_file(name="m")[8:])
    result = run(capsys, "validate", path)
    assert_refused(result, "dup.yaml:7: duplicate key 'models.m.train.epochs' (first on line 6)",
                   "dup.yaml:8: duplicate key 'models.m' (first on line 2)")


def test_a_model_and_an_ensemble_may_not_share_a_name(ws, capsys):
    path = ws.write("same.yaml", model_file() + "ensembles:\n  m:\n    members: [m]\n")
    assert_refused(run(capsys, "validate", path), "same.yaml:6:", "also used by the model on line 2")


@pytest.mark.parametrize("name", ["'../../../x'", "/tmp/escaped", "a/b", "'..'", ".hidden", "'a\\\\b'", "''",
                                  "x" * 101])
def test_unsafe_model_names_are_refused_and_nothing_is_trained(ws, capsys, name):
    path = ws.write("names.yaml", model_file("{epochs: 1}", name=name))
    ws.freeze()
    assert_refused(run(capsys, "validate", path), "names.yaml:2:", "not a safe name")
    shown = name.strip("'").replace("\\\\", "\\")
    result = run(capsys, "--registry", path, "train", shown, "--out", ws.out)
    assert_refused(result)
    assert not ws.out.exists()
    ws.assert_unchanged()


@pytest.mark.parametrize("train,field,says", [
    ("{epochs: -3}", "epochs", "must be 1 to 100000, got -3"),
    ("{epochs: 0}", "epochs", "got 0"),
    ("{patience: -1}", "patience", "got -1"),
    ("{warmup: -2}", "warmup", "got -2"),
    ("{warmup: 1.5}", "warmup", "got 1.5"),
    ("{grad_clip: -1}", "grad_clip", "must be >= 0"),
    ("{batch_size: 0}", "batch_size", "got 0"),
    ("{lr: .nan}", "lr", "finite"),
    ("{lr: .inf}", "lr", "finite"),
    ("{lr: 0}", "lr", "must be > 0"),
    ("{lr: -0.1}", "lr", "must be > 0"),
    ("{weight_decay: -1}", "weight_decay", "got -1"),
    ("{seed: -1}", "seed", "got -1"),
    ("{aux_text: .nan}", "aux_text", "finite"),
])
def test_out_of_range_values_are_refused_with_their_line(ws, capsys, train, field, says):
    path = ws.write("r.yaml", model_file(train))
    assert_refused(run(capsys, "validate", path), "r.yaml:5:", f"'{field}'", says)


def test_head_and_resources_ranges_are_checked_too(ws, capsys):
    path = ws.write("r.yaml", model_file().replace("    task:", "    head: {dropout: 1.5, hidden: -1}\n    task:")
                    + "ensembles:\n  e:\n    members: [m]\n    resources: {cpus: 0, gpus: -1}\n"
                    + "  s:\n    seeds: {model: m, n: 0}\n")
    result = run(capsys, "validate", path)
    assert_refused(result, "'dropout'", "'hidden'", "'cpus'", "'gpus'", "'n' must be 1 to 1000")


@pytest.mark.parametrize("members,says", [
    ("[m, {name: m}]", "member 2 must be a model name, got a dict"),
    ("[[m]]", "member 1 must be a model name, got a list"),
    ("{m: 1}", "expected a non-empty list"),
])
def test_a_member_given_as_a_mapping_or_list_is_a_problem(ws, capsys, members, says):
    path = ws.write("r.yaml", model_file() + f"ensembles:\n  e:\n    members: {members}\n")
    assert_refused(run(capsys, "validate", path), "r.yaml:", says)


@pytest.mark.parametrize("recipe", ["seeds: [m]", "bagging: m", "boosting: {model: [m]}"])
def test_a_recipe_of_the_wrong_shape_is_a_problem(ws, capsys, recipe):
    path = ws.write("r.yaml", model_file() + f"ensembles:\n  e:\n    {recipe}\n")
    assert_refused(run(capsys, "validate", path), "r.yaml:7:")


@pytest.mark.parametrize("raw,line,says", [
    (b"models:\n  m:\n    description: caf\xe9\n", 3, "not UTF-8"),
    ("models: {}\n".encode("utf-16"), 1, "UTF-16"),
])
def test_a_registry_that_is_not_utf8_names_the_file_and_line(ws, capsys, raw, line, says):
    path = ws.write("enc.yaml", raw)
    assert_refused(run(capsys, "validate", path), f"enc.yaml:{line}:", says)
    listed = run(capsys, "--registry", path, "list", "models")
    assert_refused(listed, "warning", f"enc.yaml:{line}:", says, rc=0)
    assert_refused(run(capsys, "--registry", path, "train", "m"), f"enc.yaml:{line}:", says)


def test_a_utf8_bom_is_fine(ws, capsys):
    path = ws.write("bom.yaml", b"\xef\xbb\xbf" + model_file().encode())
    result = run(capsys, "validate", path)
    assert result.rc == 0, result.err


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "..", ""])
def test_the_runs_folder_refuses_unsafe_names_from_the_library_too(tmp_path, name):
    from mmzoo.errors import RunError
    from mmzoo.runs.folders import new_run

    with pytest.raises(RunError, match="not a safe name"):
        new_run(name, tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("train,says", [
    ("{lr: '1e-3'}", "write 1e-3 without quotes"),
    ("{epochs: '3'}", "write 3 without quotes"),
])
def test_numbers_quoted_as_text_say_how_to_write_them(ws, capsys, train, says):
    path = ws.write("r.yaml", model_file(train))
    assert_refused(run(capsys, "validate", path), "r.yaml:5:", "got str", says)


@pytest.mark.parametrize("text,value", [("1e-3", 1e-3), ("1.0e2", 100.0), ("-2E+1", -20.0), (".5e1", 5.0),
                                        ("3", 3), ("1_000", 1000), ("0.1", 0.1)])
def test_exponent_floats_read_as_numbers_as_in_yaml_1_2(text, value):
    # YAML 1.1 (PyYAML) reads 1e-3 and 1.0e2 as text; `lr: 1e-3` is how everyone writes a learning rate
    from mmzoo.zoo.safeyaml import parse

    data = parse(f"lr: {text}\nquoted: '{text}'\n").data
    assert data["lr"] == value and type(data["lr"]) is type(value) and data["quoted"] == text


def test_a_learning_rate_written_1e_3_is_valid(ws, capsys):
    path = ws.write("r.yaml", model_file("{lr: 1e-3, epochs: 2}"))
    result = run(capsys, "validate", path)
    assert result.rc == 0, result.err


def test_a_tab_in_the_indentation_is_named(ws, capsys):
    path = ws.write("tabs.yaml", "models:\n\tm:\n\t\ttext: small_text\n")
    assert_refused(run(capsys, "validate", path), "tabs.yaml:2:", "tab character", "replace the tabs with spaces")


def test_validating_a_file_layers_it_over_the_project_registry_as_commands_do(ws, capsys):
    path = ws.write("mine.yaml", "ensembles:\n  mine:\n    members: [digits_text, digits_image]\n")
    result = run(capsys, "validate", path)
    assert result.rc == 0 and "mine.yaml" in result.out, result.err  # was: "not a model in the registry"
    path = ws.write("typo.yaml", "ensembles:\n  mine:\n    members: [digits_text, digits_imag]\n")
    assert_refused(run(capsys, "validate", path), "typo.yaml:3:", "did you mean 'digits_image'")


def test_a_member_listed_twice_is_refused_before_anything_trains(ws, capsys):
    path = ws.write("r.yaml", "ensembles:\n  e:\n    members: [digits_text, digits_text]\n")
    assert_refused(run(capsys, "validate", path), "r.yaml:3:", "member 'digits_text' is listed twice", "seeds:")
    ws.freeze()
    assert_refused(run(capsys, "--registry", path, "ensemble", "e", "--out", ws.out), "listed twice")
    assert not ws.out.exists()
    ws.assert_unchanged()
