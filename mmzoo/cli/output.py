"""Provides plain-text tables and JSON output: results to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from mmzoo.tables import table  # noqa: F401  (re-exported: every command renders with it)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def err(message: str) -> None:
    print(message, file=sys.stderr)
