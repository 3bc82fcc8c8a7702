"""Provides progress bars on stderr (rich), quiet when stderr is not a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **fields) -> None:
        pass


class _Bar:
    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def update(self, **fields) -> None:
        self.progress.update(self.task, **fields)


@contextmanager
def progress_bar(description: str, total: int, fields: str = ""):
    """A transient rich progress bar; ``fields`` is extra text formatted from update(**fields)."""
    if not sys.stderr.isatty():
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if fields:
        columns.append(TextColumn(fields))
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total, loss=float("nan"), metric=float("nan"))
        yield _Bar(progress, task)
