"""CUDA paths (device selection, autocast, the GPU check script); skipped without a GPU, except the skip message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    return gpu_check


def test_gpu_check_says_it_skipped_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the script runs every check instead (see test_gpu_check_passes)")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "gpu-check skipped: CUDA is not available" in res.stdout


@pytest.mark.cuda
def test_device_selection_and_autocast_on_cuda():
    check = _gpu_check()
    check.check_devices()
    check.check_autocast()
    assert [status for _, status, _ in check.results] == ["ok", "ok"]


@pytest.mark.cuda
@pytest.mark.slow
def test_gpu_check_passes():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--epochs", "1"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "0 failed" in res.stdout
