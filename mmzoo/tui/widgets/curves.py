"""Provides training-curve plots (plotext via textual-plotext) whose line colours come from the active theme.

The legend is a line of its own above the plot, never drawn over the curves; the y axis follows the data with
some padding, on evenly spaced ticks with one number format.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

# Theme variables cycled through for successive series, so overlaid runs stay distinguishable in any theme.
SERIES_COLOURS = ("primary", "warning", "success", "error", "accent", "secondary")
# Rows of a plot that are not plotting area: the frame's top and bottom, the x tick labels, the x label.
PLOT_FRAME_ROWS = 4


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled towards zero."""
    out, mean = [], 0.0
    for n, value in enumerate(values, 1):
        mean = (1 - alpha) * mean + alpha * value
        out.append(mean / (1 - (1 - alpha) ** n))
    return out


def _nice_step(raw: float) -> float:
    """The smallest 1-2-5 step that is at least ``raw``."""
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def y_axis(values: list[float], rows: int = 0, floor: float | None = None,
           ceiling: float | None = None) -> tuple[tuple[float, float], list[float], list[str]]:
    """(y range, ticks, labels) for a plotting area ``rows`` high: ticks a 1-2-5 step apart and, when ``rows`` is
    known, each on a whole row (the range gets the spare rows as margin), so they are evenly spaced on screen."""
    low, high = padded_range(values, floor=floor, ceiling=ceiling)
    span_rows = rows - 1  # rows between the bottom and the top of the plotting area
    choices = (4, 3, 2)
    if span_rows >= 2:
        choices = tuple(sorted((n for n in choices if n <= span_rows), key=lambda n: (span_rows % n, -n)))
    intervals = choices[0]
    step = _nice_step((high - low) / intervals)
    start = math.floor(low / step + 1e-9) * step
    while start + intervals * step < high - 1e-12:  # the ticks start on a multiple of the step: widen if short
        step = _nice_step(step * 1.01)
        start = math.floor(low / step + 1e-9) * step
    if ceiling is not None and start + intervals * step > ceiling + 1e-12:  # no tick past a bound (accuracy 1.05)
        start = round((ceiling - intervals * step) / step) * step
        if floor is not None:
            start = max(start, floor)
    ticks = [round(start + i * step, 12) for i in range(intervals + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    labels = [f"{t:.{decimals}f}" for t in ticks]
    if span_rows < 2:
        return (ticks[0], ticks[-1]), ticks, labels
    per_row = step / (span_rows // intervals)
    spare = span_rows - intervals * (span_rows // intervals)
    below = spare // 2
    return (ticks[0] - below * per_row, ticks[-1] + (spare - below) * per_row), ticks, labels


def epoch_ticks(low: float, high: float, most: int = 6) -> tuple[list[float], list[str]]:
    """Whole epochs from ``low`` to ``high``, every 1, 2, 5, 10... so that at most ``most`` are labelled."""
    first, last = max(1, math.ceil(low)), max(1, math.floor(high))
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if (last - first) / s < most)
    ticks = [float(e) for e in range(first, last + 1) if (e - first) % step == 0]
    return ticks, [str(int(t)) for t in ticks]


def padded_range(values: list[float], pad: float = 0.1, floor: float | None = None,
                 ceiling: float | None = None) -> tuple[float, float]:
    """The data's range widened by ``pad`` of its span on each side (a flat series gets a small span)."""
    low, high = min(values), max(values)
    span = high - low
    if span <= 1e-9 * max(1.0, abs(high)):  # flat (up to rounding): give it a visible span
        span = max(abs(high) * 0.1, 0.01)
    low, high = low - pad * span, high + pad * span
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    return low, high


class CurvesPlot(Vertical):
    """One or more named (x, y) series drawn as lines, with a one-line legend above the plot."""

    def __init__(self, title: str, *, bounds: tuple[float | None, float | None] = (None, None),
                 xlabel: str = "epoch", id: str | None = None) -> None:  # noqa: A002 (Textual's own keyword)
        super().__init__(id=id, classes="curves-plot")
        self.title, self.bounds, self.xlabel = title, bounds, xlabel
        self.series: list[tuple[str, list[float], list[float]]] = []
        self.ylim: tuple[float, float] | None = None  # the y range last drawn

    def compose(self) -> ComposeResult:
        yield Static("", classes="curves-legend")
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())
        self.replot()

    def on_resize(self) -> None:
        self.replot()  # the ticks are placed for the plot's height

    def set_series(self, series: list[tuple[str, list[float], list[float]]]) -> None:
        self.series = [(label, list(xs), list(ys)) for label, xs, ys in series]
        self.replot()

    def _colour(self, index: int) -> tuple[int, int, int]:
        name = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        return Color.parse(self.app.theme_variables.get(name, "white")).rgb

    def replot(self) -> None:
        if not self.children:
            return  # not composed yet: on_mount draws
        legend = Text(self.title, style="bold")
        drawn = [(i, label, xs, ys) for i, (label, xs, ys) in enumerate(self.series) if xs]
        for i, label, _, _ in drawn:
            legend.append("  ")
            red, green, blue = self._colour(i)
            legend.append("━━", style=f"rgb({red},{green},{blue})")
            legend.append(f" {label}")
        self.query_one(".curves-legend", Static).update(legend)
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_figure()  # ticks and limits too: each draw sets its own (the widget reapplies size and theme)
        plt.xlabel(self.xlabel)
        values = [y for _, _, _, ys in drawn for y in ys if math.isfinite(y)]
        if values:
            rows = max(0, plot.size.height - PLOT_FRAME_ROWS)
            self.ylim, ticks, labels = y_axis(values, rows, floor=self.bounds[0], ceiling=self.bounds[1])
            plt.ylim(*self.ylim)
            plt.yticks(ticks, labels)
        xs_all = [x for _, _, xs, _ in drawn for x in xs]
        ticks = epoch_ticks(min(xs_all), max(xs_all)) if xs_all else ([], [])
        if len(ticks[0]) >= 2:  # before two whole epochs are in view, plotext's own ticks are better
            plt.xticks(*ticks)
        for i, _label, xs, ys in drawn:
            plt.plot(xs, ys, marker="braille", color=self._colour(i))
        plot.refresh()
