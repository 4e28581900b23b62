"""A hot standby (a real streaming replica of a local primary): the app opens read-only with a STANDBY badge,
and the one-shot commands that write refuse in one line before they touch anything."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from dlq_tui.cli import run
from dlq_tui.db.connect import is_hot_standby, make_engine
from tests.support import dbstates
from tests.support.console import console_script
from tests.support.factories import add_bare_events
from tests.support.pg import LocalServer, start_local_server, start_standby
from tests.support.terminal import Terminal

# The pipeline's own production major.
STANDBY_MAJOR = 17


@dataclass
class Replica:
    primary: LocalServer
    standby: LocalServer

    def dsn(self, database: str) -> str:
        return self.standby.dsn(database)


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    primary, _ = start_local_server(STANDBY_MAJOR)
    standby = None
    try:
        with primary_admin(primary) as conn:
            conn.execute(text("CREATE DATABASE legacy"))
            conn.execute(text("CREATE DATABASE v7"))
        legacy = make_engine(primary.dsn("legacy"))
        dbstates.make_legacy_v6(legacy, rows=20)  # work for --migrate, were it allowed
        legacy.dispose()
        v7 = make_engine(primary.dsn("v7"))
        dbstates.make_v7(v7)
        add_bare_events(v7, 5, reason="json_parsing_failed")
        v7.dispose()
        standby = start_standby(primary)
        yield Replica(primary, standby)
    finally:
        for server in (standby, primary):
            if server is not None:
                server.stop()
                shutil.rmtree(server.scratch, ignore_errors=True)


def primary_admin(primary: LocalServer):  # type: ignore[no-untyped-def]
    return make_engine(primary.dsn()).execution_options(isolation_level="AUTOCOMMIT").connect()


def test_the_replica_is_a_hot_standby_and_the_primary_is_not(replica: Replica) -> None:
    assert is_hot_standby(replica.dsn("v7"))
    assert not is_hot_standby(replica.primary.dsn("v7"))


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--migrate"], "--migrate"),
        (["--migrate", "--online"], "--migrate"),
        (["redrive", "--reason", "json_parsing_failed"], "redrive"),
        (["purge", "--resolved-older-than", "30"], "purge"),
    ],
    ids=["migrate", "migrate-online", "redrive", "purge"],
)
def test_write_commands_refuse_in_one_line(
    replica: Replica, argv: list[str], what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database = "legacy" if what == "--migrate" else "v7"
    code = run(["--dsn", replica.dsn(database), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dlq-tui: {what} writes to the database") and "hot standby" in lines[0], err
    assert "run it against the primary" in lines[0] and "Traceback" not in err


@pytest.mark.slow
def test_the_app_opens_read_only_with_a_standby_badge(replica: Replica) -> None:
    with Terminal([console_script(), "--dsn", replica.dsn("v7")], rows=30, cols=120) as term:
        screen = term.read_until(["STANDBY", "READ-ONLY", "Pending"], timeout=30)
        assert "Traceback" not in screen
        term.send("q")
        assert term.wait_exit(timeout=20) == 0, term.text()[-2000:]
