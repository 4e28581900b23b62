"""App-level measurements: start to first painted events screen, and memory while paging 1,000 pages.

Start-up runs the real `dlq-tui --dsn ...` console script in a tmux pane (100x30) and polls the
pane's text: the health screen is the first screen, so the clock reads launch -> health painted,
then `e` -> events rows painted (both reported, and their sum). Memory runs the App headless
(App.run_test) in this process with a Pilot pressing `end` (each press at the window's bottom loads
the next page) and reads this process's resident set size from /proc/self/status after 1 page and
after `pages` pages; the table keeps a bounded window (MAX_PAGES pages), so the ratio should stay ~1.
"""

from __future__ import annotations

import asyncio
import gc
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HEALTH_MARK = "unresolved"  # the Pending tile's second line: drawn with the first figures, not before
EVENTS_MARK = "cowrie.json"  # seeded sources: only event rows show them
SIZE = (100, 30)


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _console_script() -> str:
    found = Path(sys.executable).with_name("dlq-tui")
    return str(found) if found.exists() else shutil.which("dlq-tui") or "dlq-tui"


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


def _wait_for(session: str, mark: str, timeout: float) -> float | None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if mark in _pane(session):
            return time.perf_counter()
        time.sleep(0.01)
    return None


def measure_startup(dsn: str, *, repeats: int = 5, timeout: float = 60.0) -> dict[str, Any]:
    """Launch -> health painted -> (press e) -> events painted, in tmux, `repeats` times."""
    if shutil.which("tmux") is None:
        return {"error": "tmux not installed"}
    health, events_after_key, total = [], [], []
    failures: list[str] = []
    for _ in range(repeats):
        session = f"dlqbench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", str(SIZE[0]), "-y", str(SIZE[1]),
             f"{_console_script()} --dsn {shlex.quote(dsn)}"],
            check=True,
        )  # fmt: skip
        try:
            shown = _wait_for(session, HEALTH_MARK, timeout)
            if shown is None:
                failures.append("health screen never painted: " + _pane(session)[-300:])
                continue
            subprocess.run(["tmux", "send-keys", "-t", session, "e"], check=True)
            pressed = time.perf_counter()
            rows = _wait_for(session, EVENTS_MARK, timeout)
            if rows is None:
                failures.append("events rows never painted: " + _pane(session)[-300:])
                continue
            health.append((shown - started) * 1000)
            events_after_key.append((rows - pressed) * 1000)
            total.append((rows - started) * 1000)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    from bench.stats import Spread

    out: dict[str, Any] = {"failures": failures}
    if total:
        out["launch_to_health_ms"] = Spread("ms", tuple(health)).as_dict()
        out["key_to_events_ms"] = Spread("ms", tuple(events_after_key)).as_dict()
        out["launch_to_events_ms"] = Spread("ms", tuple(total)).as_dict()
    return out


async def _paging(dsn: str, pages: int, say: Callable[[str], None]) -> dict[str, Any]:
    from dlq_tui.config import Settings
    from dlq_tui.ui.app import DlqApp
    from dlq_tui.ui.source import DataSource

    class CountingSource(DataSource):
        fetched = 0

        def page(self, *args: Any, **kwargs: Any) -> Any:
            result = super().page(*args, **kwargs)
            CountingSource.fetched += 1
            return result

    settings = Settings(dsn=dsn, operator="bench")
    app = DlqApp(settings, source=CountingSource(settings))

    async def settle(pilot: Any) -> None:
        quiet = 0
        while quiet < 2:
            await app.workers.wait_for_complete()
            await pilot.pause(0.01)
            busy = getattr(app.screen, "busy", lambda: False)()
            quiet = 0 if busy or any(w.is_running for w in app.workers) else quiet + 1

    samples: list[tuple[int, float]] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        gc.collect()
        after_one, _peak = _rss_mib()
        samples.append((CountingSource.fetched, after_one))
        started = time.perf_counter()
        stalled = 0
        while CountingSource.fetched < pages + 1 and stalled < 20:
            before = CountingSource.fetched
            await pilot.press("end")
            await settle(pilot)
            stalled = stalled + 1 if CountingSource.fetched == before else 0
            if CountingSource.fetched % 100 == 0 and CountingSource.fetched != before:
                samples.append((CountingSource.fetched, _rss_mib()[0]))
                say(f"    paged {CountingSource.fetched} pages, RSS {samples[-1][1]:.0f} MiB")
        elapsed = time.perf_counter() - started
        gc.collect()
        after_all, peak = _rss_mib()
        window = len(app.screen.table.window_rows) if hasattr(app.screen, "table") else None
    return {
        "pages_fetched": CountingSource.fetched,
        "rss_after_1_page_mib": after_one,
        "rss_after_all_mib": after_all,
        "peak_rss_mib": peak,
        "ratio": after_all / after_one,
        "seconds": elapsed,
        "ms_per_page": elapsed * 1000 / max(1, CountingSource.fetched - 1),
        "rows_in_window_at_end": window,
        "rss_samples": samples,
    }


def measure_app(dsn: str, *, pages: int, startups: int, say: Callable[[str], None]) -> dict[str, Any]:
    say("  app start-up in tmux")
    startup = measure_startup(dsn, repeats=startups)
    say(f"    {startup}")
    say(f"  app memory while paging {pages} pages (headless)")
    memory = asyncio.run(_paging(dsn, pages, say))
    say(
        f"    RSS after 1 page {memory['rss_after_1_page_mib']:.0f} MiB, after {memory['pages_fetched']} pages "
        f"{memory['rss_after_all_mib']:.0f} MiB (ratio {memory['ratio']:.2f}), peak {memory['peak_rss_mib']:.0f} MiB; "
        f"{memory['ms_per_page']:.0f} ms per page incl. redraw"
    )
    return {"startup": startup, "memory": memory}
