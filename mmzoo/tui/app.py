"""Provides the mmzoo Textual app and make_app(), the one factory the CLI and the tests use."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from mmzoo.tui.catalog import Catalog, load_catalog
from mmzoo.tui.commands import MmzooCommands
from mmzoo.tui.messages import (
    AnalyseRequested,
    DistillRequested,
    ExportRequested,
    ResumeRequested,
    RunsChanged,
    RunSelected,
    RunsRequested,
    TrainRequested,
)
from mmzoo.tui.screens.errors import ErrorsScreen
from mmzoo.tui.screens.export import ExportScreen
from mmzoo.tui.screens.runs import RunsScreen
from mmzoo.tui.screens.train import TrainScreen
from mmzoo.tui.screens.zoo import ZooScreen
from mmzoo.tui.widgets.confirm import Confirm

# The five screen keys share one footer entry, so every screen's own keys still fit in 80 columns.
SCREEN_KEYS = Binding.Group("screens")


class MmzooApp(App):
    """Five screens, one per mode so each keeps its state (a training run goes on while you browse)."""

    TITLE = "mmzoo"
    CSS_PATH = "mmzoo.tcss"
    SCREENS = {"zoo": ZooScreen, "train": TrainScreen, "runs": RunsScreen, "export": ExportScreen,
               "errors": ErrorsScreen}
    MODES = {"zoo": "zoo", "train": "train", "runs": "runs", "export": "export", "errors": "errors"}
    DEFAULT_MODE = "zoo"
    COMMANDS = App.COMMANDS | {MmzooCommands}
    BINDINGS = [
        Binding("z", "switch_mode('zoo')", "Zoo", group=SCREEN_KEYS),
        Binding("t", "switch_mode('train')", "Train", group=SCREEN_KEYS),
        Binding("r", "switch_mode('runs')", "Runs", group=SCREEN_KEYS),
        Binding("e", "switch_mode('export')", "Export", group=SCREEN_KEYS),
        Binding("a", "switch_mode('errors')", "Analyse errors", group=SCREEN_KEYS),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, registry_file: str | None = None, runs_dir: str | Path | None = None) -> None:
        super().__init__()
        self.registry_file = str(registry_file) if registry_file else None
        self.runs_dir = Path(runs_dir or os.environ.get("MMZOO_RUNS", "runs"))
        self.selected_run: Path | None = None  # the run last highlighted on the runs screen
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """Plugins and registry, loaded on first use (torch-free) and kept until reloaded."""
        if self._catalog is None:
            self._catalog = load_catalog(self.registry_file)
        return self._catalog

    def reload_catalog(self) -> Catalog:
        self._catalog = load_catalog(self.registry_file, refresh=True)
        return self._catalog

    def action_reload(self) -> None:
        """Re-discover plugins and re-read the registry (after editing registry.yaml or installing a plugin)."""
        self.reload_catalog()
        for mode in ("zoo", "train"):
            screen = self.opened(mode)
            if screen is not None:
                screen.catalog_changed()
        for line in self.catalog.summary():
            self.notify(line, title="problem found", severity="error", markup=False, timeout=10)
        self.notify("reloaded plugins and registry", timeout=3)

    async def action_quit(self) -> None:
        """Quit; while a run trains, ask first (quitting cancels it, keeping its last checkpoint)."""
        if isinstance(self.screen, Confirm):
            return  # already asking
        train = self.opened("train")
        if train is None or not train.running:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        await self.push_screen(Confirm("A run is training. Quit anyway? It stops after this step and keeps its "
                                       "last complete checkpoint; resume it later from Runs (u).", yes="Quit",
                                       no="Keep training"), answered)

    async def open_run(self, path: Path) -> None:
        await self.switch_mode("runs")
        self.get_screen("runs").focus_run(path)

    def on_mount(self) -> None:
        for line in self.catalog.summary():
            self.notify(line, title="problem found", severity="error", markup=False, timeout=10)

    async def on_train_requested(self, message: TrainRequested) -> None:
        await self.switch_mode("train")
        self.get_screen("train").pick(message.name)

    async def on_resume_requested(self, message: ResumeRequested) -> None:
        await self.switch_mode("train")
        self.get_screen("train").resume(message.path)

    async def on_distill_requested(self, message: DistillRequested) -> None:
        await self.switch_mode("train")
        self.get_screen("train").distill(message.choice)

    async def on_export_requested(self, message: ExportRequested) -> None:
        self.selected_run = message.path
        await self.switch_mode("export")
        self.get_screen("export").choose(message.path)

    async def on_analyse_requested(self, message: AnalyseRequested) -> None:
        self.selected_run = message.path
        await self.switch_mode("errors")
        self.get_screen("errors").choose(message.path)

    async def on_runs_requested(self, message: RunsRequested) -> None:
        await self.switch_mode("runs")
        screen = self.get_screen("runs")
        screen.set_filter(message.query)
        screen.query_one("#runs-table").focus()

    def on_run_selected(self, message: RunSelected) -> None:
        self.selected_run = message.path

    def on_runs_changed(self, _message: RunsChanged) -> None:
        for mode in ("runs", "export", "errors"):
            screen = self.opened(mode)
            if screen is not None:
                screen.reload()

    def opened(self, mode: str):
        """The base screen of a mode the user has already visited, else None (never created just to update)."""
        try:
            stack = self.get_screen_stack(mode)
        except KeyError:
            return None
        return stack[0] if stack else None


def make_app(registry_file: str | None = None, runs_dir: str | Path | None = None) -> MmzooApp:
    """The TUI over the project's registry (plus ``registry_file``) and the runs under ``runs_dir``."""
    return MmzooApp(registry_file=registry_file, runs_dir=runs_dir)
