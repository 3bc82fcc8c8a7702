"""Plugin discovery through real entry points: isolation, limits, tracing and collisions."""

from __future__ import annotations

import json


def test_plugin_that_fails_to_import_is_reported_and_skipped(make_dist, run_cli, tmp_path):
    make_dist(tmp_path, "broken-plugin", "broken", "broken_plugin_mod", "raise RuntimeError('boom at import')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    listed = run_cli("list", "fusions", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "concat" in listed.stdout and "gated" in listed.stdout
    assert "boom at import" in listed.stderr and "Traceback" not in listed.stderr
    plugins = run_cli("plugins", "--json", env=env)
    info = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert "boom at import" in info["broken"]["errors"][0]
    assert info["broken"]["package"] == "broken-plugin" and info["broken"]["version"] == "1.0"
    assert info["builtin"]["errors"] == [] and "fusion" in info["builtin"]["registered"]


def test_plugin_whose_hook_raises_keeps_its_other_hooks_and_the_rest(make_dist, run_cli, tmp_path):
    make_dist(tmp_path, "half-plugin", "half", "half_plugin_mod", """
        from mmzoo.zoo.hookspecs import hookimpl
        from mmzoo.zoo.parts import Param

        @hookimpl
        def register_encoders(register):
            raise ValueError("encoder hook exploded")

        @hookimpl
        def register_fusions(register):
            register("sum_pool", "half_plugin_mod:nothing", description="a third-party fusion",
                     params=(Param("dim", "int", 8, "width"),))
    """)
    env = {"PYTHONPATH": str(tmp_path)}
    plugins = json.loads(run_cli("plugins", "--json", env=env).stdout)
    half = next(p for p in plugins if p["name"] == "half")
    assert half["registered"] == {"fusion": ["sum_pool"]}
    assert "encoder hook exploded" in half["errors"][0]
    shown = run_cli("show", "sum_pool", "--json", env=env)
    part = json.loads(shown.stdout)
    assert part["plugin"] == "half" and part["params"][0]["name"] == "dim"


def test_two_packages_registering_one_name_is_an_error_naming_both(make_dist, run_cli, tmp_path):
    make_dist(tmp_path, "copycat-plugin", "copycat", "copycat_mod", """
        from mmzoo.zoo.hookspecs import hookimpl

        @hookimpl
        def register_fusions(register):
            register("concat", "copycat_mod:x", description="a clash")
    """)
    out = run_cli("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    copycat = next(p for p in json.loads(out.stdout) if p["name"] == "copycat")
    assert "mmzoo" in copycat["errors"][0] and "copycat-plugin" in copycat["errors"][0]
    assert "'concat'" in copycat["errors"][0]


def test_mmzoo_plugins_limits_what_loads_and_trace_prints_hook_calls(make_dist, run_cli, tmp_path):
    make_dist(tmp_path, "broken-plugin", "broken", "broken_plugin_mod", "raise RuntimeError('boom')\n")
    out = run_cli("plugins", "--json", env={"PYTHONPATH": str(tmp_path), "MMZOO_PLUGINS": "builtin",
                                            "MMZOO_TRACE_PLUGINS": "1"})
    names = [p["name"] for p in json.loads(out.stdout)]
    assert "broken" not in names and "builtin" in names
    assert "trace: builtin.register_fusions(register)" in out.stderr
    assert "boom" not in out.stderr
