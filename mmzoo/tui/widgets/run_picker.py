"""Provides FinishedRunPicker: a screen's Select of finished runs, newest first, that follows the app's chosen run."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select

from mmzoo.errors import MmzooError
from mmzoo.runs.folders import list_runs


class FinishedRunPicker:
    """Mixin for a Screen holding a ``Select`` (``RUN_SELECT``, a CSS id) of the finished runs under the app's folder.

    Every time the screen comes back it re-reads the runs folder (a run may have finished
    meanwhile) and selects the run the user last picked elsewhere (``app.selected_run``).
    """

    RUN_SELECT = ""  # e.g. "#export-run"
    run_paths: list[str]

    def on_screen_resume(self) -> None:
        self.reload()
        if self.app.selected_run is not None:
            self.choose(self.app.selected_run)

    def reload(self) -> None:
        select = self.query_one(self.RUN_SELECT, Select)
        try:
            runs = [r for r in list_runs(self.app.runs_dir) if r.finished]
        except (OSError, MmzooError):  # an unreadable folder lists nothing rather than crashing the screen
            runs = []
        current = select.value
        self.run_paths = [str(r.path) for r in reversed(runs)]
        select.set_options([(r.name, str(r.path)) for r in reversed(runs)])
        if current in self.run_paths:
            select.value = current

    def choose(self, path: Path) -> None:
        if str(path) in self.run_paths:
            self.query_one(self.RUN_SELECT, Select).value = str(path)
