"""Fixtures for the TUI tests: a tiny registry, and finished tiny runs shared by the whole session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tui.tuikit import TINY, train_tiny


@pytest.fixture(scope="session")
def tiny_registry_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tui-registry") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, tiny_registry_file) -> Path:
    """A runs folder with a finished tiny_text and tiny_concat run (1 epoch each); never modified by tests."""
    root = tmp_path_factory.mktemp("tui-runs")
    train_tiny(tiny_registry_file, root)
    return root


@pytest.fixture
def runs_copy(trained_runs, tmp_path) -> Path:
    """A private copy of the finished runs, for tests that tag, delete or add runs."""
    root = tmp_path / "runs"
    shutil.copytree(trained_runs, root)
    return root
