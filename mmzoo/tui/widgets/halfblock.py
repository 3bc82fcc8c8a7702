"""Provides half-block image rendering: each terminal cell shows two pixels as "▀" with fg (top) and bg (bottom)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static


def halfblock_text(image, width: int, height: int) -> Text:
    """Render a PIL image (or HxWx3 uint8 array) into at most ``width`` x ``height`` cells, keeping its aspect."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    # A cell is about twice as tall as it is wide, and holds two pixel rows: so pixels map 1:1 to square-ish dots.
    scale = min(width / image.width, 2 * height / image.height)
    cols, rows = max(1, round(image.width * scale)), max(2, round(image.height * scale))
    rows += rows % 2
    pixels = image.resize((cols, rows), Image.Resampling.BOX).load()
    text = Text()
    for y in range(0, rows, 2):
        for x in range(cols):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            text.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                   bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
        if y + 2 < rows:
            text.append("\n")
    return text


class HalfBlockImage(Static):
    """Shows one image at the widget's size; the image's own colours are the content, not styling."""

    def __init__(self, id: str | None = None) -> None:  # noqa: A002 (Textual's own keyword)
        super().__init__("", id=id)
        self.image = None

    def show(self, image) -> None:
        self.image = image
        self.draw()

    def on_resize(self) -> None:
        self.draw()

    def draw(self) -> None:
        if self.image is None:
            self.update("[dim]no image[/]")
            return
        width, height = max(2, self.content_size.width), max(1, self.content_size.height)
        self.update(halfblock_text(self.image, width, height))
