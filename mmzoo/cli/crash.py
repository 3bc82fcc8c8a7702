"""Provides the CLI's safety net: an unexpected exception becomes one line, its traceback a log file.

Tracebacks are for bugs: users see "internal error in mmzoo X; details in FILE; please report it",
the file holds the full traceback, and ``MMZOO_DEBUG=1`` prints it to stderr as well.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path


def log_dir() -> Path:
    """``MMZOO_LOG_DIR``, else ``logs/`` in mmzoo's cache folder (``MMZOO_CACHE`` or ~/.cache/mmzoo)."""
    explicit = os.environ.get("MMZOO_LOG_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("MMZOO_CACHE", Path.home() / ".cache" / "mmzoo")) / "logs"


def _where(exc: BaseException) -> str:
    """The innermost frame inside mmzoo (else the innermost at all), as ``path:line``."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "mmzoo" in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def report(exc: BaseException, command: str, argv: list[str]) -> int:
    """Write the traceback to a log file, print one line naming it; returns the exit status (70, EX_SOFTWARE)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    header = f"mmzoo {' '.join(argv)}\n{time.strftime('%Y-%m-%d %H:%M:%S')}  python {sys.version.split()[0]}\n\n"
    what = f"{type(exc).__name__} at {_where(exc)}"
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        # argv and messages may hold bytes that are not UTF-8 (kept as surrogates): never fail on them here
        path.write_text(header + text, encoding="utf-8", errors="backslashreplace")
        where = str(path)
        shown = os.environ.get("MMZOO_DEBUG") == "1"
    except OSError as err:
        where = f"the traceback above (the log could not be written: {err.strerror or err})"
        shown = True
    if shown:
        print(text, file=sys.stderr, end="")
    print(f"mmzoo: internal error in `{command}` ({what}); details in {where}; please report it with that "
          "traceback", file=sys.stderr)
    return 70
