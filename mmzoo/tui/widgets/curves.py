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


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled towards zero."""
    out, mean = [], 0.0
    for n, value in enumerate(values, 1):
        mean = (1 - alpha) * mean + alpha * value
        out.append(mean / (1 - (1 - alpha) ** n))
    return out


def nice_ticks(low: float, high: float, count: int = 4) -> tuple[list[float], list[str]]:
    """At least three ticks (about ``count``) on a 1-2-5 step inside [low, high], labelled with one number format."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    magnitude = 10 ** math.floor(math.log10((high - low) / count))
    steps = [m * magnitude * f for f in (0.1, 1, 10) for m in (1, 2, 5)]
    step = next(s for s in steps if s >= (high - low) / count)
    ticks = _ticks(low, high, step)
    while len(ticks) < 3 and steps.index(step) > 0:
        step = steps[steps.index(step) - 1]
        ticks = _ticks(low, high, step)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return ticks, [f"{t:.{decimals}f}" for t in ticks]


def _ticks(low: float, high: float, step: float) -> list[float]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def padded_range(values: list[float], pad: float = 0.1, floor: float | None = None,
                 ceiling: float | None = None) -> tuple[float, float]:
    """The data's range widened by ``pad`` of its span on each side (a flat series gets a small span)."""
    low, high = min(values), max(values)
    span = high - low or max(abs(high) * 0.1, 0.01)
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
        plt.clear_data()
        plt.xlabel(self.xlabel)
        values = [y for _, _, _, ys in drawn for y in ys if math.isfinite(y)]
        if values:
            self.ylim = padded_range(values, floor=self.bounds[0], ceiling=self.bounds[1])
            plt.ylim(*self.ylim)
            plt.yticks(*nice_ticks(*self.ylim))
        for i, _label, xs, ys in drawn:
            plt.plot(xs, ys, marker="braille", color=self._colour(i))
        plot.refresh()
