"""Provides a confusion-matrix heatmap: counts in cells shaded from the theme's surface to its primary colour."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widgets import Static

LABEL_WIDTH = 14


def confusion_text(title: str, classes: list[str], matrix: list[list[int]], low: Color, high: Color) -> Text:
    """Rows are true classes, columns predicted ones; each cell's shade is its share of its row (the recall view)."""
    digits = max([len(str(len(classes) - 1))] + [len(str(v)) for row in matrix for v in row])
    width = digits + 2
    text = Text(title + "\n", style="bold")
    text.append(" " * (LABEL_WIDTH + 1) + "".join(f"{j:^{width}}" for j in range(len(classes))) + "  predicted\n")
    for i, (name, row) in enumerate(zip(classes, matrix, strict=True)):
        text.append(f"{i} {name}"[:LABEL_WIDTH].ljust(LABEL_WIDTH) + " ")
        total = sum(row) or 1
        for value in row:
            shade = low.blend(high, value / total)
            text.append(f"{value:^{width}}", style=Style(bgcolor=shade.rich_color,
                                                          color=shade.get_contrast_text(1.0).rich_color))
        text.append("\n")
    text.append("rows: true class · shade: share of the row")
    return text


class ConfusionHeatmap(Static):
    """One run's confusion matrix; re-shaded when the theme changes."""

    def __init__(self, title: str, classes: list[str], matrix: list[list[int]]) -> None:
        super().__init__(classes="heatmap")
        self.title, self.class_names, self.matrix = title, classes, matrix

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.draw())
        self.draw()

    def draw(self) -> None:
        colours = self.app.theme_variables
        low, high = Color.parse(colours["surface"]), Color.parse(colours["primary"])
        self.update(confusion_text(self.title, self.class_names, self.matrix, low, high))
