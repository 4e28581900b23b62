"""README's key tables name every key the health and events screens bind, as the footer and help show it."""

from __future__ import annotations

import re
from pathlib import Path

from textual.binding import Binding

from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.widgets.event_table import EventTable

README = Path(__file__).resolve().parents[1] / "README.md"
SHOWN_AS = {
    "slash": "/",
    "backslash": "\\",
    "asterisk": "*",
    "minus": "-",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "escape": "esc",
}


def readme_keys() -> set[str]:
    """The key column of the Keys table (| screen | key | action |) and of Operator actions (| key | action |)."""
    keys: set[str] = set()
    for line in README.read_text("utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2:
            continue
        column = cells[1] if cells[0] in ("health", "events", "migration", "dialogs") else cells[0]
        for span in re.findall(r"`([^`]+)`", column):
            keys.add(span)
            keys.update(span.split())
    return keys


def test_every_screen_key_is_in_the_readme() -> None:
    documented = readme_keys()
    missing = []
    for owner in (HealthScreen, EventsScreen, EventTable):
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            for key in binding.key.split(","):
                shown = SHOWN_AS.get(key, key)
                if shown not in documented:
                    missing.append(f"{owner.__name__}: {shown} ({binding.description})")
    assert missing == []
