"""End to end: the real `dlq-tui` console script in a pseudo-terminal shows the health screen and quits on q."""

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
from pathlib import Path

import pytest

from tests.support.console import console_script
from tests.ui.conftest import DemoDb

ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]")


def read_until(fd: int, proc: subprocess.Popen[bytes], wanted: list[str], timeout: float) -> str:
    """Read the terminal until every wanted word appears in the text (escape sequences removed)."""
    raw = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            raw += chunk
            screen = ANSI.sub("", raw.decode("utf-8", "replace"))
            if all(word in screen for word in wanted):
                return screen
        elif proc.poll() is not None:
            break
    return ANSI.sub("", raw.decode("utf-8", "replace"))


@pytest.mark.slow
def test_dlq_tui_in_a_pseudo_terminal(demo_db: DemoDb) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "DLQ_TUI_DSN": ""}
    started = time.monotonic()
    proc = subprocess.Popen(
        [console_script(), "--dsn", demo_db.dsn, "--refresh", "2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,  # Textual draws on stderr
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    try:
        screen = read_until(master, proc, ["Pending", "Circuit", "breakers", "connected"], timeout=30)
        first_paint = time.monotonic() - started
        assert "Pending" in screen and "breakers" in screen, screen[-2000:]
        assert "Traceback" not in screen
        os.write(master, b"q")
        # Keep draining the terminal while it exits: an unread pty fills up and blocks the app's final writes.
        read_until(master, proc, ["<never printed>"], timeout=15)
        code = proc.wait(timeout=5)
        assert code == 0
        print(f"first health paint after {first_paint:.2f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        os.close(master)


def test_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    dsn = f"host={tmp_path} port=1 dbname=nope user=nobody password=hunter2-secret connect_timeout=2"
    result = subprocess.run(
        [console_script(), "--dsn", dsn], capture_output=True, text=True, timeout=60, env={**os.environ}
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlq-tui:"), result.stderr
    assert "hunter2-secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("key", [b"e", b"m"])
def test_quit_right_after_switching_screens_in_a_pseudo_terminal(demo_db: DemoDb, key: bytes) -> None:
    """e or m, then q at once, as a user types it: the app ends with exit code 0 and no traceback."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "DLQ_TUI_DSN": ""}
    proc = subprocess.Popen(
        [console_script(), "--dsn", demo_db.dsn],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    try:
        read_until(master, proc, ["Pending", "breakers"], timeout=30)
        os.write(master, key + b"q")
        screen = read_until(master, proc, ["<never printed>"], timeout=15)
        assert proc.wait(timeout=5) == 0, screen[-2000:]
        assert "Traceback" not in screen and "NoMatches" not in screen
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        os.close(master)
