"""Misbehaving plugins are isolated and named; files never choose what mmzoo imports; secrets stay home."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest
from badinput import assert_refused, run, workspace  # noqa: F401

from mmzoo.errors import MmzooError, PluginError
from mmzoo.zoo.plugins import get_zoo


def make_dist(root: Path, dist: str, entry: str, module: str, source: str) -> None:
    """A throwaway installed distribution on a sys.path folder: one module plus .dist-info with its entry point."""
    info = root / f"{dist.replace('-', '_')}-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[mmzoo]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for throwaway plugins; the zoo is reloaded after the test without them."""
    import importlib

    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    before = set(sys.modules)
    yield root
    sys.path.remove(str(root))
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(root) in (sys.modules[name].__file__ or ""):
            del sys.modules[name]
    importlib.invalidate_caches()
    get_zoo(refresh=True)


def reload_zoo():
    import importlib

    importlib.invalidate_caches()
    return get_zoo(refresh=True)


HOOKS = """
    from mmzoo.zoo.hookspecs import hookimpl
    from mmzoo.zoo.parts import Param
"""


@pytest.mark.parametrize("where", ["import", "hook"])
def test_a_plugin_calling_sys_exit_is_caught_and_named(ws, capsys, site, where):
    body = "import sys\nsys.exit(3)\n" if where == "import" else HOOKS + """
    @hookimpl
    def register_fusions(register):
        import sys
        sys.exit("bye")
    """
    make_dist(site, "mmzoo-quitter", "quitter", "quitter_mod", body)
    capsys.readouterr()
    zoo = reload_zoo()  # what every command does first in a fresh process
    warned = capsys.readouterr().err
    assert "plugin 'quitter' (mmzoo-quitter)" in warned and "sys.exit" in warned and "Traceback" not in warned
    assert "sys.exit" in next(p for p in zoo.plugins if p.name == "quitter").errors[0]
    result = run(capsys, "list", "fusions")
    assert result.rc == 0 and "concat" in result.out and "gated" in result.out


def test_a_third_party_entry_point_named_builtin_replaces_nothing(ws, capsys, site):
    make_dist(site, "mmzoo-impostor", "builtin", "impostor_mod", HOOKS + """
    @hookimpl
    def register_fusions(register):
        register("concat", "impostor_mod:nothing", description="not mmzoo's concat")
        register("impostor_only", "impostor_mod:nothing", description="should never appear")
    """)
    zoo = reload_zoo()
    assert zoo.get("fusion", "concat").package == "mmzoo"
    assert zoo.get("fusion", "impostor_only") is None
    plugins = json.loads(run(capsys, "plugins", "--json").out)
    impostor = next(p for p in plugins if p["package"] == "mmzoo-impostor")
    assert "reserved" in impostor["errors"][0] and impostor["registered"] == {}
    own = next(p for p in plugins if p["name"] == "builtin" and p["package"] == "mmzoo")
    assert own["errors"] == [] and "fusion" in own["registered"]


PARTS_MODULE = HOOKS + """
    from mmzoo.encoders.base import Encoder

    class ImageInDisguise(Encoder):
        modality = "image"

        def __init__(self, dim=8):
            super().__init__()
            self.output_dim = dim

    class Narrow(Encoder):
        modality = "text"

        def __init__(self, width=8):
            super().__init__()
            self.output_dim = width

    def make_dict(dim=8):
        return {"dim": dim}

    def make_list():
        return [1, 2, 3]

    @hookimpl
    def register_encoders(register):
        p = (Param("dim", "int", 8, "width"),)
        register("ghost", "faulty_missing_module:Enc", description="unimportable", params=p, modality="text")
        register("absent_attr", "faulty_mod:NoSuchClass", description="no such class", params=p, modality="text")
        register("disguised", "faulty_mod:ImageInDisguise", description="says text", params=p, modality="text")
        register("narrow", "faulty_mod:Narrow", description="declares dim", params=p, modality="text")
        register("dict_maker", "faulty_mod:make_dict", description="returns a dict", params=p, modality="text")

    @hookimpl
    def register_datasets(register):
        register("list-maker", "faulty_mod:make_list", description="returns a list")
"""


@pytest.mark.parametrize("name,says", [
    ("ghost", "cannot be imported"),
    ("absent_attr", "does not exist"),
    ("disguised", "registered as a text encoder, but what it builds reads 'image'"),
    ("narrow", "declares param(s) 'dim', but its factory"),
    ("dict_maker", "returned a dict, not a mmzoo.encoders.base.Encoder"),
])
def test_a_faulty_part_is_a_plugin_error_naming_the_plugin(site, name, says):
    from mmzoo.train.factory import build_encoder

    make_dist(site, "mmzoo-faulty", "faulty", "faulty_mod", PARTS_MODULE)
    reload_zoo()
    with pytest.raises(PluginError) as caught:
        build_encoder({"encoder": name, "dim": 8, "freeze": False})
    message = str(caught.value)
    assert says in message and "plugin 'faulty'" in message and "mmzoo-faulty 1.2" in message


def test_a_dataset_factory_returning_the_wrong_thing_is_named(site):
    from mmzoo.train.factory import open_dataset

    make_dist(site, "mmzoo-faulty", "faulty", "faulty_mod", PARTS_MODULE)
    reload_zoo()
    with pytest.raises(PluginError, match="dataset 'list-maker' .*returned a list, not a mmzoo.data.Dataset"):
        open_dataset("list-maker")


def test_a_faulty_part_through_the_cli_is_one_line(ws, capsys, site):
    make_dist(site, "mmzoo-faulty", "faulty", "faulty_mod", PARTS_MODULE)
    reload_zoo()
    registry = ws.write("r.yaml", "models:\n  m:\n    text: disguised\n    task: {dataset: digits-match}\n"
                                  "    train: {epochs: 1}\n")
    result = run(capsys, "--registry", registry, "train", "m", "--out", ws.out)
    assert_refused(result, "plugin error", "'faulty'", "mmzoo-faulty")


def test_a_malformed_factory_string_is_refused_at_registration(site):
    make_dist(site, "mmzoo-sloppy", "sloppy", "sloppy_mod", HOOKS + """
    @hookimpl
    def register_fusions(register):
        register("sloppy", "no colon here", description="bad factory")
    """)
    zoo = reload_zoo()
    info = next(p for p in zoo.plugins if p.name == "sloppy")
    assert zoo.get("fusion", "sloppy") is None and "package.module:attr" in info.errors[0]


def _combiner_file(path: Path, config: dict) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"fitted": torch.tensor(True)}, str(path), metadata={"mmzoo_combiner": json.dumps(config)})


def test_a_combiner_file_never_chooses_a_module_to_import(ws, site):
    from mmzoo.combiners.base import Combiner
    from mmzoo.combiners.mean import MeanCombiner

    marker = ws.root / "imported"
    (site / "evil_combiner_mod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Boom: pass\n")
    config = {"combiner": "mean", "class": "evil_combiner_mod:Boom", "num_members": 2, "num_classes": 2,
              "params": {}}
    _combiner_file(ws.root / "c.safetensors", config)
    assert isinstance(Combiner.load(ws.root / "c.safetensors"), MeanCombiner)
    _combiner_file(ws.root / "d.safetensors", {**config, "combiner": "evil_combiner_mod"})
    with pytest.raises(MmzooError, match="no installed plugin registers"):
        Combiner.load(ws.root / "d.safetensors")
    assert not marker.exists()
    assert "evil_combiner_mod" not in sys.modules


def test_a_missing_plugin_is_named_with_what_to_install():
    from mmzoo.zoo import provenance

    recorded = provenance.record([("fusion", "concat"), ("encoder", "small_text")])
    assert recorded["fusion:concat"]["package"] == "mmzoo" and recorded["fusion:concat"]["plugin"] == "builtin"
    provenance.require(recorded, "run x")  # installed: nothing to say
    gone = {"encoder:fancy": {"plugin": "fancy", "package": "mmzoo-fancy", "version": "1.2"}}
    with pytest.raises(PluginError) as caught:
        provenance.require(gone, "run m/1")
    assert "run m/1 needs encoder 'fancy'" in str(caught.value) and caught.value.hint == "install mmzoo-fancy >= 1.2"


def test_ray_tasks_get_no_secrets_unless_asked():
    from mmzoo.ensemble.executors import forwarded_env

    env = {"HF_TOKEN": "s3cret", "HF_HUB_OFFLINE": "1", "HUGGING_FACE_HUB_TOKEN": "x", "MMZOO_CACHE": "/c",
           "TRANSFORMERS_OFFLINE": "1", "HF_API_KEY": "k", "AWS_SECRET_ACCESS_KEY": "a", "PATH": "/bin"}
    assert forwarded_env(env) == {"HF_HUB_OFFLINE": "1", "MMZOO_CACHE": "/c", "TRANSFORMERS_OFFLINE": "1"}
    asked = forwarded_env({**env, "MMZOO_RAY_FORWARD_SECRETS": "HF_TOKEN"})
    assert asked["HF_TOKEN"] == "s3cret" and "HF_API_KEY" not in asked


@pytest.mark.parametrize("cpus,gpus", [(math.nan, 0.0), (0.0, 0.0), (1.0, math.inf), (1.0, -1.0)])
def test_ray_resources_are_range_checked_before_ray_is_needed(cpus, gpus):
    from mmzoo.ensemble.executors import make_executor
    from mmzoo.errors import TrainingError

    with pytest.raises(TrainingError, match="per member"):
        make_executor("ray", cpus=cpus, gpus=gpus)


def test_a_local_ray_instance_binds_to_localhost():
    import inspect

    from mmzoo.ensemble import executors

    source = inspect.getsource(executors._RaySession.__enter__)
    assert "_node_ip_address=LOCAL_HOST" in source and executors.LOCAL_HOST == "127.0.0.1"


def test_sys_exit_on_import_does_not_end_a_real_process(run_cli, tmp_path):
    make_dist(tmp_path, "mmzoo-quitter", "quitter", "quitter_mod", "import sys\nsys.exit(0)\n")
    result = run_cli("list", "fusions", env={"PYTHONPATH": str(tmp_path)}, timeout=120)
    assert result.returncode == 0 and "concat" in result.stdout
    assert "plugin 'quitter' (mmzoo-quitter) skipped" in result.stderr and "sys.exit(0)" in result.stderr
