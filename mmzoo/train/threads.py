"""Provides torch's CPU thread count, chosen from the work rather than from the core count.

A head over cached features is a few small matrix products per step: extra threads
only add synchronisation, and on a busy machine each OpenMP barrier waits for a
thread the scheduler has parked elsewhere (measured here: 10.5 s with one thread,
49-79 s with torch's default, next to one busy process). So:

- head over cached features: 1 thread;
- encoder forward or fine-tuning: every CPU this process may run on
  (``os.sched_getaffinity``, capped by the container's cgroup CPU quota), and by
  ``OMP_NUM_THREADS`` when the user set it;
- an explicit request (``--threads``, or ``threads:`` in a model's train section)
  wins, capped at the CPUs the process may use.

This module is torch-free so the CLI can call :func:`prefer_short_spin` before torch
is imported: OpenMP reads its wait settings once, when its runtime starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

HEAD, ENCODER = "head", "encoder"
_override: int | None = None  # set by the CLI's --threads for every model this process trains


def set_override(count: int | None) -> None:
    """The process-wide thread request (``--threads``); it wins over a model's ``threads:`` setting."""
    global _override
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"threads must be a positive integer, got {count!r}")
    _override = count


def requested(option: int | None, setting: int | None) -> int | None:
    """The request that applies: trainer Options, then ``--threads``, then the model's train section."""
    return next((v for v in (option, _override, setting) if v is not None), None)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (else the core count), capped by a cgroup CPU quota.

    A container limited to 2 CPUs often still sees every host core in its affinity mask;
    sizing the thread pool from the mask there oversubscribes the quota many times over.
    """
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        cpus = max(1, os.cpu_count() or 1)
    quota = quota_cpus()
    return min(cpus, quota) if quota else cpus


def quota_cpus(root: str = "/sys/fs/cgroup") -> int | None:
    """The CPU quota of this process's cgroup, rounded up (cgroup v2 ``cpu.max``, else v1 CFS); None when unlimited."""
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            fields = open(os.path.join(root, quota_file)).read().split()
            if period_file:
                fields.append(open(os.path.join(root, period_file)).read().strip())
            quota, period = fields[0], fields[1]
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1") or not (quota.isdigit() and period.isdigit()) or int(period) == 0:
            return None
        return max(1, -(-int(quota) // int(period)))
    return None


def _env_cap() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def choose(work: str, requested: int | None = None) -> int:
    """Threads for ``work`` (HEAD or ENCODER); ``requested`` (>= 1) overrides the choice."""
    cpus = available_cpus()
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive integer, got {requested!r}")
        return min(requested, cpus)
    if work == HEAD:
        return 1
    if work != ENCODER:
        raise ValueError(f"work must be {HEAD!r} or {ENCODER!r}, got {work!r}")
    cap = _env_cap()
    return min(cpus, cap) if cap else cpus


def use(count: int) -> int:
    """Set torch's intra-op thread count (a no-op when it is already ``count``)."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


@contextmanager
def restored() -> Iterator[None]:
    """Whatever the block sets with :func:`use`, torch's thread count is put back afterwards."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        use(before)


SPIN_COUNT = 3000  # libgomp spin iterations before an idle thread sleeps (a few microseconds)


def prefer_short_spin() -> None:
    """Idle OpenMP threads spin briefly, then sleep (unless the user chose a wait policy).

    Between two back-to-back ops a brief spin catches the next parallel region without a wake-up;
    beyond it a sleeping thread leaves the core to whoever else needs it. Fine-tuning MiniLM on
    2 cores (benchmarks/wait_policy.py), an epoch took 47 s spinning (libgomp's default), 58 s
    passive and 50 s with this short spin on a quiet machine; next to one busy process 149 s, 90 s
    and 100 s. Torch's Linux wheels use libgomp (``GOMP_SPINCOUNT``); elsewhere the OpenMP runtime
    has no such count and idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``).

    Call before torch is imported. Only process entry points (the CLI) call it: a library must
    not change the environment of the program that imports it.
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    if sys.platform.startswith("linux"):
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
