"""--lock-ttl: a lifetime a claim cannot have is refused at the command line (one line, exit 2), never at the
first claim inside the app."""

from __future__ import annotations

import subprocess

import pytest

from dlq_tui.cli import build_parser, run
from dlq_tui.db.triage import LOCK_TTL_MAX_MINUTES, Operator
from tests.support.console import console_script

REFUSAL = f"dlq-tui: error: argument --lock-ttl: expected whole minutes from 1 to {LOCK_TTL_MAX_MINUTES}, got "


@pytest.mark.parametrize(
    "value",
    ["0", "-5", "nan", "inf", "1e3", "1.5", "", "30m", str(LOCK_TTL_MAX_MINUTES + 1), "99999999999", "9" * 5000],
)
def test_a_lifetime_out_of_range_is_one_line_and_exit_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--lock-ttl", value, "--dsn", "host=/nonexistent dbname=x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(REFUSAL)  # argparse's usage, then the one line
    assert len(err.splitlines()[-1]) < 200  # a 5,000-digit value is not echoed whole


@pytest.mark.parametrize("value", ["1", "30", str(LOCK_TTL_MAX_MINUTES)])
def test_a_lifetime_in_range_is_taken(value: str) -> None:
    assert build_parser().parse_args(["--lock-ttl", value]).lock_ttl == int(value)
    assert Operator("a", lock_ttl_minutes=int(value)).lock_ttl_minutes == int(value)


def test_the_operator_refuses_what_the_command_line_refuses() -> None:
    for minutes in (0, -1, LOCK_TTL_MAX_MINUTES + 1, 2**40):
        with pytest.raises(ValueError, match="lock TTL must be from 1 to"):
            Operator("a", lock_ttl_minutes=minutes)


def test_console_script_refuses_lock_ttl_zero_without_a_traceback() -> None:
    done = subprocess.run(
        [console_script(), "--lock-ttl", "0", "--dsn", "host=/nonexistent dbname=x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == REFUSAL + "'0'"
    assert "Traceback" not in done.stderr
