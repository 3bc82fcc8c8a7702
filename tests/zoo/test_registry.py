"""registry.yaml validation: one test per kind of mistake, each checking the message and the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mmzoo.zoo.registry import load_registry

GOOD = """\
models:
  tiny:
    text: {encoder: small_text}
    image: small_cnn
    fusion: {name: gated}
    task: {dataset: digits-match}
"""


def problems_of(tmp_path, text: str):
    path = tmp_path / "registry.yaml"
    path.write_text(textwrap.dedent(text))
    registry = load_registry(files=[path])
    return registry, [(p.line, p.message) for p in registry.all_problems()]


def test_good_entry_resolves_with_defaults(tmp_path):
    registry, problems = problems_of(tmp_path, GOOD)
    assert problems == []
    spec = registry.get("tiny").spec
    assert spec["fusion"]["name"] == "gated" and "dim" in spec["fusion"]
    assert spec["train"]["epochs"] == 20 and spec["head"]["hidden"] == 256
    assert spec["text"]["freeze"] is False


def test_unknown_part_names_line_and_suggests(tmp_path):
    _, problems = problems_of(tmp_path, GOOD.replace("{name: gated}", "{name: gatd}"))
    (line, message), = problems
    assert line == 5
    assert "fusion 'gatd' is not registered" in message and "did you mean 'gated'" in message
    assert "concat" in message  # lists what is installed


def test_wrong_type_names_line(tmp_path):
    _, problems = problems_of(tmp_path, GOOD + "    train: {epochs: many}\n")
    (line, message), = problems
    assert line == 7 and "'epochs' expected int" in message


def test_unknown_key_names_line_and_allowed_keys(tmp_path):
    _, problems = problems_of(tmp_path, GOOD + "    trian: {epochs: 3}\n")
    (line, message), = problems
    assert line == 7 and "unknown key 'trian'" in message and "train" in message


def test_unknown_part_param_is_reported(tmp_path):
    _, problems = problems_of(tmp_path, GOOD.replace("{name: gated}", "{name: gated, dimm: 3}"))
    (line, message), = problems
    assert line == 5 and "unknown key 'dimm'" in message and "did you mean 'dim'" in message


def test_missing_field_names_line(tmp_path):
    _, problems = problems_of(tmp_path, GOOD.replace("    fusion: {name: gated}\n", ""))
    (line, message), = problems
    assert line == 2 and "needs a 'fusion'" in message


def test_ensemble_recipe_missing_model_field(tmp_path):
    _, problems = problems_of(tmp_path, GOOD + "ensembles:\n  ens:\n    seeds: {n: 3}\n")
    (line, message), = problems
    assert line == 9 and "missing required field 'model'" in message


def test_malformed_yaml_names_line(tmp_path):
    _, problems = problems_of(tmp_path, GOOD + "  broken: [unclosed\n")
    (line, message), = problems
    assert line >= 7 and "malformed YAML" in message


def test_user_registry_layers_over_project(tmp_path, monkeypatch):
    from mmzoo.zoo.registry import registry_files

    user = tmp_path / "mine.yaml"
    user.write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMZOO_REGISTRY", str(user))
    files = registry_files()
    assert files[-1] == user and len(files) == 2  # project registry first, the user's on top
    registry = load_registry()
    assert registry.get("tiny").file == str(user)
    assert registry.get("emoji_gated").ok


def test_validate_cli_reports_and_exits_nonzero(tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("{name: gated}", "{name: gatd}"))
    out = cli("validate", str(bad))
    assert out.returncode == 1
    assert f"{bad}:5: fusion 'gatd' is not registered" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["show", "nope"], ["train", "nope"], ["validate", "/no/such.yaml"]])
def test_cli_errors_have_no_traceback(cli, args):
    out = cli(*args)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "mmzoo:" in out.stderr


def test_ensemble_resources_are_validated(tmp_path):
    registry, problems = problems_of(tmp_path, GOOD + "ensembles:\n  ens:\n    members: [tiny]\n"
                                     "    resources: {cpus: 2, gpu: 1}\n")
    (line, message), = problems
    assert line == 10 and "unknown key 'gpu'" in message and "did you mean 'gpus'" in message
    registry, problems = problems_of(tmp_path, GOOD + "ensembles:\n  ens:\n    members: [tiny]\n"
                                     "    resources: {cpus: 2}\n")
    assert problems == [] and registry.get("ens").spec["resources"] == {"cpus": 2, "gpus": 0.0}


def test_a_stray_registry_in_the_current_folder_is_never_read(tmp_path, monkeypatch):
    from mmzoo.zoo.registry import PROJECT_REGISTRY, registry_files

    (tmp_path / "registry.yaml").write_text("models: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MMZOO_REGISTRY", raising=False)
    assert registry_files() == [PROJECT_REGISTRY]
    assert load_registry().get("emoji_gated").ok


def test_the_catalog_ships_inside_the_package():
    import mmzoo
    from mmzoo.zoo.registry import PROJECT_REGISTRY

    packaged = Path(mmzoo.__file__).parent / "registry.yaml"
    assert packaged.is_file() and packaged.resolve() == PROJECT_REGISTRY


def test_dataset_folder_resolves_against_the_registry_file_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "data" / "pets").mkdir(parents=True)
    monkeypatch.chdir("/")
    registry, problems = problems_of(tmp_path, GOOD.replace("digits-match", "data/pets"))
    assert problems == []
    assert registry.get("tiny").spec["task"]["dataset"] == str((tmp_path / "data" / "pets").resolve())
    _, problems = problems_of(tmp_path, GOOD.replace("digits-match", "./data/cats"))
    (line, message), = problems
    assert line == 6 and "not found" in message and str(tmp_path / "data" / "cats") in message
