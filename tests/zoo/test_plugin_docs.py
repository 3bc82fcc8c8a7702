"""docs/plugins.md stays true to the code: hook signatures, register, Param, mmzoo.testing and the example package.

Also enforces that every hookspec has a test in test_example_plugin.py that calls it through mmzoo's loader.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import shlex
from pathlib import Path

import pytest

from mmzoo import testing
from mmzoo.zoo import hookspecs
from mmzoo.zoo.parts import PARAM_TYPES, Param
from mmzoo.zoo.plugins import HOOKS, PluginInfo, _make_register

ROOT = Path(__file__).resolve().parents[2]

DOC = (ROOT / "docs" / "plugins.md").read_text()
EXAMPLE_TESTS = ROOT / "tests" / "parts" / "test_example_plugin.py"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def hookspec_names() -> list[str]:
    """Every function mmzoo.zoo.hookspecs marks as a hookspec, read from pluggy's marker."""
    return sorted(name for name, fn in vars(hookspecs).items()
                  if inspect.isfunction(fn) and hasattr(fn, "mmzoo_spec"))


def bare(fn) -> str:
    """``fn``'s signature without annotations, as the docs write it: (a, /, *, b=1, **c)."""
    signature = inspect.signature(fn)
    params = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=signature.empty))


def code_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC)]


def test_the_four_hooks_are_the_ones_the_loader_calls():
    assert hookspec_names() == sorted(HOOKS) == ["register_combiners", "register_datasets", "register_encoders",
                                                 "register_fusions"]


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hookspec_is_documented_with_its_exact_signature(hook):
    signature = f"def {hook}{bare(getattr(hookspecs, hook))}"
    assert signature in DOC, f"docs/plugins.md lacks the signature `{signature}`"
    assert f"### `{hook}`" in DOC, f"docs/plugins.md lacks a `### `{hook}`` reference section"


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hookspec_has_a_test_that_calls_it_through_the_loader(hook):
    """test_example_plugin.py must hold test_<hook>_...(), calling registered_by(..., "<hook>", ...)."""
    tree = ast.parse(EXAMPLE_TESTS.read_text())
    tests = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith(f"test_{hook}")]
    assert tests, f"no test_{hook}_... in {EXAMPLE_TESTS.name}"
    calls = [node for test in tests for node in ast.walk(test) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "registered_by"
             and any(isinstance(a, ast.Constant) and a.value == hook for a in node.args)]
    assert calls, f"test_{hook}_... does not call registered_by(monkeypatch, {hook!r}, ...)"


def test_register_callback_is_documented_with_its_exact_signature_and_arguments():
    register = _make_register("encoder", PluginInfo("doc", "doc", "0"), {})
    assert f"register{bare(register)}" in DOC, f"docs/plugins.md lacks `register{bare(register)}`"
    for name in inspect.signature(register).parameters:
        assert f"| `{name}` |" in DOC, f"register's argument {name!r} has no row in the table"


def test_param_fields_and_types_are_documented():
    signature = f"Param{bare(Param)}".replace("default=<required>", "default=REQUIRED")
    assert signature in DOC, f"docs/plugins.md lacks `{signature}`"
    for field in dataclasses.fields(Param):
        assert f"| `{field.name}` |" in DOC, f"Param field {field.name!r} has no row in the table"
    for type_name in PARAM_TYPES:
        assert f'| `"{type_name}"` |' in DOC, f"Param type {type_name!r} has no row in the table"


def test_environment_variables_and_trace_format_are_documented():
    for text in ("MMZOO_PLUGINS=builtin,example", "MMZOO_TRACE_PLUGINS=1",
                 "mmzoo: trace: example.register_encoders(register)"):
        assert text in DOC


@pytest.mark.parametrize("name", sorted(n for n in dir(testing) if n.startswith("check_")))
def test_every_contract_check_is_documented_with_its_exact_signature(name):
    signature = f"{name}{bare(getattr(testing, name))}"
    assert signature in DOC, f"docs/plugins.md lacks `{signature}`"


def test_code_blocks_copied_from_the_example_package_match_it():
    checked = 0
    for _, body in code_blocks():
        first, _, rest = body.partition("\n")
        marker = re.fullmatch(r"# (from )?(plugins/mmzoo-example/\S+)", first)
        if not marker:
            continue
        source = (ROOT / marker.group(2)).read_text()
        if marker.group(1):
            assert rest in source, f"the excerpt of {marker.group(2)} starting {rest[:60]!r} is not in the file"
        else:
            assert rest == source, f"docs/plugins.md's copy of {marker.group(2)} differs from the file"
        checked += 1
    assert checked >= 8


def test_every_mmzoo_command_in_the_docs_parses():
    from mmzoo.cli import build_parser

    parser = build_parser()
    commands = [line.split("#")[0].strip() for lang, body in code_blocks() if lang == "sh"
                for line in body.splitlines() if line.startswith("mmzoo ")]
    assert len(commands) >= 8
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"docs/plugins.md shows `{command}`, which mmzoo's parser rejects")


def test_every_python_block_is_complete_code_with_its_imports(tmp_path):
    """Signatures are ```text blocks; every ```python block must run as written: it parses and names nothing undefined."""
    import subprocess
    import sys

    blocks = [body for lang, body in code_blocks() if lang == "python"]
    assert len(blocks) >= 5
    for i, body in enumerate(blocks):
        ast.parse(body, f"docs/plugins.md python block {i}")
        (tmp_path / f"block_{i}.py").write_text(body)
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F821,F822",
                           str(tmp_path)], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


def test_every_name_of_mmzoo_plugin_is_in_the_api_reference_with_its_signature():
    import mmzoo.plugin as plugin

    reference = DOC[DOC.index("## API reference: mmzoo.plugin"):DOC.index("## Laziness rules")]
    for name in plugin.__all__:
        value = getattr(plugin, name)
        try:
            signature = bare(value) if inspect.isclass(value) or inspect.isfunction(value) else None
        except (TypeError, ValueError):  # e.g. an exception class without its own __init__
            signature = None
        if signature is None:
            assert f"`{name}`" in reference, f"the API reference does not mention `{name}`"
        else:
            shown = f"{name}{signature}".replace("=<factory>", "={}").replace("default=<required>", "default=REQUIRED")
            assert shown in DOC, f"docs/plugins.md lacks the signature `{shown}`"


def test_the_combiner_interface_the_core_uses_is_documented():
    from mmzoo.combiners.base import Combiner

    for member in ("set_member_weights", "member_weights", "out_of_fold_predictions", "fit", "predict", "_fit"):
        signature = bare(getattr(Combiner, member)).replace("(self, ", "(").replace("(self)", "()")
        assert f"`{member}{signature}" in DOC, f"docs/plugins.md lacks `{member}{signature}`"
    for attribute in ("reads_member_features", "weights_from_recipe", "requires_fit", "fit_groups"):
        assert hasattr(Combiner, attribute) or attribute == "fit_groups"
        assert f"`{attribute}`" in DOC
