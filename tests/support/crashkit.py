"""Helpers for the crash tests: start the CLI, kill -9 it at a chosen moment, fake a dead owner, list leftovers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# A tiny fusion that early-stops (patience 2) at epoch 9 in about 1 s per epoch.
ES_REGISTRY = """\
models:
  es_concat:
    description: tiny concat fusion that early-stops, for the crash tests
    text: {encoder: small_text, dim: 16, max_length: 16}
    image: {encoder: small_cnn, image_size: 16, channels: [8, 8], dim: 16}
    fusion: concat
    task: {dataset: digits-match}
    train: {epochs: 30, lr: 0.03, batch_size: 256, patience: 2, precision: fp32}
"""


def start_cli(*args: str) -> subprocess.Popen:
    """The CLI in the background (to be killed); its environment is the suite's, like ``run_cli``'s, so results compare."""
    return subprocess.Popen([sys.executable, "-m", "mmzoo.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300.0, delay: float = 0.0) -> bool:
    """kill -9 ``proc`` once ``ready()`` is true (then ``delay`` seconds later); False if it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            if delay:
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise AssertionError("the process never reached the kill point")
    return False


def checkpoint_epoch(root: Path, model: str) -> int:
    """The epoch LATEST names in the newest run of ``model`` under ``root`` (0 when none yet)."""
    found = sorted(Path(root).glob(f"{model}/*/checkpoints/LATEST"))
    if not found:
        return 0
    try:
        text = found[-1].read_text().strip()
    except OSError:
        return 0
    return int(text.split("-")[1]) if text.startswith("epoch-") else 0


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def mark_interrupted(run: Path, *remove: str) -> None:
    """Make a run folder look killed mid-way: status running, owned by a dead process; ``remove`` its results."""
    for name in remove:
        (run / name).unlink(missing_ok=True)
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": dead_pid(), "host": socket.gethostname()}))


def leftovers(root: Path) -> list[Path]:
    """Temporary files and folders anywhere under ``root`` (the run lock file is not one)."""
    return [p for p in Path(root).rglob(".*") if p.name != ".lock"]


def metrics(run: Path) -> dict:
    data = json.loads((Path(run) / "metrics.json").read_text())
    return {k: data[k] for k in ("val", "test", "best_epoch", "epochs")}
