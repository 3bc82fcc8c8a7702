"""The plugin author's surface: mmzoo.plugin, Part.create, dev plugins, collisions, --strict, `mmzoo plugin new`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmzoo.errors import RegistryError
from mmzoo.zoo.parts import Param, ParamError, Part

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT, timeout=300)


def hook_module(folder: Path, module: str, source: str) -> Path:
    """A plugin under development: one hook module file, loaded through MMZOO_PLUGIN_PATH."""
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(source))
    return path


# ---- mmzoo.plugin -------------------------------------------------------------------


def test_mmzoo_plugin_offers_every_name_and_imports_torch_only_when_a_torch_name_is_read():
    code = textwrap.dedent("""
        import sys
        import mmzoo.plugin as plugin
        from mmzoo.plugin import Param, ParamError, REQUIRED, hookimpl
        before = "torch" in sys.modules
        values = {name: getattr(plugin, name) for name in plugin.__all__}
        print(before, "torch" in sys.modules, len(values), all(v is not None for v in values.values()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "True", str(len(__import__("mmzoo.plugin").plugin.__all__)), "True"]


def test_mmzoo_plugin_names_are_the_classes_mmzoo_itself_uses():
    import mmzoo.plugin as plugin
    from mmzoo.combiners.base import Combiner
    from mmzoo.encoders.base import Encoder
    from mmzoo.fusions.base import Fusion

    assert (plugin.Encoder, plugin.Fusion, plugin.Combiner) == (Encoder, Fusion, Combiner)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        plugin.Nope  # noqa: B018


# ---- Part.create: the one build function ------------------------------------------------


def made(*args, **kwargs):
    if kwargs.get("heads") and kwargs["dim"] % kwargs["heads"]:
        raise ParamError(f"dim={kwargs['dim']} is not divisible by heads={kwargs['heads']}")
    return args, kwargs


PART = Part("fusion", "toy", made, "a toy", (Param("dim", "int", 8, "width", min=1),
                                             Param("heads", "int", 2, "heads", min=1),
                                             Param("mode", "str", "a", "mode", choices=("a", "b"))))


def test_create_fills_declared_defaults_and_passes_positional_arguments_first(monkeypatch):
    from mmzoo.zoo import partbuild

    monkeypatch.delitem(partbuild.BASES, "fusion", raising=False)  # the toy builds a tuple, not a Fusion
    assert PART.create(3, 4, dim=6) == ((3, 4), {"dim": 6, "heads": 2, "mode": "a"})


def test_create_refuses_what_the_factory_builds_when_it_is_not_the_kind():
    from mmzoo.errors import PluginError

    with pytest.raises(PluginError, match="fusion 'toy'.*returned a tuple, not a mmzoo.fusions.base.Fusion"):
        PART.create(3, 4)


@pytest.mark.parametrize(("params", "words"), [
    ({"dim": 0}, "fusion 'toy': param 'dim' must be >= 1, got 0"),
    ({"dim": "8"}, "param 'dim' expected int, got str"),
    ({"mode": "c"}, "param 'mode' must be one of a, b, got 'c'"),
    ({"width": 3}, r"fusion 'toy' got unknown param\(s\): width"),
    ({"dim": 6, "heads": 4}, "fusion 'toy': dim=6 is not divisible by heads=4"),
])
def test_create_refuses_bad_params_naming_the_part_and_the_param(params, words):
    with pytest.raises(RegistryError, match=words) as caught:
        PART.create(**params)
    assert caught.value.hint


def test_create_refuses_a_missing_required_param():
    part = Part("encoder", "needs", made, "x", (Param("model", "str", help="which model"),), "text")
    with pytest.raises(RegistryError, match="encoder 'needs': missing required param 'model'"):
        part.create()


# ---- loading, collisions, --strict --------------------------------------------------------


def test_a_plugin_under_development_loads_from_mmzoo_plugin_path_and_its_hook_failure_is_shown_in_full(tmp_path):
    hook_module(tmp_path, "mmzoo_wip", """
        from mmzoo.plugin import Param, hookimpl

        @hookimpl
        def register_fusions(register):
            register("wip_fusion", "mmzoo_wip:nothing", description="in progress",
                     params=(Param("dim", "int", 8, "width", min=1),))

        @hookimpl
        def register_encoders(register):
            raise KeyError("forgot the modality table")
    """)
    env = {"MMZOO_PLUGIN_PATH": str(tmp_path / "mmzoo_wip.py")}
    shown = cli("plugins", env=env)
    assert shown.returncode == 0 and "wip" in shown.stdout and "FAILED" in shown.stdout
    assert "register_encoders raised KeyError" in shown.stdout
    # the full reason: the traceback down to the plugin's own line
    assert 'mmzoo_wip.py", line 11, in register_encoders' in shown.stdout
    assert 'raise KeyError("forgot the modality table")' in shown.stdout
    strict = cli("plugins", "--strict", env=env)
    assert strict.returncode == 1 and "register_encoders raised KeyError" in strict.stdout
    assert cli("plugins", "--strict", "--json", env=env).returncode == 1
    assert cli("plugins", "--strict").returncode == 0  # every installed plugin loads cleanly
    listed = cli("list", "fusions", "--json", env=env)
    assert '"wip_fusion"' in listed.stdout and '"plugin": "wip"' in listed.stdout


COPY = """
    from mmzoo.plugin import hookimpl

    @hookimpl
    def register_fusions(register):
        register("twin", "{module}:nothing", description="from {module}")
"""


def test_two_third_party_plugins_claiming_one_name_are_both_refused_unless_one_is_preferred(tmp_path):
    for module in ("mmzoo_left", "mmzoo_right"):
        hook_module(tmp_path, module, COPY.format(module=module))
    paths = os.pathsep.join(str(tmp_path / f"{m}.py") for m in ("mmzoo_left", "mmzoo_right"))
    env = {"MMZOO_PLUGIN_PATH": paths}
    refused = cli("plugins", "--strict", env=env)
    assert refused.returncode == 1
    assert "fusion 'twin' is registered by both" in refused.stdout and "refusing it from all of them" in refused.stdout
    assert "MMZOO_PREFER=left" in refused.stdout
    assert '"twin"' not in cli("list", "fusions", "--json", env=env).stdout
    preferred = cli("plugins", "--strict", env={**env, "MMZOO_PREFER": "right"})
    assert preferred.returncode == 0, preferred.stdout
    assert "from mmzoo_right" in cli("show", "twin", env={**env, "MMZOO_PREFER": "right"}).stdout
    limited = cli("plugins", "--strict", env={**env, "MMZOO_PLUGINS": "builtin,left"})
    assert limited.returncode == 0 and "right" not in limited.stdout


@pytest.fixture
def fresh_zoo():
    """The process-wide zoo reloaded under this test's environment, and reloaded again afterwards."""
    from mmzoo.zoo.plugins import get_zoo

    yield lambda: get_zoo(refresh=True, on_warning=lambda message: None)
    get_zoo(refresh=True, on_warning=lambda message: None)


def test_check_lazy_names_a_hook_module_that_imports_torch(tmp_path, monkeypatch, fresh_zoo):
    from mmzoo.errors import PluginError
    from mmzoo.testing import check_lazy

    hook_module(tmp_path, "mmzoo_heavy", """
        import torch  # the mistake: every `mmzoo list` would now pay for torch
        from mmzoo.plugin import hookimpl

        @hookimpl
        def register_combiners(register):
            register("heavy_mean", "mmzoo_heavy:nothing", description="imports torch too early")
    """)
    monkeypatch.setenv("MMZOO_PLUGIN_PATH", str(tmp_path / "mmzoo_heavy.py"))
    fresh_zoo()
    with pytest.raises(PluginError, match="plugin 'heavy': importing its hook module and calling its hooks imported "
                                          "torch"):
        check_lazy("heavy")


# ---- mmzoo plugin new ---------------------------------------------------------------------


@pytest.fixture
def new_plugin(tmp_path) -> Path:
    made_ = cli("plugin", "new", "demo_parts", "--dir", str(tmp_path))
    assert made_.returncode == 0, made_.stderr
    return tmp_path / "mmzoo-demo-parts"


def test_plugin_new_writes_a_package_that_loads_from_mmzoo_plugin_path(new_plugin):
    folder = new_plugin
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "mmzoo_demo_parts/__init__.py", "mmzoo_demo_parts/parts.py", "pyproject.toml",
        "tests/test_mmzoo_demo_parts.py"]
    assert 'demo_parts = "mmzoo_demo_parts"' in (folder / "pyproject.toml").read_text()
    again = cli("plugin", "new", "demo_parts", "--dir", str(folder.parent))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli("plugin", "new", "Bad-Name", "--dir", str(folder.parent)).returncode == 1
    env = {"MMZOO_PLUGIN_PATH": str(folder / "mmzoo_demo_parts")}
    loaded = cli("plugins", "--strict", env=env)
    assert loaded.returncode == 0 and "demo_parts_chars" in loaded.stdout and "demo_parts_confidence" in loaded.stdout


@pytest.mark.slow
def test_plugin_new_writes_a_package_whose_own_tests_pass_before_it_is_installed(new_plugin):
    folder = new_plugin
    env = {**os.environ, "MMZOO_PLUGIN_PATH": str(folder / "mmzoo_demo_parts"),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout[-3000:]
