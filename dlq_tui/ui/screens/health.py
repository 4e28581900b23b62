"""Health: every dlq_health figure as a tile, trends, breakers, last processing runs, and the failure analysis.

Two tiers: every `--refresh` seconds the figures that indexes answer (pending, oldest/newest, retry > 5, locked,
malicious, priority 1-3, breakers, runs, the pending breakdowns), and every VIEW_EVERY_S seconds (and on `r`) the
dlq_health view's row itself, a pass over the whole table, for processed and the average resolution time, with
the trends. The tiles the view feeds say so, with its age. `space` pauses both.

The refresh loop polls in a thread worker and re-arms its timer only after a poll finished (success
or failure), so polls never overlap and a slow query never holds up a key. It pauses while the screen
is hidden (another screen or a dialog on top) and catches up when it comes back. While the link is
down it stops polling (the app's reconnect attempts take over), keeps the last figures with their age,
and polls at once when the link is back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from rich.console import Group, JustifyMethod
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from dlq_tui.db.models import FastSnapshot, TrendSeries, ViewReading
from dlq_tui.db.schema import priority_label
from dlq_tui.health_rules import Finding
from dlq_tui.ui import format as fmt
from dlq_tui.ui.screens.base import DlqScreen
from dlq_tui.ui.widgets.connection_bar import ConnectionBar
from dlq_tui.ui.widgets.schema_notice import SchemaNotice
from dlq_tui.ui.widgets.tile import Tile

# tile id -> title; the ids are the dlq_health field names health_rules reports findings on.
TILES: dict[str, str] = {
    "pending_events": "Pending",
    "processed_events": "Processed",
    "avg_resolution_time_seconds": "Avg resolve",
    "oldest_pending_at": "Oldest",
    "newest_unresolved_event": "Newest",
    "high_retry_events": "Retry > 5",
    "locked_events": "Locked",
    "malicious_events": "Malicious",
    "high_priority_events": "Priority 1-3",
}


# Tiles the slow tier (the view's row) feeds; every other tile is the fast tier's.
VIEW_TILES = ("processed_events", "avg_resolution_time_seconds")
VIEW_EVERY_S = 60.0  # the view's row and the trends: a pass over the whole table, so not every refresh


class HealthLoaded(Message):
    def __init__(self, snapshot: FastSnapshot, findings: list[Finding], read_at: datetime) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.findings = findings
        self.read_at = read_at


class ViewLoaded(Message):
    def __init__(self, reading: ViewReading, read_at: datetime) -> None:
        super().__init__()
        self.reading = reading
        self.read_at = read_at


def _level_for(field: str, findings: list[Finding]) -> str:
    order = {"ok": 0, "warning": 1, "critical": 2}
    level = "ok"
    for finding in findings:
        if finding.field == field and order.get(finding.level, 0) > order[level]:
            level = finding.level
    return level


# The status block: a badge for the overall level, findings as coloured text on the normal background.
BADGE_STYLE = {"ok": "bold black on green", "warning": "bold black on yellow", "critical": "bold white on red"}
LEVEL_STYLE = {"ok": "green", "warning": "yellow", "critical": "bold red"}
FINDING_LINES = 3  # badge line + the two worst findings; "+N more" counts the rest
# Tile columns, most first: the first that fits the screen without cutting a title or a value wins. From three
# rows of tiles on, each tile is one line high (value and detail side by side) to leave room for the rest.
TILE_COLUMNS = (9, 5, 3, 2, 1)
COMPACT_FROM_ROWS = 3
SCROLLBAR = 2  # reserved whether or not the body scrolls, so the layout never flips when a scrollbar appears
# Below this width the tables are stacked (one column): side by side they would cut numbers and names.
STACK_BELOW = 100
NUMERIC = {"count", "avg retries", "fails", "done", "failed", "took"}
WIDE = {"reason", "method", "name"}


def _small_table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=True, box=None, pad_edge=False)
    for column in columns:
        justify: JustifyMethod = "right" if column in NUMERIC else "left"
        left = justify == "left" and column in WIDE
        table.add_column(
            column, header_style="dim", justify=justify, no_wrap=True, overflow="ellipsis", ratio=2 if left else None
        )
    return table


class HealthScreen(DlqScreen):
    TITLE_TEXT = "health"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", id="health.refresh"),
        # Not in the footer either (80 columns): help lists it, and the header says PAUSED while it holds.
        Binding(
            "space",
            "toggle_pause",
            "Pause",
            tooltip="Freeze the figures, or refresh again",
            id="health.pause",
            show=False,
        ),
        # Not in the footer (it must keep `q` visible at 80 columns): the status line says "+N more (f)".
        Binding(
            "f",
            "toggle_findings",
            "Findings",
            tooltip="Every finding, or only the worst",
            id="health.findings",
            show=False,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._loading = False
        self._again = False
        self._active = False
        self._timer: Timer | None = None
        self._read_at: datetime | None = None
        self._snapshot: FastSnapshot | None = None
        self._findings: list[Finding] | None = None
        self._all_findings = False  # `f`: every finding, not only the worst ones
        self._paused = False  # `space`: no refresh of either tier until it is pressed again
        self._view: ViewReading | None = None
        self._view_read_at: datetime | None = None
        self._view_loading = False
        self._view_after_first = False

    def compose(self) -> ComposeResult:
        yield ConnectionBar("health")
        yield SchemaNotice(id="health-notice")
        with VerticalScroll(id="health-body"):
            with Grid(id="tiles"):
                for field, title in TILES.items():
                    yield Tile(title, id=field)
            yield Static(id="health-status")
            yield Static(id="trends")
            with Horizontal(id="health-tables"):
                with Vertical(classes="health-col"):
                    yield Static(id="breakers", classes="health-table")
                    yield Static(id="runs", classes="health-table")
                with Vertical(classes="health-col"):
                    yield Static(id="reasons", classes="health-table")
                    with Horizontal(id="pending-split"):
                        yield Static(id="by-priority", classes="health-table")
                        yield Static(id="by-classification", classes="health-table")
        yield Footer()

    def on_mount(self) -> None:
        self._lay_out()
        self.watch(self.app, "schema_ready", self._schema_ready_changed)
        self.watch(self.app, "connection_state", self._connection_changed, init=False)
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        self._lay_out()
        self._draw_trends()  # side by side or stacked

    def _tick(self) -> None:
        self._show_staleness()
        if self._view is not None:
            self._draw_view_tiles()  # the view's age beside its figures
            self._lay_out()

    def _lay_out(self) -> None:
        """Tile columns and the tables' arrangement for this width: no count, title or name is ever cut."""
        width = self.size.width
        if width <= 0:
            return
        tiles = list(self.query(Tile))
        need = max(tile.needed_width() for tile in tiles)
        room = width - 2 - SCROLLBAR  # #tiles pads one cell on each side; gutters are one cell
        columns = next((n for n in TILE_COLUMNS if n * need + (n - 1) <= room), 1)
        rows = -(-len(tiles) // columns)
        compact = rows >= COMPACT_FROM_ROWS
        if compact:
            columns = -(-len(tiles) // rows)  # balanced rows: 3 x 3 rather than 4 + 4 + 1
        grid = self.query_one("#tiles", Grid)
        if grid.styles.grid_size_columns != columns:
            grid.styles.grid_size_columns = columns
        self.set_class(compact, "-compact")
        self.set_class(width < STACK_BELOW, "-stacked")

    def _connection_changed(self, state: str) -> None:
        self._show_staleness()
        if state == "connected" and self._active and self.dlq.schema_ready and not self._loading and not self._paused:
            self.refresh_now()  # back: fresh figures now, not at the next tick

    def busy(self) -> bool:
        return (
            self._loading
            or self._view_loading
            or (self.dlq.schema_ready is True and (self._read_at is None or self._view_read_at is None))
        )

    # --- visibility and the refresh loop -------------------------------------------------------
    def on_screen_resume(self) -> None:
        self._active = True
        if self._paused:
            return
        if self.dlq.schema_ready and not self._loading and self._stale():
            self.refresh_now()
        elif self.dlq.schema_ready and self._timer is None and not self._loading:
            self._arm()

    def on_screen_suspend(self) -> None:
        self._active = False
        self._disarm()

    def _schema_ready_changed(self, ready: bool | None) -> None:
        notice = self.query_one(SchemaNotice)
        body = self.query_one("#health-body")
        notice.display = ready is not True
        body.display = ready is True
        if ready is not True:
            notice.show_status(self.dlq.schema_status)
            self._disarm()
            return
        self.refresh_now(view=True)

    def _stale(self) -> bool:
        if self._read_at is None:
            return True
        return (self.dlq.clock() - self._read_at).total_seconds() >= self.dlq.settings.refresh_seconds

    def _view_stale(self) -> bool:
        if self._view_read_at is None:
            return True
        return (self.dlq.clock() - self._view_read_at).total_seconds() >= VIEW_EVERY_S

    def _arm(self) -> None:
        self._disarm()
        if self._paused:
            return
        if self._active and self.dlq.schema_ready and self.dlq.connection_state != "disconnected":
            self._timer = self.set_timer(self.dlq.settings.refresh_seconds, self.refresh_now)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_refresh(self) -> None:
        if self.dlq.connection_state == "disconnected":
            self.dlq.retry_now()  # do not wait out the backoff
        elif self.dlq.schema_ready is False:
            self.dlq.check_schema()  # after a GRANT or a migration elsewhere
        else:
            self.refresh_now(view=True)  # `r` asks for everything, the view's row too (also while paused)

    def action_toggle_pause(self) -> None:
        self._paused = not self._paused
        self.query_one(ConnectionBar).set_screen_title("health · PAUSED" if self._paused else "health")
        if self._paused:
            self._disarm()
        elif self._stale():
            self.refresh_now(view=self._view_stale())
        else:
            self._arm()
        self._show_staleness()

    def refresh_now(self, *, view: bool = False) -> None:
        if not self.dlq.schema_ready:
            return
        if view or self._view_stale():
            self._refresh_view()
        if self._loading:
            self._again = True  # one more poll right after this one, never two at once
            return
        self._disarm()
        self._loading = True
        self.query_one("#health-status", Static).add_class("-loading")
        self.run_worker(self._fetch, name="health refresh", group="health", thread=True, exit_on_error=False)

    def _refresh_view(self) -> None:
        if self._view_loading:
            return  # the view's row is on its way: one pass over the table at a time
        if self._snapshot is None and self._loading:
            # At launch the first fast figures come first: the view's pass over the table would compete with them.
            self._view_after_first = True
            return
        self._view_loading = True
        self.run_worker(self._fetch_view, name="health view", group="health-view", thread=True, exit_on_error=False)

    def _fetch(self) -> None:
        from dlq_tui.health_rules import evaluate

        snapshot = self.dlq.source.health_fast()
        if self.dlq.frozen_clock:
            # Tests freeze the clock: judge ages (and the rules' messages) against it, not the server's.
            snapshot = replace(snapshot, db_now=self.dlq.clock())
        findings = evaluate(snapshot, self.dlq.settings.thresholds)
        if not get_current_worker().is_cancelled:
            self.post_message(HealthLoaded(snapshot, findings, self.dlq.clock()))

    def _fetch_view(self) -> None:
        # A frozen test clock also ends the trends' last bucket, so that their axes do not move with the real date.
        reading = self.dlq.source.health_view(self.dlq.clock() if self.dlq.frozen_clock else None)
        if self.dlq.frozen_clock:
            reading = replace(reading, db_now=self.dlq.clock())
        if not get_current_worker().is_cancelled:
            self.post_message(ViewLoaded(reading, self.dlq.clock()))

    def on_view_loaded(self, message: ViewLoaded) -> None:
        self._view_loading = False
        self._view, self._view_read_at = message.reading, message.read_at
        self._draw_view()
        self._show_staleness()

    def on_health_loaded(self, message: HealthLoaded) -> None:
        self._loading = False
        self.dlq.mark_good(message.read_at)
        self._snapshot = message.snapshot
        self._read_at = message.read_at
        self._draw(message.snapshot, message.findings)
        self._after_poll()

    def worker_failed(self, worker: Worker[object]) -> None:
        if worker.group == "health-view":
            self._view_loading = False
            self._show_staleness()
        if worker.group == "health":
            self._loading = False
            self._show_staleness()
            self._after_poll()

    def _after_poll(self) -> None:
        self.query_one("#health-status", Static).remove_class("-loading")
        if self._view_after_first:
            self._view_after_first = False
            self._refresh_view()
        if self._again:
            self._again = False
            self.refresh_now()
        else:
            self._arm()

    def action_toggle_findings(self) -> None:
        self._all_findings = not self._all_findings
        self._show_staleness()

    # --- drawing -------------------------------------------------------------------------------
    def _draw(self, snapshot: FastSnapshot, findings: list[Finding]) -> None:
        figures = snapshot.figures
        now = snapshot.db_now  # the server's clock: no client skew (or the frozen test clock)

        def tile(field: str, value: str, detail: str = "") -> None:
            self.query_one(f"#{field}", Tile).show(value, detail, _level_for(field, findings))

        tile("pending_events", f"{figures.pending_events:,}", "unresolved")
        oldest = figures.oldest_pending_at
        tile("oldest_pending_at", fmt.age_between(oldest, now) + (" old" if oldest else ""), "pending")
        newest = figures.newest_unresolved_event
        tile("newest_unresolved_event", fmt.age_between(newest, now) + (" ago" if newest else ""), "pending")
        tile("high_retry_events", f"{figures.high_retry_events:,}", "events")
        tile("locked_events", f"{figures.locked_events:,}", "live locks")
        tile("malicious_events", f"{figures.malicious_events:,}", "all time")
        tile("high_priority_events", f"{figures.high_priority_events:,}", "all time")
        self._draw_view_tiles()
        for field in self.dlq.source.unavailable_figures:  # SQLite: no such column to count
            tile(field, "n/a", "v7 only")
        self._lay_out()  # a longer value may need wider tiles
        self._draw_findings(findings)
        self._draw_breakers(snapshot, now)
        self._draw_runs(snapshot, now)
        self._draw_analysis(snapshot)

    def _view_age(self) -> float | None:
        if self._view_read_at is None:
            return None
        return (self.dlq.clock() - self._view_read_at).total_seconds()

    def _draw_view_tiles(self) -> None:
        """Processed and the average: the view's row, its age beside them; "~" once it is older than the rest."""
        if self._view is None:
            return
        figures = self._view.figures
        seconds = self._view_age() or 0.0
        approx = "~" if seconds >= 1 else ""
        source = f"view {fmt.age(seconds)} ago"
        values = {
            "processed_events": f"{approx}{figures.processed_events:,}",
            "avg_resolution_time_seconds": approx + fmt.duration(figures.avg_resolution_time_seconds),
        }
        for field in VIEW_TILES:
            self.query_one(f"#{field}", Tile).show(values[field], source)

    def _draw_view(self) -> None:
        self._draw_view_tiles()
        self._lay_out()
        self._draw_trends()

    def _draw_trends(self) -> None:
        """Arrivals and resolutions per hour (24 h) and per day (30 days) as bars from zero, peak beside them."""
        if self._view is None:
            return
        trends = self._view.trends
        stacked = self.size.width < STACK_BELOW

        def block(series: TrendSeries, title: str, unit: str, stamp: str) -> Table:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True, style="dim")
            grid.add_column(no_wrap=True)
            grid.add_column(no_wrap=True, style="dim")
            grid.add_row("", Text(title, style="bold"), "")
            for label, values, style in (("arrived", series.arrived, "cyan"), ("resolved", series.resolved, "green")):
                peak = max(values, default=0)
                bar = Text(fmt.bars(values), style=f"{style} on grey11")
                grid.add_row(label, bar, f"max {peak:,}/{unit}")
            first, last = f"{series.starts[0]:{stamp}}", f"{series.starts[-1]:{stamp}}"
            axis = first + " " * max(1, len(series.starts) - len(first) - len(last)) + last
            grid.add_row("", Text(axis, style="dim"), "UTC")
            return grid

        hourly = block(trends.hourly, "per hour, last 24 h", "h", "%H:%M")
        daily = block(trends.daily, "per day, last 30 days", "d", "%m-%d")
        if stacked:
            body: Group | Table = Group(hourly, daily)
        else:
            body = Table.grid(padding=(0, 3))
            body.add_row(hourly, daily)
        self.query_one("#trends", Static).update(body)

    def _draw_findings(self, findings: list[Finding]) -> None:
        from dlq_tui.health_rules import worst_first

        self._findings = worst_first([f for f in findings if f.level != "ok"])
        self._show_staleness()

    def _show_staleness(self) -> None:
        """The status block: a level badge, the counts and the figures' age, then the worst findings.

        At most FINDING_LINES lines in all (the tiles above already carry each figure's colour) unless `f` asked
        for every finding; level-coloured text on the normal background, one finding a line, cut with an
        ellipsis, never wrapped.
        """
        from dlq_tui.health_rules import overall
        from dlq_tui.text import safe_text

        if self._read_at is None or self._findings is None:
            return
        problems = self._findings
        level = overall(problems)
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f" {str(level).upper()} ", style=BADGE_STYLE.get(level, "bold reverse"))
        head.append("  ")
        shown = problems if self._all_findings else problems[: FINDING_LINES - 1]
        if problems:
            counts = [(lvl, sum(1 for f in problems if f.level == lvl)) for lvl in ("critical", "warning")]
            text = ", ".join(f"{n} {lvl}{'s' if lvl == 'warning' and n != 1 else ''}" for lvl, n in counts if n)
            # "+N more" in the counts' own run: spacing at a style change is what copied text loses
            # ("3 warnings+3 more").
            more = f" · +{len(problems) - len(shown)} more (f)" if len(problems) > len(shown) else ""
            head.append(text + more, style=LEVEL_STYLE[level])
        else:
            head.append("every figure within its threshold", style="dim")
        seconds = (self.dlq.clock() - self._read_at).total_seconds()
        head.append(f"  · figures from {fmt.age(seconds)} ago", style="dim")
        view_age = self._view_age()
        if view_age is not None and fmt.age(view_age) != fmt.age(seconds):
            head.append(f", view {fmt.age(view_age)} ago", style="dim")
        if self._paused:
            head.append("  · PAUSED (space resumes)", style="bold yellow")
        if self.dlq.connection_state == "disconnected":
            head.append(" (last good data)", style="bold red")
        lines = [head]
        for finding in shown:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append("● ", style=LEVEL_STYLE.get(finding.level, ""))
            # Breaker names come from the database: never markup, never raw control characters.
            line.append_text(safe_text(str(finding.message), limit=300, style=LEVEL_STYLE.get(finding.level, "")))
            lines.append(line)
        self.query_one("#health-status", Static).update(Group(*lines))

    def _draw_breakers(self, snapshot: FastSnapshot, now: datetime) -> None:
        from dlq_tui.text import safe_text

        table = _small_table("Circuit breakers", "name", "state", "fails", "next attempt")
        styles = {"closed": "green", "open": "bold red", "half_open": "yellow"}
        for b in snapshot.breakers:
            nxt = b.next_attempt_time
            nxt_text = "-" if nxt is None else ("due" if nxt <= now else f"in {fmt.age_between(now, nxt)}")
            table.add_row(
                safe_text(b.name, limit=40),
                safe_text(b.state, limit=20, style=styles.get(b.state, "")),
                f"{b.failure_count}/{b.failure_threshold}",
                nxt_text,
            )
        if not snapshot.breakers:
            table.add_row(Text("no breakers recorded", style="dim"), "", "", "")
        self.query_one("#breakers", Static).update(table)

    def _draw_runs(self, snapshot: FastSnapshot, now: datetime) -> None:
        from dlq_tui.text import safe_text

        table = _small_table("Last processing runs", "started", "method", "done", "failed", "took")
        for run in snapshot.recent_runs[:8]:
            table.add_row(
                fmt.age_between(run.started_at, now) + " ago",
                safe_text(run.method, limit=20),
                f"{run.processed}",
                Text(f"{run.failed}", style="red" if run.failed else ""),
                fmt.duration(run.duration_ms / 1000) + (" ⚡" if run.circuit_breaker_triggered else ""),
            )
        if not snapshot.recent_runs:
            table.add_row(Text("no runs recorded", style="dim"), "", "", "", "")
        self.query_one("#runs", Static).update(table)

    def _draw_analysis(self, snapshot: FastSnapshot) -> None:
        from dlq_tui.text import safe_text

        analysis = snapshot.analysis
        reasons = _small_table("Top failure reasons", "reason", "count", "avg retries")
        for stat in analysis.top_reasons[:8]:
            reasons.add_row(safe_text(stat.reason, limit=60), f"{stat.count:,}", f"{stat.avg_retries:.1f}")
        self.query_one("#reasons", Static).update(reasons)
        by_priority = _small_table("Pending by priority", "priority", "count")
        for priority, count in analysis.pending_by_priority:
            by_priority.add_row(f"{priority} {priority_label(priority)}", f"{count:,}")
        self.query_one("#by-priority", Static).update(by_priority)
        by_class = _small_table("By classification", "class", "count")
        for classification, count in analysis.pending_by_classification:
            label = Text("unclassified", style="dim") if classification is None else safe_text(classification, limit=24)
            by_class.add_row(label, f"{count:,}")
        self.query_one("#by-classification", Static).update(by_class)
