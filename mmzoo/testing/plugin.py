"""Provides check_plugin: every contract on everything one plugin registers, plus its laziness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from mmzoo.errors import PluginError
from mmzoo.testing.checks import check_combiner, check_dataset, check_encoder, check_fusion, check_params
from mmzoo.testing.common import fail, registered
from mmzoo.testing.tokens import check_token_fusion
from mmzoo.zoo.plugins import PluginInfo

# Modules whose import costs seconds; listing the zoo must load none of them.
HEAVY = ("torch", "torchvision", "transformers", "timm")

# Run in a fresh interpreter: load only this plugin the way `mmzoo list` does, then report what got imported.
_PROBE = """
import json, sys, time
start = time.perf_counter()
from mmzoo.zoo.plugins import load_zoo
zoo = load_zoo(on_warning=lambda message: None)
print(json.dumps({"heavy": [m for m in sys.argv[1:] if m in sys.modules], "seconds": time.perf_counter() - start,
                  "plugins": [p.to_dict() for p in zoo.plugins]}))
"""


def _plugin(name: str) -> PluginInfo:
    from mmzoo.zoo.plugins import get_zoo

    zoo = get_zoo()
    info = next((p for p in zoo.plugins if p.name == name), None)
    if info is None:
        loaded = ", ".join(p.name for p in zoo.plugins) or "none"
        raise PluginError(f"no plugin named {name!r} is loaded (loaded: {loaded})",
                          hint="install it (pip install -e .) or point MMZOO_PLUGIN_PATH at its hook module; "
                               "the name is its entry point's name, or the module's name under MMZOO_PLUGIN_PATH")
    return info


def check_lazy(plugin: str, /) -> float:
    """Load only ``plugin`` as ``mmzoo list`` does, in a fresh interpreter; fail if torch & co. got imported.

    Returns the seconds that loading took there.
    """
    what = f"plugin {plugin!r}"
    _plugin(plugin)
    env = {**os.environ, "MMZOO_PLUGINS": plugin,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the same imports as this process
    env.pop("MMZOO_TRACE_PLUGINS", None)
    probe = subprocess.run([sys.executable, "-c", _PROBE, *HEAVY], capture_output=True, text=True, env=env,
                           timeout=300)
    if probe.returncode != 0:
        fail(what, f"loading it in a fresh interpreter failed:\n{probe.stderr[-2000:]}")
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    if report["heavy"]:
        fail(what, f"importing its hook module and calling its hooks imported {', '.join(report['heavy'])} "
                   f"({report['seconds']:.1f} s), which every `mmzoo list` and `mmzoo --help` would pay; import "
                   "heavy modules only in the modules your factories name ('package.module:Class')")
    return float(report["seconds"])


def check_plugin(plugin: str, /, *, params: dict[str, dict[str, Any]] | None = None,
                 export_onnx: bool = True) -> dict[str, list[str]]:
    """Run every contract on everything ``plugin`` registers; returns what it registered, by kind.

    ``params`` maps a part's name to the (small) params to build it with; parts not named are
    built with their declared defaults, so a part with a required param must be named here.
    Also checks that the plugin loaded without errors and that listing it stays torch-free.
    """
    what = f"plugin {plugin!r}"
    info = _plugin(plugin)
    if info.errors:
        fail(what, "did not load cleanly: " + "; ".join(info.errors))
    names = {name: kind for kind, registered_names in info.registered.items() for name in registered_names}
    if not names:
        fail(what, "registered nothing; implement at least one register_* hook (see docs/plugins.md)")
    params = params or {}
    stray = sorted(set(params) - set(names))
    if stray:
        raise PluginError(f"check_plugin({plugin!r}): params given for {', '.join(stray)}, which {plugin} "
                          f"does not register (it registers {', '.join(sorted(names))})")
    check_lazy(plugin)
    for name, kind in names.items():
        part = registered(kind, name)
        check_params(part)
        given = params.get(name, {})
        missing = [p.name for p in part.params if p.required and p.name not in given]
        if missing:
            fail(f"{kind} {name!r}", f"has required param(s) {', '.join(missing)}; pass them as "
                                     f"check_plugin({plugin!r}, params={{{name!r}: {{...}}}})")
        if kind == "dataset":
            check_dataset(name, **given)
        else:
            check = {"encoder": check_encoder, "fusion": check_fusion, "combiner": check_combiner}[kind]
            check(name, export_onnx=export_onnx, **given)
        if kind == "fusion" and part.supports_tokens:  # its token form, with the given params it declares
            form = part.token_form()
            check_params(form)
            check_token_fusion(name, export_onnx=export_onnx, **{k: v for k, v in given.items() if form.param(k)})
    return {kind: list(found) for kind, found in info.registered.items()}
