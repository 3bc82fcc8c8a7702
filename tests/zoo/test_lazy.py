"""Listing the zoo, the CLI's help and validation never import torch, transformers or timm."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys, runpy
sys.argv = ["mmzoo"] + {args!r}
try:
    runpy.run_module("mmzoo", run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "transformers", "timm", "torchvision") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["list"], ["--help"], ["validate"], ["plugins"], ["list", "models", "emoji*"]])
def test_listing_does_not_import_heavy_modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         env={**os.environ})
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line == ["HEAVY="], out.stderr[-2000:]
