"""One health figure: a titled box with the value, a second line (age, unit) and a warning colour.

The value is never cut: needed_width() tells the health screen how wide the tile must be, and the screen
picks the number of tile columns from it. A tile only one line high (a short terminal's compact layout)
puts the second line beside the value when it fits, else leaves it out.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import RenderableType
from rich.text import Text
from textual.widgets import Static

LEVELS = ("ok", "warning", "critical", "unknown")
# Box corners, one space and one rule cell on each side of the border title: "╭─ Pending ─╮".
TITLE_FRAME = 6
VALUE_FRAME = 4  # border and padding, left and right
DETAIL_GAP = "  "


class Tile(Static):
    DEFAULT_CSS = """
    Tile { height: 4; border: round $panel-lighten-2; padding: 0 1; border-title-color: $text-muted; }
    Tile.-warning { border: round $warning; border-title-color: $warning; }
    Tile.-warning .value { color: $warning; }
    Tile.-critical { border: heavy $error; border-title-color: $error; border-title-style: bold; }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.title = title
        self.value: str | None = None
        self.detail = ""
        self.level = "ok"

    def needed_width(self) -> int:
        """The width at which neither the title nor the value is cut."""
        return max(cell_len(self.title) + TITLE_FRAME, cell_len(self.value or "") + VALUE_FRAME)

    def show(self, value: str, detail: str = "", level: str = "ok") -> None:
        self.value, self.detail, self.level = value, detail, level
        self.set_classes(f"-{level}" if level in LEVELS else "")
        self.refresh()

    def render(self) -> RenderableType:
        if self.value is None:
            return Text("…", style="dim")
        style = {"warning": "bold yellow", "critical": "bold red"}.get(self.level, "bold")
        text = Text(self.value, style=style, no_wrap=True)
        if self.content_size.height >= 2:
            text.append("\n")
            text.append(self.detail, style="dim")
        elif cell_len(self.value) + len(DETAIL_GAP) + cell_len(self.detail) <= self.content_size.width:
            text.append(DETAIL_GAP + self.detail, style="dim")
        return text
