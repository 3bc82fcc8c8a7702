"""Provides training-curve plots (plotext via textual-plotext) whose line colours come from the active theme."""

from __future__ import annotations

from textual.color import Color
from textual_plotext import PlotextPlot

# Theme variables cycled through for successive series, so overlaid runs stay distinguishable in any theme.
SERIES_COLOURS = ("primary", "warning", "success", "error", "accent", "secondary")


class CurvesPlot(PlotextPlot):
    """One or more named (x, y) series drawn as lines with markers."""

    def __init__(self, title: str, *, ylim: tuple[float, float] | None = None, xlabel: str = "epoch",
                 id: str | None = None) -> None:  # noqa: A002 (Textual's own keyword)
        super().__init__(id=id)
        self.title, self.ylim, self.xlabel = title, ylim, xlabel
        self.series: list[tuple[str, list[float], list[float]]] = []

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())
        self.replot()

    def set_series(self, series: list[tuple[str, list[float], list[float]]]) -> None:
        self.series = [(label, list(xs), list(ys)) for label, xs, ys in series]
        self.replot()

    def _colour(self, index: int) -> tuple[int, int, int]:
        name = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        return Color.parse(self.app.theme_variables.get(name, "white")).rgb

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        if self.ylim:
            plt.ylim(*self.ylim)
        for i, (label, xs, ys) in enumerate(self.series):
            if xs:
                plt.plot(xs, ys, label=label, marker="braille", color=self._colour(i))
        self.refresh()
