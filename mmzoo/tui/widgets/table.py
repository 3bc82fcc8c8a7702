"""Provides JumpTable: a DataTable whose Home/End go to the first/last row rather than scrolling sideways."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class JumpTable(DataTable):
    """Home and End move the cursor to the first and last row, keeping its column."""

    BINDINGS = [
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
    ]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
