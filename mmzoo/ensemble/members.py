"""Provides ensemble members: what one member is, how it is obtained (reused or trained), and who steers it.

Executors (mmzoo.ensemble.executors) and recipes (mmzoo.ensemble.recipes) both build on this module,
which imports neither, so the three form no cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmzoo.errors import RunError
from mmzoo.runs.folders import Run, list_runs


@dataclass
class Member:
    """One member to obtain: its resolved spec and how its training data differs, if it does."""

    folder: str  # run folder name when trained, e.g. "digits_bag.bag1"
    spec: dict
    resample: dict | None = None
    train_rows: np.ndarray | None = None
    sample_weights: np.ndarray | None = None  # (N_train,), mean 1
    note: str = ""
    member_of: dict = field(default_factory=dict)


@dataclass
class Obtained:
    runs: list[Run]
    reused: list[bool]
    notes: list[str]
    boosting: dict | None = None  # alphas, errors, train_error, stopped, sample_weights (M, N), train_ids


class Datasets:
    """Datasets by name, loaded once per command."""

    def __init__(self) -> None:
        self.loaded: dict[str, object] = {}

    def get(self, spec: dict):
        from mmzoo.train.factory import open_dataset

        name = spec["task"]["dataset"]
        if name not in self.loaded:
            self.loaded[name] = open_dataset(name)
        return self.loaded[name]


def find_reusable(member: Member, fingerprint: str, root: Path | None) -> Run | None:
    """The newest finished run with this member's spec, data and resample record, own folder first."""
    candidates = list(reversed(list_runs(root)))
    candidates.sort(key=lambda run: run.model != member.folder)  # stable: newest first within each group
    for run in candidates:
        if not run.finished:
            continue
        try:
            if run.run_spec.matches(member.spec, fingerprint, member.resample):
                return run
        except RunError:
            continue
    return None


def find_resumable(member: Member, fingerprint: str, root: Path | None) -> Run | None:
    """The newest interrupted or cancelled run of exactly this member, if any.

    An ensemble that was cancelled (in the TUI) or killed part-way resumes its member from there on the
    next run, instead of training it again from scratch. A run another process still trains reads
    ``running``, not ``interrupted``, so it is never taken.
    """
    for run in reversed(list_runs(root)):
        if run.model != member.folder or run.problem or run.status.get("state") not in ("interrupted", "cancelled"):
            continue
        if run.run_spec.matches(member.spec, fingerprint, member.resample):
            return run
    return None


@dataclass
class Control:
    """How whoever asked for the members follows and steers their training.

    ``say`` takes one line of news; ``on_event`` gets the trainer's events (start, step, epoch);
    ``should_stop`` is polled between members and at every training step.
    """

    say: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))
    on_event: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None
    quiet: bool | None = None  # the trainer's own progress bar; None: only when stderr is a terminal

    def check_stop(self, what: str) -> None:
        from mmzoo.train.trainer import Cancelled

        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"cancelled before {what}; finished members are kept and reused on the next run")


def member_options(member: Member, *, out, device: str, quiet: bool, control: Control | None = None):
    """The trainer Options of a member, the same whichever executor trains it."""
    from mmzoo.train.trainer import Options

    extra = {"member_of": member.member_of}
    if member.resample is not None:
        extra["resample"] = member.resample
    return Options(out=out, device=device, run_name=member.folder, quiet=quiet, train_rows=member.train_rows,
                   sample_weights=member.sample_weights, extra_spec=extra,
                   on_event=control.on_event if control else None,
                   should_stop=control.should_stop if control else None)


def obtain(member: Member, datasets: Datasets, *, out, device: str, control: Control) -> tuple[Run, bool]:
    """Reuse a matching finished run, or train the member; returns (run, reused)."""
    from mmzoo.train.trainer import train

    fingerprint = datasets.get(member.spec).fingerprint
    run = find_reusable(member, fingerprint, out)
    if run is not None:
        control.say(f"{member.folder}: reusing finished run {run.name}")
        return run, True
    control.check_stop(f"training {member.folder}")
    quiet = not sys.stderr.isatty() if control.quiet is None else control.quiet
    options = member_options(member, out=out, device=device, quiet=quiet, control=control)
    interrupted = find_resumable(member, fingerprint, out)
    if interrupted is not None:
        control.say(f"{member.folder}: resuming interrupted run {interrupted.name}")
        return train(None, replace(options, resume=str(interrupted.path))), False
    control.say(f"{member.folder}: training" + (f" ({member.note})" if member.note else ""))
    return train(member.spec, options), False
