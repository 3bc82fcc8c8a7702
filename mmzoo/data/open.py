"""Provides opening a dataset by registered name or by folder: the one place data is opened (torch-free)."""

from __future__ import annotations

from typing import Any

from mmzoo.zoo.plugins import get_zoo

_OPENED: dict[tuple, Any] = {}  # registered datasets already built in this process


def open_dataset(name_or_path: str, **params: Any):
    """A registered dataset by name, or a user folder holding manifest.jsonl/.csv."""
    from pathlib import Path

    from mmzoo.errors import DataError

    part = get_zoo().get("dataset", name_or_path)
    if part is not None:
        # Registered datasets are built once per process: a zoo opens the same one for every model
        # (emoji decodes its sprite sheets in about 2 s). Folders are read afresh, as users edit them.
        key = (name_or_path, part.plugin, str(part.factory), repr(sorted(params.items())))
        if key not in _OPENED:
            _OPENED[key] = part.create(**params)
        return _OPENED[key]
    if Path(name_or_path).is_dir():
        from mmzoo.data.manifest import load_manifest
        from mmzoo.data.tokens import is_token_folder, load_token_folder

        if is_token_folder(name_or_path):  # CoNLL files, or manifest.jsonl rows of tokens and tags
            return load_token_folder(name_or_path)

        return load_manifest(name_or_path)
    raise DataError(f"dataset {name_or_path!r} is neither a registered dataset nor a folder",
                    hint=f"registered: {', '.join(get_zoo().names('dataset'))}; or pass a folder with manifest.jsonl")
