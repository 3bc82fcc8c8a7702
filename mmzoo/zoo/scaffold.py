"""Provides `mmzoo plugin new`: a working plugin package written from the template shipped with mmzoo."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from mmzoo.errors import PluginError

NAME = re.compile(r"[a-z][a-z0-9_]*")


def new_plugin(name: str, parent: str | Path = ".") -> Path:
    """Write package ``mmzoo-NAME`` (hooks module ``mmzoo_NAME``, entry point ``NAME``) under ``parent``.

    Returns the new folder. The files appear all at once (written aside, then renamed), and an
    existing folder is never touched.
    """
    if not NAME.fullmatch(name):
        raise PluginError(f"plugin name {name!r} must be lowercase letters, digits and _, starting with a letter",
                          hint="e.g. `mmzoo plugin new my_parts`")
    module, dist = f"mmzoo_{name}", f"mmzoo-{name.replace('_', '-')}"
    target = Path(parent) / dist
    if target.exists():
        raise PluginError(f"{target} already exists", hint="pick another name, or another folder with --dir")
    values = {"name": name, "module": module, "dist": dist, "folder": str(target)}
    template = resources.files("mmzoo.templates") / "plugin"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dist}.", dir=target.parent))
    try:
        with resources.as_file(template) as source:
            for path in sorted(Path(source).rglob("*.tmpl")):
                relative = str(path.relative_to(source).with_suffix("")).replace("__module__", module)
                text = path.read_text()
                for key, value in values.items():
                    text = text.replace("{{" + key + "}}", value)
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
