"""Provides atomic file writes: a reader sees the old file or the new one, never half of one.

Everything lands with the mode an ordinary ``open()`` would give it (0666, or 0777 for
folders, less the process umask): temporary files are created 0600, so each is
re-moded before it is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is process-wide)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fix_mode(path: Path, mask: int) -> None:
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o777 & ~mask)
        for child in path.iterdir():
            _fix_mode(child, mask)
    elif path.is_file():
        os.chmod(path, 0o666 & ~mask)


def unwritable(folder: str | Path) -> str | None:
    """Why files could not be written into ``folder`` (created if missing), or None when they can.

    Nothing is left behind: the folder, or its nearest existing ancestor, is probed, so a long
    job can refuse a bad output location before it starts rather than fail at the end.
    """
    path = Path(folder).absolute()
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a dangling symbolic link"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder" if probe == path else f"{probe} is a file, not a folder"
    try:  # try it rather than ask os.access, which says yes to root even where the filesystem says no
        os.rmdir(tempfile.mkdtemp(prefix=f".mmzoo-probe.{os.getpid()}.", dir=probe))
    except OSError as exc:
        return f"{probe} is not writable ({exc.strerror})"
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid in the name lets a later run tell a crash's leftover from a live write (mmzoo.runs.lock).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def publish(staged: str | Path, final: str | Path) -> None:
    """Move a finished file or folder (built on the same filesystem) to ``final``, replacing what is there.

    Modes are set from the umask first (the staging folder may be a 0700 mkdtemp). A file
    is replaced atomically; a folder is swapped in with two renames.
    """
    staged, final = Path(staged), Path(final)
    _fix_mode(staged, umask())
    if staged.is_file():
        with open(staged, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, final)
        return
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows))


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a dict of torch tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_arrays(path: str | Path, arrays: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a dict of numpy arrays as safetensors (torch-free), atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
