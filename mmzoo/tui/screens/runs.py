"""Provides the runs screen: a filterable, sortable table of runs to tag, delete, open or compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from mmzoo.errors import MmzooError
from mmzoo.runs.folders import Run, list_runs
from mmzoo.tui.messages import AnalyseRequested, ExportRequested, ResumeRequested, RunsChanged, RunSelected
from mmzoo.tui.widgets.compare import ComparePanel
from mmzoo.tui.widgets.confirm import Confirm
from mmzoo.tui.widgets.table import JumpTable

# (key, heading, RunRow attribute, number format or None): the results come right after the run, so 80
# columns show them; dataset, tags and time follow.
COLUMNS = (
    ("mark", "✓", None, None),
    ("run", "run", "name", None),
    ("acc", "test acc", "accuracy", ".4f"),
    ("f1", "macro-F1", "macro_f1", ".4f"),
    ("state", "state", "state", None),
    ("kind", "kind", "kind", None),
    ("dataset", "dataset", "dataset", None),
    ("tags", "tags", "tag_text", None),
    ("seconds", "train s", "seconds", ".1f"),
)
HINT = "⏎ detail · / filter · g tag · s sort · u resume · x export · [ ] compare tabs"
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
    tags: tuple[str, ...] = ()

    @property
    def tag_text(self) -> str:
        return " ".join(self.tags)

    @classmethod
    def read(cls, run: Run) -> RunRow:
        from mmzoo.runs.manage import read_tags

        try:
            spec, state = run.spec, run.status.get("state", "unknown")
            metrics = run.metrics if run.finished else {}
            tags = tuple(read_tags(run.path))
            if not isinstance(spec, dict):
                raise ValueError("spec.yaml is not a mapping")
        except (MmzooError, OSError, ValueError, yaml.YAMLError) as exc:  # a damaged folder is listed, not fatal
            return cls(run.path, run.name, "?", f"unreadable: {exc}", "")
        test = metrics.get("test", {})
        return cls(run.path, run.name, "ensemble" if spec.get("kind") == "ensemble" else "model", state,
                   str(spec.get("data", {}).get("dataset", "")), test.get("accuracy"),
                   test.get("macro_f1", test.get("f1")),  # a token run's F1 column is its entity F1, as in `mmzoo runs`
                   metrics.get("train_seconds"), tags)


class RunsScreen(Screen):
    """List, filter, sort, tag, delete, mark and compare runs; open a run's detail, resume, export or analyse it."""

    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Compare"),
        Binding("enter", "detail", "Detail", key_display="⏎"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "filter", "Filter", show=False),
        Binding("g", "tag", "Tag", show=False),
        Binding("s", "sort", "Sort", show=False),
        Binding("u", "resume", "Resume", show=False),
        Binding("x", "export", "To export", show=False),
        Binding("k", "distill", "Distil", show=False),
        Binding("left_square_bracket", "tab(-1)", "Prev tab", show=False),
        Binding("right_square_bracket", "tab(1)", "Next tab", show=False),
        Binding("escape", "escape", "Close", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.marked: set[Path] = set()
        self.sort_key, self.sort_reverse = "run", False
        self.editing = ""  # "filter" or "tag" while the input line is in use
        self._filter_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: words in run, kind, state, dataset or tags; #tag for a tag",
                    id="runs-filter", compact=True)
        yield Static(HINT, id="runs-hint", markup=False)
        yield JumpTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield ComparePanel(id="compare")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        table = self.query_one("#runs-table", DataTable)
        for key, heading, _, _ in COLUMNS:
            table.add_column(heading, key=key)
        self.query_one(ComparePanel).display = False  # the table gets the room until runs are compared
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

    def visible(self) -> list[RunRow]:
        from mmzoo.runs.manage import matches

        query = self._filter_text
        return [r for r in self.rows if matches(query, r.name, r.kind, r.state, r.dataset, tags=list(r.tags))]

    def fill(self) -> None:
        """Write the rows that pass the filter in the current sort order, keeping the cursor on the same run."""
        table = self.query_one("#runs-table", DataTable)
        current = self.current()
        attribute = next(c[2] for c in COLUMNS if c[0] == self.sort_key)
        rows = self.visible()
        present = [r for r in rows if getattr(r, attribute) is not None]
        missing = [r for r in rows if getattr(r, attribute) is None]  # blanks stay last either way
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
        shown = f"{len(ordered)} of {len(self.rows)} runs" if self._filter_text else f"{len(self.rows)} runs"
        self.sub_title = f"Runs · {shown}" + (f" matching {self._filter_text!r}" if self._filter_text else "")
        table.refresh()

    def current(self) -> RunRow | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if str(r.path) == key), None)

    def focus_run(self, path: Path) -> None:
        table = self.query_one("#runs-table", DataTable)
        if str(path) not in table.rows and self._filter_text:
            self.set_filter("")
        if str(path) in table.rows:
            table.move_cursor(row=table.get_row_index(str(path)))
        table.focus()

    def set_filter(self, text: str) -> None:
        self._filter_text = text.strip()
        self.query_one("#runs-filter", Input).value = self._filter_text
        self.fill()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(RunSelected(Path(event.row_key.value)))

    @on(DataTable.RowSelected, "#runs-table")
    def _selected(self) -> None:
        self.action_detail()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
            self.sort_key = key
            self.fill()

    # -- the input line: filter, or the current run's tags ---------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#runs-filter", Input)
        self.editing = "filter"
        field.placeholder = "filter: words in run, kind, state, dataset or tags; #tag for a tag"
        field.value = self._filter_text
        field.focus()

    def action_tag(self) -> None:
        row = self.current()
        if row is None:
            return
        field = self.query_one("#runs-filter", Input)
        self.editing = "tag"
        field.placeholder = f"tags of {row.name} (space-separated; empty clears)"
        field.value = " ".join(row.tags)
        field.focus()

    @on(Input.Changed, "#runs-filter")
    def _typed(self, event: Input.Changed) -> None:
        if self.editing != "tag":
            self._filter_text = event.value.strip()
            self.fill()

    @on(Input.Submitted, "#runs-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.editing == "tag":
            self._save_tags(event.value)
        self._leave_input()

    def _save_tags(self, text: str) -> None:
        from mmzoo.runs.manage import parse_tags, set_tags

        row = self.current()
        if row is None:
            return
        try:
            tags = set_tags(row.path, parse_tags(text))
        except MmzooError as exc:
            self.notify(str(exc), title="cannot tag", severity="error", markup=False, timeout=15)
            return
        self.notify(f"{row.name}: {'tags ' + ', '.join(tags) if tags else 'tags cleared'}", timeout=4, markup=False)
        self.reload()

    def _leave_input(self) -> None:
        field = self.query_one("#runs-filter", Input)
        self.editing = ""
        field.placeholder = "filter: words in run, kind, state, dataset or tags; #tag for a tag"
        field.value = self._filter_text
        self.query_one("#runs-table").focus()

    def action_escape(self) -> None:
        if self.editing:
            self._leave_input()
        elif self.query_one(ComparePanel).display:
            self.query_one(ComparePanel).display = False
            self.query_one("#runs-table").focus()

    # -- actions on runs -----------------------------------------------------------------------------------

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
        panel = self.query_one(ComparePanel)
        try:
            panel.display = True
            panel.show([Run(r.path) for r in finished], self.app.runs_dir)
        except (MmzooError, OSError, KeyError, ValueError) as exc:
            self.notify(f"cannot compare: {exc}", title="run error", severity="error", markup=False)

    def action_tab(self, step: int) -> None:
        panel = self.query_one(ComparePanel)
        if not panel.display:
            self.notify("compare runs first: mark them with space, then press c", severity="warning")
            return
        panel.next_tab(step)

    def action_detail(self) -> None:
        from mmzoo.tui.screens.run_detail import RunDetail

        row = self.current()
        if row is None:
            return

        def closed(choice: str | None) -> None:
            if choice == "export":
                self.action_export()
            elif choice == "analyse":
                self.post_message(AnalyseRequested(row.path))
            elif choice == "distill":
                self.action_distill()

        self.app.push_screen(RunDetail(row.path), closed)

    def action_delete(self) -> None:
        row = self.current()
        if row is None:
            return
        train = self.app.opened("train")
        if train is not None and train.running and train.run_path == row.path:
            self.notify(f"{row.name} is training now; cancel it first", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            from mmzoo.runs.manage import delete_run

            try:
                delete_run(row.path, self.app.runs_dir)
            except MmzooError as exc:
                self.notify(str(exc), title="cannot delete", severity="error", markup=False, timeout=15)
                return
            self.marked.discard(row.path)
            self.notify(f"deleted {row.name}", timeout=4, markup=False)
            self.post_message(RunsChanged())

        self.app.push_screen(Confirm(f"Delete run {row.name} ({row.state}) and all its files: weights, metrics, "
                                     f"predictions, exports? This cannot be undone.", yes="Delete",
                                     no="Keep"), answered)

    def action_resume(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.kind != "model" or row.state == "finished":
            self.notify(f"{row.name} is a finished {row.kind}; only interrupted model runs resume",
                        severity="warning", markup=False)
            return
        self.post_message(ResumeRequested(row.path))

    def action_distill(self) -> None:
        from mmzoo.tui.widgets.distill_form import open_distill

        row = self.current()
        if row is None or row.kind != "ensemble" or row.state != "finished":
            self.notify("pick a finished ensemble run to distil", severity="warning")
            return
        open_distill(self, row.path)

    def action_export(self) -> None:
        row = self.current()
        if row is None or row.state != "finished":
            self.notify("pick a finished run to export", severity="warning")
            return
        self.post_message(ExportRequested(row.path))

    def action_reload(self) -> None:
        self.reload()
