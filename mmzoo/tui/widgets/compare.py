"""Provides the compare panel: metrics side by side with fusion gains, per-class F1, confusion heatmaps, curves."""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from mmzoo.runs.folders import Run
from mmzoo.tui.widgets.curves import CurvesPlot
from mmzoo.tui.widgets.heatmap import ConfusionHeatmap

METRIC_COLUMNS = ("#", "run", "test acc", "macro-F1", "vs text", "vs image", "kind", "params", "train s")


def _num(value: float | None, fmt: str) -> Text:
    shown = "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
    return Text(shown, justify="right")


def _gain(value: float | None) -> Text:
    # A gain is in accuracy points over the baseline with the same encoder and data.
    return _num(None if value is None else 100 * value, "+.1f")


def _count(n: int) -> Text:
    return Text(f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k", justify="right")


class ComparePanel(Vertical):
    """Shows a selection of finished runs in tabs; `show(runs, root)` replaces what is shown."""

    def compose(self) -> ComposeResult:
        with TabbedContent(id="compare-tabs"):
            with TabPane("Metrics", id="tab-metrics"):
                yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
                yield Static("mark runs with space, then press c to compare them", id="compare-note")
            with TabPane("Per-class F1", id="tab-perclass"):
                yield DataTable(id="perclass-table", zebra_stripes=True)
            with TabPane("Confusion", id="tab-confusion"):
                yield HorizontalScroll(id="confusion")
            with TabPane("Curves", id="tab-curves"):
                with Horizontal(id="curves"):
                    yield CurvesPlot("val accuracy", ylim=(0.0, 1.0), id="curves-acc")
                    yield CurvesPlot("train loss", id="curves-loss")

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        for label in METRIC_COLUMNS:
            table.add_column(label, key=label)

    def show(self, runs: list[Run], root: Path) -> None:
        from mmzoo.runs.compare import compare_runs

        rows = compare_runs(runs, root)
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for i, row in enumerate(rows, 1):
            table.add_row(str(i), row["run"], _num(row["accuracy"], ".4f"), _num(row["macro_f1"], ".4f"),
                          _gain(row.get("gain_vs_text")), _gain(row.get("gain_vs_image")), row["kind"],
                          _count(row["parameters"]), _num(row["train_seconds"], ".1f"), key=row["run"])
        self.query_one("#compare-note", Static).update(
            "test split · vs text / vs image: accuracy gain in points over the text-only and image-only run "
            "with the same encoder and data (blank: no such baseline run yet)")
        self._per_class(runs)
        self._confusion(runs)
        self._curves(runs)

    def _per_class(self, runs: list[Run]) -> None:
        table = self.query_one("#perclass-table", DataTable)
        table.clear(columns=True)
        table.add_column("class", key="class")
        per_run = [r.metrics["test"]["per_class"] for r in runs]
        for i, _run in enumerate(runs, 1):
            table.add_column(f"#{i} F1", key=f"f1-{i}")
        classes = list(dict.fromkeys(c for report in per_run for c in report))
        for name in classes:
            cells = [_num(report[name]["f1"] if name in report else None, ".3f") for report in per_run]
            table.add_row(name, *cells, key=name)

    def _confusion(self, runs: list[Run]) -> None:
        holder = self.query_one("#confusion", HorizontalScroll)
        holder.remove_children()
        holder.mount_all(ConfusionHeatmap(f"#{i} {run.name}", run.metrics["test"]["classes"],
                                          run.metrics["test"]["confusion_matrix"]) for i, run in enumerate(runs, 1))

    def _curves(self, runs: list[Run]) -> None:
        acc, loss = [], []
        for i, run in enumerate(runs, 1):
            history = run.history()  # ensembles have none: they are fitted, not trained by epoch
            epochs = [h["epoch"] for h in history]
            acc.append((f"#{i} {run.model}", epochs, [h["val_accuracy"] for h in history]))
            loss.append((f"#{i} {run.model}", epochs, [h["loss"] for h in history]))
        self.query_one("#curves-acc", CurvesPlot).set_series(acc)
        self.query_one("#curves-loss", CurvesPlot).set_series(loss)
