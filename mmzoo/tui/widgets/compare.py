"""Provides the compare panel: val beside test metrics, calibration, fusion gains, spec differences, per-class F1,
confusion heatmaps and curves, one tab each (`[` and `]` switch tabs from anywhere on the runs screen).

Token runs (NER) compare with token runs only: entity F1 in the F1 columns, per-type F1, val entity F1 curves."""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from mmzoo.errors import DataError
from mmzoo.runs.folders import Run
from mmzoo.tui.widgets.curves import CurvesPlot
from mmzoo.tui.widgets.heatmap import ConfusionHeatmap

# The columns that explain a result come first, so 80 columns show them; the rest scroll.
METRIC_COLUMNS = ("#", "run", "kind", "val acc", "test acc", "val F1", "test F1", "ECE", "vs text", "vs image",
                  "params", "train s")
TABS = ("tab-metrics", "tab-spec", "tab-perclass", "tab-confusion", "tab-curves")


def _num(value: float | None, fmt: str) -> Text:
    shown = "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
    return Text(shown, justify="right")


def _gain(value: float | None) -> Text:
    # A gain is in accuracy points over the baseline with the same encoder and data.
    return _num(None if value is None else 100 * value, "+.1f")


def _count(n: int) -> Text:
    return Text(f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k", justify="right")


def _value(value, width: int = 32) -> str:
    shown = "—" if value is None else str(value)
    return shown if len(shown) <= width else shown[:width - 1] + "…"


class ComparePanel(Vertical):
    """Shows a selection of finished runs in tabs; `show(runs, root)` replaces what is shown."""

    def compose(self) -> ComposeResult:
        with TabbedContent(id="compare-tabs"):
            with TabPane("Metrics", id="tab-metrics"):
                yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
                yield Static("mark runs with space, then press c to compare them", id="compare-note")
            with TabPane("Spec diff", id="tab-spec"):
                yield DataTable(id="specdiff-table", zebra_stripes=True)
            with TabPane("Per-class F1", id="tab-perclass"):
                yield DataTable(id="perclass-table", zebra_stripes=True)
            with TabPane("Confusion", id="tab-confusion"):
                yield VerticalScroll(id="confusion")
            with TabPane("Curves", id="tab-curves"):
                with Horizontal(id="curves"):
                    yield CurvesPlot("val accuracy", id="curves-acc")
                    yield CurvesPlot("train loss", id="curves-loss")

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        for label in METRIC_COLUMNS:
            table.add_column(label, key=label)

    def next_tab(self, step: int) -> None:
        tabs = self.query_one("#compare-tabs", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)]

    def show(self, runs: list[Run], root: Path) -> None:
        from mmzoo.runs.compare import compare_runs
        from mmzoo.tokens.report import MIXED, is_token_run

        tagged = [is_token_run(run) for run in runs]
        if any(tagged):
            if not all(tagged):
                raise DataError(MIXED)
            self._show_tokens(runs)
            return
        rows = compare_runs(runs, root)
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for i, (row, run) in enumerate(zip(rows, runs, strict=True), 1):
            metrics = run.metrics
            val, test = metrics.get("val", {}), metrics.get("test", {})
            model, _, run_id = row["run"].partition("/")
            table.add_row(str(i), f"{model}\n{run_id}", row["kind"], _num(val.get("accuracy"), ".4f"),
                          _num(row["accuracy"], ".4f"), _num(val.get("macro_f1"), ".4f"),
                          _num(row["macro_f1"], ".4f"), _num(test.get("ece"), ".3f"),
                          _gain(row.get("gain_vs_text")), _gain(row.get("gain_vs_image")),
                          _count(row["parameters"]), _num(row["train_seconds"], ".1f"), key=row["run"], height=2)
        self.query_one("#compare-note", Static).update(
            "ECE: test calibration error (lower is better) · vs text/image: test accuracy points over the "
            "unimodal run with the same encoder and data · ←→ scroll")
        self._spec_diff(runs)
        self._per_class(runs)
        self._confusion(runs)
        self._curves(runs)

    def _show_tokens(self, runs: list[Run]) -> None:
        """Token runs (NER): entity F1 in the F1 columns, per-type F1, curves of val entity F1; no confusion."""
        from mmzoo.tokens.report import compare_rows

        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for i, row in enumerate(compare_rows(runs), 1):
            model, _, run_id = row["run"].partition("/")
            table.add_row(str(i), f"{model}\n{run_id}", row["kind"], _num(None, ""), _num(None, ""),
                          _num(row["val_entity_f1"], ".4f"), _num(row["entity_f1"], ".4f"), _num(None, ""),
                          _gain(None), _gain(None), _count(row["parameters"]), _num(row["train_seconds"], ".1f"),
                          key=row["run"], height=2)
        self.query_one("#compare-note", Static).update(
            "token runs (NER): F1 is entity-level exact-match micro F1 (val, test); accuracy and calibration do "
            "not apply · per-type F1 in the next tabs · ←→ scroll")
        self._spec_diff(runs)
        self._per_class(runs, [run.metrics["test"]["per_type"] for run in runs], "entity type")
        holder = self.query_one("#confusion", VerticalScroll)
        holder.remove_children()
        holder.mount(Static("token runs have no confusion matrix: their errors are spans, scored per entity "
                            "type in the Per-class F1 tab", classes="dim"))
        self._curves(runs, "val_entity_f1")

    def _spec_diff(self, runs: list[Run]) -> None:
        from mmzoo.runs.specdiff import spec_differences

        table = self.query_one("#specdiff-table", DataTable)
        table.clear(columns=True)
        table.add_column("setting", key="setting")
        for i, _run in enumerate(runs, 1):
            table.add_column(f"#{i}", key=f"run-{i}")
        differences = spec_differences([run.spec for run in runs])
        for key, values in differences:
            table.add_row(key, *(_value(v) for v in values), key=key)
        if not differences:
            table.add_row("(the specs are identical)", *("" for _ in runs))

    def _per_class(self, runs: list[Run], per_run: list[dict] | None = None, heading: str = "class") -> None:
        table = self.query_one("#perclass-table", DataTable)
        table.clear(columns=True)
        table.add_column(heading, key="class")
        per_run = per_run if per_run is not None else [r.metrics["test"]["per_class"] for r in runs]
        for i, _run in enumerate(runs, 1):
            table.add_column(f"#{i} F1", key=f"f1-{i}")
        classes = list(dict.fromkeys(c for report in per_run for c in report))
        for name in classes:
            cells = [_num(report[name]["f1"] if name in report else None, ".3f") for report in per_run]
            table.add_row(name, *cells, key=name)

    def _confusion(self, runs: list[Run]) -> None:
        holder = self.query_one("#confusion", VerticalScroll)
        holder.remove_children()
        holder.mount_all(ConfusionHeatmap(f"#{i} {run.name}", run.metrics["test"]["classes"],
                                          run.metrics["test"]["confusion_matrix"]) for i, run in enumerate(runs, 1))

    def _curves(self, runs: list[Run], score: str = "val_accuracy") -> None:
        acc, loss = [], []
        for i, run in enumerate(runs, 1):
            history = run.history()  # ensembles have none: they are fitted, not trained by epoch
            epochs = [h["epoch"] for h in history]
            label = f"#{i} {run.model}" + (" (entity F1)" if score != "val_accuracy" else "")
            acc.append((label, epochs, [h[score] for h in history]))
            loss.append((f"#{i} {run.model}", epochs, [h["loss"] for h in history]))
        self.query_one("#curves-acc", CurvesPlot).set_series(acc)
        self.query_one("#curves-loss", CurvesPlot).set_series(loss)
