"""Provides the bundled flags dataset: 253 country and territory flags with names, labelled by continent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmzoo.data import Dataset

FOLDER = Path(__file__).resolve().parents[1] / "datasets" / "flags"


def load_flags() -> Dataset:
    """Load the flags manifest folder (built by scripts/build_flags.py from npm flag-icons@7.5.0, MIT)."""
    from mmzoo.data.manifest import load_manifest

    dataset = load_manifest(FOLDER)
    return replace(dataset, name="flags", source="flag-icons@7.5.0 (MIT), flags rasterised by scripts/build_flags.py",
                   extra={**dataset.extra, "attribution": str(FOLDER / "ATTRIBUTION.md")})
