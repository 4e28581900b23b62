"""One health figure: a titled box with the value, a second line (age, unit) and a warning colour."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

LEVELS = ("ok", "warning", "critical", "unknown")


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
        self.update(Text("…", style="dim"))

    def show(self, value: str, detail: str = "", level: str = "ok") -> None:
        style = {"warning": "bold yellow", "critical": "bold red"}.get(level, "bold")
        text = Text(value, style=style)
        text.append("\n")
        text.append(detail, style="dim")
        self.update(text)
        self.set_classes(f"-{level}" if level in LEVELS else "")
