"""Provides the runs screen: a sortable table of runs; marked runs are compared in the panel below."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from mmzoo.errors import MmzooError
from mmzoo.runs.folders import Run, list_runs
from mmzoo.tui.messages import ExportRequested, ResumeRequested, RunSelected
from mmzoo.tui.widgets.compare import ComparePanel

# (key, heading, RunRow attribute, number format or None)
COLUMNS = (
    ("mark", "✓", None, None),
    ("run", "run", "name", None),
    ("kind", "kind", "kind", None),
    ("state", "state", "state", None),
    ("dataset", "dataset", "dataset", None),
    ("acc", "test acc", "accuracy", ".4f"),
    ("f1", "macro-F1", "macro_f1", ".4f"),
    ("seconds", "train s", "seconds", ".1f"),
)
SORTABLE = [c[0] for c in COLUMNS if c[2]]


@dataclass
class RunRow:
    """What the table shows of one run folder, read once per reload."""

    path: Path
    name: str
    kind: str
    state: str
    dataset: str
    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float | None = None

    @classmethod
    def read(cls, run: Run) -> RunRow:
        try:
            spec, state = run.spec, run.status.get("state", "unknown")
            metrics = run.metrics if run.finished else {}
            if not isinstance(spec, dict):
                raise ValueError("spec.yaml is not a mapping")
        except (MmzooError, OSError, ValueError, yaml.YAMLError) as exc:  # a damaged folder is listed, not fatal
            return cls(run.path, run.name, "?", f"unreadable: {exc}", "")
        test = metrics.get("test", {})
        return cls(run.path, run.name, "ensemble" if spec.get("kind") == "ensemble" else "model", state,
                   str(spec.get("data", {}).get("dataset", "")), test.get("accuracy"), test.get("macro_f1"),
                   metrics.get("train_seconds"))


class RunsScreen(Screen):
    """List, sort, mark and compare runs; resume an interrupted one or send a finished one to export."""

    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort", "Sort"),
        Binding("u", "resume", "Resume"),
        Binding("x", "export", "To export"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.marked: set[Path] = set()
        self.sort_key, self.sort_reverse = "run", False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield ComparePanel(id="compare")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        table = self.query_one("#runs-table", DataTable)
        for key, heading, _, _ in COLUMNS:
            table.add_column(heading, key=key)
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        try:
            runs = list_runs(self.app.runs_dir)
        except OSError as exc:
            self.notify(f"cannot list {self.app.runs_dir}: {exc}", severity="error", markup=False)
            runs = []
        self.rows = [RunRow.read(run) for run in runs]
        self.marked &= {row.path for row in self.rows}
        self.fill()

    def fill(self) -> None:
        """Write the rows in the current sort order, keeping the cursor on the same run."""
        table = self.query_one("#runs-table", DataTable)
        current = self.current()
        attribute = next(c[2] for c in COLUMNS if c[0] == self.sort_key)
        present = [r for r in self.rows if getattr(r, attribute) is not None]
        missing = [r for r in self.rows if getattr(r, attribute) is None]  # blanks stay last either way
        ordered = sorted(present, key=lambda r: getattr(r, attribute), reverse=self.sort_reverse) + missing
        table.clear()
        for row in ordered:
            cells = []
            for key, _, attr, fmt in COLUMNS:
                if key == "mark":
                    cells.append("✓" if row.path in self.marked else "")
                elif fmt:
                    value = getattr(row, attr)
                    cells.append(Text("" if value is None else format(value, fmt), justify="right"))
                else:
                    cells.append(getattr(row, attr))
            table.add_row(*cells, key=str(row.path))
        for key, heading, _, _ in COLUMNS:
            arrow = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_key else ""
            table.columns[key].label = Text(heading + arrow)
        if current is not None and str(current.path) in table.rows:
            table.move_cursor(row=table.get_row_index(str(current.path)))
        table.refresh()

    def current(self) -> RunRow | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if str(r.path) == key), None)

    def focus_run(self, path: Path) -> None:
        table = self.query_one("#runs-table", DataTable)
        if str(path) in table.rows:
            table.move_cursor(row=table.get_row_index(str(path)))
        table.focus()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(RunSelected(Path(event.row_key.value)))

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
            self.sort_key = key
            self.fill()

    def action_sort(self) -> None:
        """Cycle the sort column; a second pass through the columns sorts descending."""
        index = SORTABLE.index(self.sort_key) + 1
        if index == len(SORTABLE):
            index, self.sort_reverse = 0, not self.sort_reverse
        self.sort_key = SORTABLE[index]
        self.fill()
        self.notify(f"sorted by {self.sort_key}{' (descending)' if self.sort_reverse else ''}", timeout=2)

    def action_mark(self) -> None:
        row = self.current()
        if row is None:
            return
        self.marked ^= {row.path}
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(str(row.path), "mark", "✓" if row.path in self.marked else "")

    def action_compare(self) -> None:
        chosen = [r for r in self.rows if r.path in self.marked] or [r for r in [self.current()] if r]
        finished = [r for r in chosen if r.state == "finished"]
        skipped = [r.name for r in chosen if r.state != "finished"]
        if skipped:
            self.notify(f"left out unfinished runs: {', '.join(skipped)}", severity="warning", markup=False)
        if not finished:
            self.notify("mark finished runs with space, then press c", severity="warning")
            return
        try:
            self.query_one(ComparePanel).show([Run(r.path) for r in finished], self.app.runs_dir)
        except (MmzooError, OSError, KeyError, ValueError) as exc:
            self.notify(f"cannot compare: {exc}", title="run error", severity="error", markup=False)

    def action_resume(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.kind != "model" or row.state == "finished":
            self.notify(f"{row.name} is a finished {row.kind}; only interrupted model runs resume",
                        severity="warning", markup=False)
            return
        self.post_message(ResumeRequested(row.path))

    def action_export(self) -> None:
        row = self.current()
        if row is None or row.state != "finished":
            self.notify("pick a finished run to export", severity="warning")
            return
        self.post_message(ExportRequested(row.path))

    def action_reload(self) -> None:
        self.reload()
