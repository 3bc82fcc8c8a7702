"""Provides who-runs-what records: the owner of a run (pid, host, start time), run locks, stale leftovers.

- ``owner()`` is what a writer records in status.json, so a reader can tell a live run
  from one whose process died (``alive``: pid gone, or reused by a younger process).
- ``hold(folder)`` takes an exclusive ``flock`` on ``folder/.lock`` for as long as a run
  trains, and writes its owner there; a second trainer is refused with the holder named.
  The kernel drops the lock when the holder dies, even by kill -9.
- Temporary names carry their writer's pid (``.NAME.<pid>.<random>.tmp``,
  ``.epoch-NNNN.<pid>.tmp``, ``.mmzoo-export-<pid>-<random>``); ``sweep`` removes those
  whose writer is dead, and never one whose writer still runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmzoo.errors import RunError

LOCK_NAME = ".lock"
# A temporary name and the pid inside it: atomic files, checkpoint folders, export work folders.
TEMP_PATTERNS = (re.compile(r"\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp"),  # mmzoo.atomic
                 re.compile(r"\.epoch-\d+\.(?P<pid>\d+)\.(tmp|old)"),  # mmzoo.train.checkpoint
                 re.compile(r"\.mmzoo-export-(?P<pid>\d+)-[A-Za-z0-9_]+"))  # mmzoo.onnx.export
# Leftovers written before names carried a pid: stale once this old (no mmzoo write takes this long).
UNOWNED_STALE_SECONDS = 6 * 3600
UNOWNED_PATTERNS = (re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp"), re.compile(r"\.epoch-\d+\.tmp"),
                    re.compile(r"\.mmzoo-export-[A-Za-z0-9_]{8}"))


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("gone", 0)
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], int(fields[19])


def owner() -> dict:
    """This process as a run's owner: pid, host, and the pid's start time (guards against pid reuse)."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"pid": pid, "host": socket.gethostname(), "pid_started": stat[1] if stat else None,
            "since": time.time()}


def process_alive(pid, started: int | None = None) -> bool:
    """Whether ``pid`` (on this host) still runs and is the process that recorded ``started``."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    stat = _proc_stat(pid)
    if stat is None:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, ticks = stat
    if state in ("gone", "Z", "X"):  # a zombie is dead; it only waits for its parent to reap it
        return False
    return started is None or ticks == started


def alive(record: dict) -> bool | None:
    """Whether the owner named in ``record`` (a status or lock record) runs; None when it cannot be told."""
    host = record.get("host")
    if host is not None and host != socket.gethostname():
        return None  # another machine sharing the runs folder: its processes are not visible here
    if "pid" not in record:
        return None
    return process_alive(record["pid"], record.get("pid_started"))


def describe(record: dict) -> str:
    when = record.get("since")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) else ""
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}{since}"


def read_lock(folder: Path) -> dict:
    try:
        record = json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def lock_held(folder: Path) -> bool | None:
    """Whether some process holds ``folder``'s run lock; None when the folder has no lock file."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: a probe never looks like a second trainer
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


@contextmanager
def hold(folder: Path, what: str, wait: float = 2.0) -> Iterator[dict]:
    """Hold ``folder``'s run lock while the block runs; RunError naming the holder if another process has it.

    ``wait`` covers a reader's momentary probe (``lock_held``); a trainer holds the lock far longer.
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunError(f"cannot lock {what}: {path}: {exc.strerror}", hint="the run folder must be writable") from None
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            os.close(fd)
            holder = read_lock(folder)
            raise RunError(f"{what} is being trained by {describe(holder) if holder else 'another process'} "
                           f"(it holds {path})", hint="wait for it to finish, or stop that process first; "
                           "a run trains in one process at a time") from None
    record = owner()
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
        yield record
    finally:
        os.close(fd)  # releases the lock; the file stays, so no second trainer can lock a deleted inode


def _stale(entry: Path, now: float) -> bool:
    for pattern in TEMP_PATTERNS:
        match = pattern.fullmatch(entry.name)
        if match:
            pid = int(match["pid"])
            return pid != os.getpid() and not process_alive(pid)
    if any(pattern.fullmatch(entry.name) for pattern in UNOWNED_PATTERNS):
        try:
            return now - entry.lstat().st_mtime > UNOWNED_STALE_SECONDS
        except OSError:
            return False
    return False


def sweep(*folders: Path) -> list[Path]:
    """Remove the temporary files and folders in ``folders`` whose writer is dead; returns what went."""
    removed = []
    now = time.time()
    for folder in folders:
        try:
            entries = list(Path(folder).glob(".*"))
        except OSError:
            continue
        for entry in entries:
            if not _stale(entry, now):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


def sweep_runs(root: Path) -> list[Path]:
    """Stale leftovers in every run folder (and its checkpoints) under a runs root."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = []
    for run in root.glob("*/*"):
        folders += [run, run / "checkpoints"]
    return sweep(*folders)
