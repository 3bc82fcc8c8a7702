"""Provides the one safe pattern for model, ensemble and run names, which become folder names under runs/."""

from __future__ import annotations

import re

# A letter or digit first, then letters, digits, '_', '-' and '.', up to 100 characters; never '..'.
# So a name is always a single folder name: no '/', '\\', absolute paths, or climbing out with '..'.
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DESCRIPTION = ("1 to 100 characters: letters, digits, '_', '-' and '.', starting with a letter or digit, "
               "without '..'")


def problem(name: object) -> str | None:
    """Why ``name`` cannot be a model, ensemble or run name, or None when it can."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__} ({name!r})"
    if not PATTERN.fullmatch(name) or ".." in name:
        return f"{name!r} is not a safe name: use {DESCRIPTION}"
    return None
