"""Provides progress bars on stderr (rich), quiet when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
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
def progress_bar(description: str, total: int, fields: str = "", enabled: bool = True, plain: bool = True):
    """A transient rich progress bar; ``fields`` is extra text formatted from update(**fields).

    Off a terminal (CI, pipes) there is no bar; with ``plain`` a start and an end line are
    printed instead, so long work is never silent in logs.
    """
    if not enabled:
        yield _Quiet()
        return
    if not sys.stderr.isatty():
        started = time.perf_counter()
        if plain:
            print(f"{description}: {total} ...", file=sys.stderr, flush=True)
        yield _Quiet()
        if plain:
            print(f"{description}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if fields:
        columns.append(TextColumn(fields))
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total, loss=float("nan"), metric=float("nan"))
        yield _Bar(progress, task)
