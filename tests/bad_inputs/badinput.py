"""Helpers of the bad-input suite: run the CLI in-process, and prove that nothing outside the output changed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmzoo.cli import main


@dataclass
class Result:
    rc: int
    out: str
    err: str


def run(capsys, *argv: str) -> Result:
    """``mmzoo ARGV`` in this process; argparse's own exits (status 2) are returned like any other."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(rc, captured.out, captured.err)


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (except under ``skip``) with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if path == skip:  # a refused run may leave its failed run folder there: that is the point of out/
                continue
            stat = path.lstat()
            out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


def assert_refused(result: Result, *names: str, rc: int = 1) -> None:
    """Exit status ``rc``, no traceback anywhere, and the output names every one of ``names``.

    Diagnostics go to stderr; `mmzoo data check` prints its report (its result) to stdout.
    """
    assert result.rc == rc, (result.rc, result.out, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err
    assert "internal error" not in result.err, result.err
    for name in names:
        assert name in result.err + result.out, f"{name!r} not in: {result.err}{result.out}"


class Workspace:
    """A folder the command runs in (the current directory) with an ``out`` folder it may write to."""

    def __init__(self, root: Path):
        self.root = root
        self.out = root / "out"
        self.before: dict | None = None

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path

    def freeze(self) -> None:
        self.before = snapshot(self.root, skip=self.out)

    def assert_unchanged(self) -> None:
        """Nothing under the workspace changed, except inside ``out``."""
        assert self.before is not None, "call freeze() first"
        after = snapshot(self.root, skip=self.out)
        changed = sorted(k for k in set(after) | set(self.before) if after.get(k) != self.before.get(k))
        assert not changed, f"changed under the workspace: {changed[:5]}"


@pytest.fixture(name="ws")
def workspace(tmp_path, monkeypatch) -> Workspace:
    """Import this into a test module to get the ``ws`` fixture (this folder has no conftest.py of its own)."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MMZOO_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("MMZOO_REGISTRY", raising=False)
    return Workspace(root)
