"""Key -> next frame painted in the events table: the Line-API view against the DataTable window it replaced.

Both widgets run in this process, one after the other, on the same database, in the real app (App.run_test at
100x30, headless): the events screen opens with its detail pane hidden, then `keys` presses of pgdn (and as
many of down) are timed one by one. A press counts from the moment the key is sent until the first frame the
compositor produced (App._display, which the headless driver calls with every update even though it writes
nothing) after the table's new state: when the press asked for a page, after that page landed in the window,
so the page request and the window's slide count too. A step that rebuilds the DataTable window pays for the
rebuild; a step inside the window pays only for drawing.

The table's cost does not depend on N (the window holds at most MAX_PAGES keyset pages, and a keyset page costs
the same at 10k and 10M rows: see the pages measurements), so the runner's app database (--app-size) serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIZE = (100, 30)
QUIET_S = 0.03  # no new frame for this long after the app went idle: the key's last frame was the one before


@contextmanager
def _legacy_table() -> Iterator[None]:
    """The events screen composed with the DataTable window, its cursor messages routed to the same handlers."""
    import dlq_tui.ui.screens.events as screen_module
    from bench.legacy_event_table import EventTable as LegacyTable

    screen = screen_module.EventsScreen
    current = screen_module.EventTable
    screen_module.EventTable = LegacyTable  # type: ignore[misc]
    screen.on_data_table_row_highlighted = screen.on_event_table_row_highlighted  # type: ignore[attr-defined]
    screen.on_data_table_row_selected = screen.on_event_table_row_selected  # type: ignore[attr-defined]
    try:
        yield
    finally:
        screen_module.EventTable = current  # type: ignore[misc]
        del screen.on_data_table_row_highlighted  # type: ignore[attr-defined]
        del screen.on_data_table_row_selected  # type: ignore[attr-defined]


async def _keys(dsn: str, keys: int) -> dict[str, Any]:
    from bench.stats import Spread
    from dlq_tui.config import Settings
    from dlq_tui.ui.app import DlqApp
    from dlq_tui.ui.source import DataSource

    settings = Settings(dsn=dsn, operator="bench", refresh_seconds=3600)  # no health poll between keys
    app = DlqApp(settings, source=DataSource(settings))
    frames: list[float] = []
    display = app._display

    def timed_display(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None:
            frames.append(time.perf_counter())

    app._display = timed_display  # type: ignore[method-assign]

    def busy() -> bool:
        return any(w.is_running for w in app.workers) or bool(getattr(app.screen, "busy", lambda: False)())

    async def settle() -> None:
        while busy():
            await asyncio.sleep(0.001)
        seen, quiet_since = len(frames), time.perf_counter()
        while time.perf_counter() - quiet_since < QUIET_S:
            await asyncio.sleep(0.002)
            if len(frames) != seen:
                seen, quiet_since = len(frames), time.perf_counter()

    out: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        await settle()
        await pilot.press("e")
        await settle()
        # The detail pane loads each highlighted event after the cursor rests (120 ms, then a query): the same for
        # both widgets, and not the table's cost. Hidden, the table takes the whole height: more lines per step.
        await pilot.press("d")
        await settle()
        table = app.screen.table  # type: ignore[attr-defined]
        # When a page lands in the window: the key's answer is the first frame after that (a later frame is the
        # lock countdown or the scrollbar fading, not this key).
        landed: list[float] = []
        add_page = table.add_page

        def timed_add_page(*args: Any, **kwargs: Any) -> None:
            add_page(*args, **kwargs)
            landed.append(time.perf_counter())

        table.add_page = timed_add_page
        for key in ("pagedown", "down"):
            samples: list[float] = []
            slides = 0
            for _ in range(keys):
                if table.at_end and table.cursor_row >= table.row_count - 1:
                    await pilot.press("home")  # the end of a small queue: start again (the timed keys go down)
                    await settle()
                top = table.window_rows[0].id if table.row_count else None
                frames.clear()
                landed.clear()
                started = time.perf_counter()
                await pilot.press(key)
                await settle()
                ready = max([started, *landed])
                painted = [frame for frame in frames if frame >= ready]
                if painted:
                    samples.append((painted[0] - started) * 1000)
                slides += int(bool(table.row_count) and table.window_rows[0].id != top)
            out[key] = {**Spread("ms", tuple(samples)).as_dict(), "window_slides": slides}
        out["rows_in_window_at_end"] = table.row_count
    return out


def measure_table_keys(dsn: str, *, keys: int, say: Callable[[str], None]) -> dict[str, Any]:
    say(f"  events table: key -> frame painted, {keys} pgdn and {keys} down, Line-API view vs DataTable window")
    new = asyncio.run(_keys(dsn, keys))
    with _legacy_table():
        old = asyncio.run(_keys(dsn, keys))
    result: dict[str, Any] = {"line_api": new, "datatable": old}
    for key in ("pagedown", "down"):
        ratio = new[key]["median"] / old[key]["median"] if old[key].get("median") else None
        result[f"{key}_ratio"] = ratio
        say(
            f"    {key}: Line-API {new[key]['median']:.1f} ms (p90 {new[key].get('p90', 0):.1f}, max "
            f"{new[key].get('max', 0):.1f}) vs DataTable {old[key]['median']:.1f} ms (p90 {old[key].get('p90', 0):.1f},"
            f" max {old[key].get('max', 0):.1f}); ratio {ratio if ratio is None else round(ratio, 3)}"
        )
    return result
