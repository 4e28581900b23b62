"""One pseudo-terminal harness for every test that runs the real `dlq-tui` as a user's terminal would."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

# Escape sequences the terminal receives, removed to read the text a person would see.
ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]")

# A DSN in the caller's environment must not decide which database a terminal test opens.
DSN_VARIABLES = (
    "DLQ_TUI_DSN",
    "COWRIEPROC_DB_URL",
    "COWRIEPROC_DB_PATH",
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSERVICE",
)


class Terminal:
    """A child process on a pty of `rows` x `cols`; everything it writes is kept as raw bytes."""

    def __init__(self, argv: list[str], *, rows: int = 50, cols: int = 160, env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        base = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES}
        base.update(TERM="xterm-256color", COLORTERM="truecolor")
        base.update(env or {})
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=base, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.raw = b""

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def text(self, since: int = 0) -> str:
        return ANSI.sub("", self.raw[since:].decode("utf-8", "replace"))

    def _read(self, wait: float) -> bool:
        """Read what is there within `wait` seconds; False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return False
        self.raw += chunk
        return bool(chunk)

    def read_until(self, words: list[str], timeout: float, since: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(word in self.text(since) for word in words):
                return self.text(since)
            if not self._read(0.1) or (self.proc.poll() is not None and not self._read(0.1)):
                break
        if all(word in self.text(since) for word in words):
            return self.text(since)
        raise AssertionError(f"not seen within {timeout} s: {words}\n{self.text(since)[-3000:]}")

    def read_quiet(self, idle: float, timeout: float) -> None:
        """Keep reading until the app has written nothing for `idle` seconds (it has finished drawing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], idle)
            if not ready:
                return
            if not self._read(0):
                return
        raise AssertionError(f"still drawing after {timeout} s")

    def send(self, keys: str | bytes) -> None:
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def wait_exit(self, timeout: float) -> int:
        """Keep draining the pty (a full buffer would block the child's last writes) until it exits."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if not self._read(0.1):
                break
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        os.close(self.master)
