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
    "asterisk": "*",
    "minus": "-",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "escape": "esc",
}


def readme_keys() -> set[str]:
    spans = re.findall(r"`([^`]+)`", README.read_text("utf-8"))
    return {word for span in spans for word in span.split()} | set(spans)


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
