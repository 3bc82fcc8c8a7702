"""Shared fixtures: offline hubs, an isolated runs folder and feature cache per test session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# One thread per process unless the caller chose: results of two CLI processes (a reference run
# and a killed-and-resumed one, say) compare bit for bit only when both reduce in the same order,
# and a container may show more cores than its quota. Thread-choice tests set this themselves.
if not os.environ.get("OMP_NUM_THREADS", "").strip():
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["MMZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """Run the real `mmzoo` CLI in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)


@pytest.fixture(scope="session", name="run_cli")
def run_cli_fixture():
    """The subprocess CLI runner, ``run_cli(*args, env=..., cwd=..., timeout=...)``."""
    return run_cli


@pytest.fixture
def cli():
    return run_cli


def _make_dist(root: Path, dist: str, entry: str, module: str, source: str) -> None:
    """Install a throwaway distribution on a sys.path folder: a module plus .dist-info with entry_points.txt."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mmzoo]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(scope="session")
def make_dist():
    """``make_dist(root, dist, entry, module, source)``: a throwaway distribution with an mmzoo entry point."""
    return _make_dist


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip when torch sees no CUDA device (torch is imported only if such a test exists)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch sees none")
    for item in marked:
        item.add_marker(skip)
