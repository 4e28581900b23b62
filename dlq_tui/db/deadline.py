"""An overall time limit for one command, kept by the client.

The server's statement_timeout bounds a slow query, and connect_timeout a server that does not finish
the login. Neither helps once a server has let us in and then stops answering (a hung server, a stuck
pooler, a frozen VM): the kernel of a live host acknowledges every packet and keepalive, so a blocked
read waits forever. So at the deadline a watchdog thread asks the server to cancel what runs (a slow
but live server stops its work and frees its locks) and then shuts down the sockets of every
connection it watches: the command's blocked call returns at once with the usual "connection lost"
error, cleans up as after any lost connection, and the explanation says which limit passed. Should a
command still not end a few seconds later (blocked outside any socket we know, e.g. in a name lookup),
`on_stuck` ends the process.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, event

# How long the cancel requests may take before the sockets are cut anyway (a silent server never answers).
CANCEL_WAIT_S = 1.0
# How long a command has to end after its sockets were cut before on_stuck is called.
STUCK_GRACE_S = 3.0
# Set on an exception raised after the deadline passed (to the Deadline): classify_connection_error reads it.
_MARK = "dlq_tui_deadline"


class Deadline:
    """`seconds` (None or 0: no limit) from start() on; `setting` names the flag that sets it, for messages."""

    def __init__(
        self,
        seconds: float | None,
        setting: str,
        *,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self.seconds = seconds if seconds else None
        self.setting = setting
        self.on_stuck = on_stuck
        self._ends_at: float | None = None
        self._expired = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._timer: threading.Timer | None = None

    # ------------------------------------------------------------------------------------ running

    def start(self) -> Deadline:
        if self.seconds is not None and self._timer is None:
            self._ends_at = time.monotonic() + self.seconds
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.name = "dlq-tui-deadline"
            self._timer.start()
        return self

    def stop(self) -> None:
        """The command is done (or hands over to the app, which has no overall limit): stop watching."""
        with self._lock:
            self._finished.set()
            if self._timer is not None:
                self._timer.cancel()
            self._watched.clear()

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def remaining(self) -> float | None:
        if self._ends_at is None:
            return None
        return max(0.0, self._ends_at - time.monotonic())

    def statement_timeout_ms(self) -> int | None:
        """The server-side bound for a statement: the whole budget (a live server then stops by itself)."""
        return None if self.seconds is None else max(1, math.ceil(self.seconds * 1000))

    def connect_timeout(self, current: int) -> int:
        """connect_timeout for a new connection: what is left, when that is shorter than `current` (seconds)."""
        left = self.remaining()
        if left is None or self._finished.is_set():
            return current
        return min(current, max(1, math.ceil(left))) if current > 0 else max(1, math.ceil(left))

    # ------------------------------------------------------------------------------------ watching

    def attach(self, engine: Engine) -> None:
        """Watch every connection the engine opens, and mark its errors once the deadline has passed."""
        if self.seconds is None:
            return  # no limit: nothing will ever be cut

        # insert=True: before SQLAlchemy's own first-connect queries, which a silent server would hang too.
        @event.listens_for(engine.pool, "connect", insert=True)
        def _watch(dbapi_connection: Any, _record: Any) -> None:
            self.watch(dbapi_connection)

        @event.listens_for(engine, "handle_error")
        def _mark(context: Any) -> None:
            if self.expired:
                for exc in (context.sqlalchemy_exception, context.original_exception):
                    if exc is not None:
                        setattr(exc, _MARK, self)

    def watch(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if self._finished.is_set():
                return
            self._watched.add(conn)
            cut_now = self.expired
        if cut_now:  # opened after the deadline passed: it must not hang either
            _cut(conn)

    def check(self) -> None:
        """Raise the deadline's error if it has passed (before opening a new connection)."""
        if self.expired and not self._finished.is_set():
            error = psycopg.OperationalError(f"the overall time limit ({self.setting}) has passed")
            setattr(error, _MARK, self)
            raise error

    def describe(self, target: str) -> str:
        """The one line an operator reads when the deadline passed."""
        limit = f"{self.seconds:g}" if self.seconds is not None else "?"
        return (
            f"no answer from {target} within {limit} s ({self.setting}): the server is hung or overloaded, "
            f"a lock blocks the work, or a pooler is stuck; raise {self.setting} if the work needs longer"
        )

    def _fire(self) -> None:
        with self._lock:
            if self._finished.is_set():
                return
            self._expired.set()
            conns = list(self._watched)
        cancels = [threading.Thread(target=_cancel_quietly, args=(c,), daemon=True) for c in conns]
        for thread in cancels:
            thread.start()
        until = time.monotonic() + CANCEL_WAIT_S
        for thread in cancels:
            thread.join(max(0.0, until - time.monotonic()))
        for conn in conns:
            _cut(conn)
        if self.on_stuck is not None and not self._finished.wait(STUCK_GRACE_S):
            with self._lock:
                if not self._finished.is_set():
                    self.on_stuck()


def _cancel_quietly(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(Exception):  # a silent server, a closed connection: the socket is cut next anyway
        conn.cancel_safe(timeout=CANCEL_WAIT_S)


def _cut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down (not close: the descriptor stays psycopg's to close).

    A read blocked on it returns at once with end-of-file, which libpq reports as a lost connection.
    """
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return  # already closed
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def passed_deadline(exc: BaseException) -> Deadline | None:
    """The Deadline that had passed when exc (or the driver error it wraps) was raised, or None."""
    for candidate in (exc, getattr(exc, "orig", None)):
        found = getattr(candidate, _MARK, None)
        if isinstance(found, Deadline):
            return found
    return None
