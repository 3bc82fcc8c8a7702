"""Provides the error-analysis screen: a run's whole val or test split, its mistakes browsable with their inputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Label, Select, Static, Switch

from mmzoo.errors import MmzooError, RunError
from mmzoo.runs.folders import Run
from mmzoo.tui.widgets.halfblock import HalfBlockImage
from mmzoo.tui.widgets.run_picker import FinishedRunPicker
from mmzoo.tui.widgets.table import JumpTable

if TYPE_CHECKING:
    from mmzoo.runs.predictions import SplitPredictions

ANY = "any"
SPLITS = ("val", "test")  # the splits a finished run keeps predictions of (probs_<split>.safetensors)


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


class ErrorsScreen(FinishedRunPicker, Screen):
    """Pick a finished run and a split; browse its mistakes (or all samples), filtered by true or predicted class."""

    RUN_SELECT = "#errors-run"

    AUTO_FOCUS = "#errors-table"
    BINDINGS = [
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("m", "matrix", "Matrix/list"),
        Binding("w", "toggle_wrong", "Wrong/all"),
        Binding("f", "clear_filters", "Clear filters"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_paths: list[str] = []
        self.predictions: SplitPredictions | None = None
        self.samples: dict = {}  # sample id -> Sample, for the split shown
        self.label_set = ""
        self.shown: list = []  # the SamplePredictions listed, in table order

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row"):
            yield Label("run", classes="form-label")
            yield Select([], prompt="pick a finished run", id="errors-run", compact=True)
            yield Label("split", classes="form-label")
            yield Select([(s, s) for s in SPLITS], value="test", allow_blank=False, id="errors-split",
                         compact=True)
        with Horizontal(classes="form-row"):
            yield Label("true", classes="form-label")
            yield Select([(ANY, ANY)], value=ANY, allow_blank=False, id="errors-true", compact=True)
            yield Label("predicted", classes="form-label")
            yield Select([(ANY, ANY)], value=ANY, allow_blank=False, id="errors-pred", compact=True)
            yield Label("wrong only", classes="form-label")
            yield Switch(True, id="errors-wrong")
        yield Static("pick a finished run", id="errors-status")
        with ContentSwitcher(initial="errors-list", id="errors-switcher"):
            with Horizontal(id="errors-list"):
                yield JumpTable(id="errors-table", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="errors-detail"):
                    yield HalfBlockImage(id="errors-picture")
                    yield Static("", id="errors-sample")
            with Vertical(id="errors-matrix"):
                yield Static("rows: true class · columns: predicted · enter: list that cell's samples",
                             id="errors-matrix-note")
                yield JumpTable(id="errors-confusion", cursor_type="cell")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Error analysis"
        table = self.query_one("#errors-table", DataTable)
        for key, label in (("n", "#"), ("p", "p"), ("true", "true"), ("pred", "predicted")):
            table.add_column(label, key=key)
        self.reload()

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def on_resize(self) -> None:
        if self.predictions is not None:
            self.fill()

    # -- loading ------------------------------------------------------------------------------------------------

    @on(Select.Changed, "#errors-run, #errors-split")
    def _source_changed(self) -> None:
        run, split = self.query_one("#errors-run", Select).value, self.query_one("#errors-split", Select).value
        if not isinstance(run, str):
            return
        self.query_one("#errors-status", Static).update(f"loading {split} predictions of {escape(Run(Path(run)).name)}…")
        self.load(Path(run), split)

    @work(thread=True, exclusive=True, group="errors", exit_on_error=False)
    def load(self, path: Path, split: str) -> None:
        """Runs in a thread: the stored predictions, and the dataset's samples to show beside them."""
        from mmzoo.runs.predictions import load_predictions  # numpy: not before this screen is used
        from mmzoo.tui.screens.export_support import dataset_ref

        try:
            run = Run(path)
            spec = run.spec
            from mmzoo.tokens.report import is_token_run

            if is_token_run(run):
                raise RunError(f"{run.name} is a token (NER) run: error analysis lists a classifier's mistakes per "
                               "sample; a tagger's entity scores per type are in its detail (⏎ on the Runs "
                               "screen) and in `mmzoo eval`")
            predictions = load_predictions(path, split, classes=spec.get("data", {}).get("classes"))
            from mmzoo.train.factory import open_dataset

            dataset = open_dataset(dataset_ref(spec))
            samples = {s.id: s for s in dataset.split(split)}
            label_set = spec["data"].get("label_set") or dataset.default_label_set
        except MmzooError as exc:
            self.app.call_from_thread(self._failed, str(exc), exc.title)
        except Exception as exc:  # a damaged run must be a message, not a crashed app
            self.app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}", "cannot load predictions")
        else:
            self.app.call_from_thread(self._loaded, predictions, samples, label_set)

    def _failed(self, message: str, title: str) -> None:
        self.predictions, self.samples = None, {}
        self.query_one("#errors-status", Static).update(f"[$error]cannot load:[/] {escape(message.splitlines()[0])}")
        self.notify(message, title=title, severity="error", markup=False, timeout=20)
        self.fill()

    def _loaded(self, predictions: SplitPredictions, samples: dict, label_set: str) -> None:
        self.predictions, self.samples, self.label_set = predictions, samples, label_set
        options = [(ANY, ANY)] + [(c, c) for c in predictions.classes]
        for selector in ("#errors-true", "#errors-pred"):
            select = self.query_one(selector, Select)
            select.set_options(options)
            select.value = ANY
        self._fill_confusion()
        self.fill()
        if not isinstance(self.focused, Select):
            self.query_one("#errors-table").focus()

    # -- filters ------------------------------------------------------------------------------------------------

    def _filter(self, selector: str) -> str | None:
        value = self.query_one(selector, Select).value
        return value if isinstance(value, str) and value != ANY else None

    @on(Select.Changed, "#errors-true, #errors-pred")
    @on(Switch.Changed, "#errors-wrong")
    def _filters_changed(self) -> None:
        self.fill()

    def set_filters(self, true: str | None, predicted: str | None, wrong_only: bool | None = None) -> None:
        self.query_one("#errors-true", Select).value = true or ANY
        self.query_one("#errors-pred", Select).value = predicted or ANY
        if wrong_only is not None:
            self.query_one("#errors-wrong", Switch).value = wrong_only
        self.fill()

    def action_clear_filters(self) -> None:
        self.set_filters(None, None)

    def action_toggle_wrong(self) -> None:
        switch = self.query_one("#errors-wrong", Switch)
        switch.value = not switch.value

    def fill(self) -> None:
        table = self.query_one("#errors-table", DataTable)
        table.clear()
        predictions = self.predictions
        if predictions is None:
            self.shown = []
            self._show(None)
            return
        true, predicted = self._filter("#errors-true"), self._filter("#errors-pred")
        wrong_only = self.query_one("#errors-wrong", Switch).value
        self.shown = predictions.select(true, predicted, mistakes_only=wrong_only)
        # Class names share what the table's width leaves, so both stay in view; the pane shows them in full.
        room = max(8, (table.size.width - 16) // 2) if table.size.width else 40
        for n, item in enumerate(self.shown, 1):
            table.add_row(str(n), Text(f"{item.confidence:.2f}", justify="right"), _fit(item.true, room),
                          _fit(item.predicted, room), key=str(item.index))
        wrong = int((predictions.predicted != predictions.labels).sum())
        what = "mistakes" if wrong_only else "samples"
        filters = " · ".join(f for f in (f"true {true}" if true else "", f"predicted {predicted}" if predicted
                                         else "") if f) or "all classes"
        self.query_one("#errors-status", Static).update(
            f"{predictions.split}: {wrong} of {len(predictions)} wrong (accuracy {predictions.accuracy():.4f}) · "
            f"showing {len(self.shown)} {what} · {escape(filters)}")
        self._show(self.shown[0] if self.shown else None)

    # -- the sample pane -----------------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#errors-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        index = int(event.row_key.value)
        self._show(next((s for s in self.shown if s.index == index), None))

    def _show(self, item) -> None:
        picture = self.query_one("#errors-picture", HalfBlockImage)
        detail = self.query_one("#errors-sample", Static)
        if item is None:
            picture.display = False
            detail.update("no samples match" if self.predictions is not None else "")
            return
        sample = self.samples.get(item.id)
        image = None
        if sample is not None and sample.image is not None:
            from mmzoo.data import load_image

            try:
                image = load_image(sample)
            except (MmzooError, OSError, ValueError):
                image = None
        picture.display = image is not None
        picture.show(image)
        mark = "✓" if item.correct else "✗"
        lines = [f"[b]{escape(item.id)}[/]  {mark} true [b]{escape(item.true)}[/]",
                 f"predicted [b]{escape(item.predicted)}[/]"]
        if sample is not None and sample.text:
            lines.append(f"text: {escape(sample.text)}")
        elif sample is None:
            lines.append("[dim](sample not in the dataset any more)[/]")
        lines.append("top 3:")
        for label, p in item.top:
            lines.append(f" {escape(label)} {p:.3f} {'█' * round(10 * p)}")
        detail.update("\n".join(lines))

    # -- the confusion matrix ------------------------------------------------------------------------------------

    def _fill_confusion(self) -> None:
        table = self.query_one("#errors-confusion", DataTable)
        table.clear(columns=True)
        predictions = self.predictions
        if predictions is None:
            return
        table.add_column("true \\ predicted", key="true")
        for j in range(len(predictions.classes)):
            table.add_column(f"{j}", key=f"c{j}")
        for i, (name, row) in enumerate(zip(predictions.classes, predictions.confusion(), strict=True)):
            table.add_row(f"{i} {name}", *(Text(str(v), justify="right") for v in row), key=name)

    def action_matrix(self) -> None:
        switcher = self.query_one("#errors-switcher", ContentSwitcher)
        showing = "errors-matrix" if switcher.current == "errors-list" else "errors-list"
        switcher.current = showing
        self.query_one("#errors-confusion" if showing == "errors-matrix" else "#errors-table").focus()

    @on(DataTable.CellSelected, "#errors-confusion")
    def _cell(self, event: DataTable.CellSelected) -> None:
        predictions = self.predictions
        row, column = event.coordinate.row, event.coordinate.column
        if predictions is None or column == 0:
            return
        true, predicted = predictions.classes[row], predictions.classes[column - 1]
        self.set_filters(true, predicted, wrong_only=true != predicted)  # a diagonal cell holds no mistakes
        self.query_one("#errors-switcher", ContentSwitcher).current = "errors-list"
        self.query_one("#errors-table").focus()
