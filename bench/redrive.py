"""Redrive throughput (events/s into raw_events) and the repair's cost per event.

The queue holds N parse failures that a redrive takes (valid lines, lines cut after a comma, lines with a log
prefix or a trailing comma), spread over 20 log files whose loader rows are in raw_events (so source_inode is
inferred, as in production). One operator redrives them all in one call: batches of 500, each one transaction
(lock, repair, look for the line, insert, resolve with the audit entry), plus the metrics row.
The repair cost is measured apart, on the stored payload text of each kind (and of refused and ambiguous ones,
which a redrive also pays for): repair_stored() as the redrive calls it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from bench.stats import Spread
from dlq_tui.db import redrive as R
from dlq_tui.db.triage import Operator
from dlq_tui.demo import create_raw_events

FILES = 20
_REST = {
    "username": "root",
    "password": "P@ssw0rd",
    "message": "login attempt [root/P@ssw0rd] failed",
    "sensor": "hp-eu-1",
    "src_ip": "198.51.100.23",
}


def _line(n: int) -> dict[str, Any]:
    """A Cowrie event, required fields first (older Cowrie releases wrote them in that order)."""
    return {
        "eventid": "cowrie.login.failed",
        "session": f"{0x3F9A0C1D0000 + n:012x}",
        "timestamp": f"2024-03-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{(n // 60) % 60:02d}.{n % 999_999:06d}Z",
        **_REST,
    }


def broken(n: int) -> str:
    """The malformed_content of dead letter n: one of four repairable kinds."""
    line = json.dumps(_line(n))
    kind = n % 4
    if kind == 0:
        return line  # valid: the loader choked on something else
    if kind == 1:
        return line[:-1] + ",}"  # trailing comma
    if kind == 2:
        return "2024-03-11T04:12:55.123Z cowrie[812]: " + line  # a log prefix
    return line[: line.index('"sensor"')]  # cut right after a comma


# What a redrive repairs, and what it looks at and leaves (the label gets the verdict when measured).
SAMPLES = {
    "valid line": json.dumps(_line(1)),
    "trailing comma": json.dumps(_line(2))[:-1] + ",}",
    "log prefix": "2024-03-11T04:12:55.123Z cowrie[812]: " + json.dumps(_line(3)),
    "cut after a comma": broken(3),
    "cut inside the message": (lambda t: t[: t.index('"message": "') + 20])(json.dumps(_line(4))),
    "cut inside the session": (lambda t: t[: t.index('"session": "') + 15])(json.dumps(_line(5))),
    "binary junk": "SSH-2.0-\\xff\\xfe\\x80\\x81" * 8,
}


@dataclass
class RedriveResults:
    rows: int
    seconds: float
    redriven: int
    skipped: int
    failed: int
    batches: int
    repair_us: dict[str, Spread]

    @property
    def events_per_s(self) -> float:
        return self.redriven / self.seconds if self.seconds else 0.0


def seed(engine: Engine, rows: int) -> list[int]:
    with engine.begin() as conn:
        create_raw_events(conn)
        conn.execute(
            text(
                "INSERT INTO raw_events (ingest_id, source, source_offset, source_inode, payload, payload_hash,"
                " session_id, event_type, event_timestamp)"
                " SELECT 'loader', '/var/log/cowrie/cowrie.json.' || f, 10000000 + k, CAST(880000 + f AS text),"
                " CAST('{}' AS json), md5(f || ':' || k), NULL, 'cowrie.session.connect', now()"
                " FROM generate_series(1, :files) AS f, generate_series(1, 50) AS k"
            ),
            {"files": FILES},
        )
        values = [
            {
                "source": f"/var/log/cowrie/cowrie.json.{1 + n % FILES}",
                "offset": n,
                "payload": json.dumps(
                    {"malformed_content": broken(n), "parsing_timestamp": "2024-03-11T04:12:56Z", "original_offset": n}
                ),
            }
            for n in range(rows)
        ]
        ids: list[int] = []
        for start in range(0, rows, 5000):
            ids += (
                conn.execute(
                    text(
                        "INSERT INTO dead_letter_events (ingest_id, source, source_offset, reason, payload)"
                        " SELECT 'bench', v.source, v.off, 'json_parsing_failed', CAST(v.payload AS json)"
                        " FROM unnest(CAST(:sources AS text[]), CAST(:offsets AS integer[]), CAST(:payloads AS text[]))"
                        " AS v(source, off, payload) RETURNING id"
                    ),
                    {
                        "sources": [v["source"] for v in values[start : start + 5000]],
                        "offsets": [v["offset"] for v in values[start : start + 5000]],
                        "payloads": [v["payload"] for v in values[start : start + 5000]],
                    },
                )
                .scalars()
                .all()
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) dead_letter_events"))
        conn.execute(text("VACUUM (ANALYZE) raw_events"))
    return sorted(ids)


def measure_repair(repeats: int = 200) -> dict[str, Spread]:
    out = {}
    for name, content in SAMPLES.items():
        stored = json.dumps({"malformed_content": content, "parsing_timestamp": "x", "original_offset": 1})
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            R.repair_stored(stored, False, len(stored))
            samples.append((time.perf_counter() - started) * 1e6)
        status = R.repair_stored(stored, False, len(stored)).status
        out[f"{name} ({status})"] = Spread("µs", tuple(samples))
    return out


def measure_redrive(engine: Engine, rows: int) -> RedriveResults:
    ids = seed(engine, rows)
    started = time.perf_counter()
    result = R.redrive(engine, Operator("bench-operator"), ids)
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        written = conn.execute(text("SELECT count(*) FROM raw_events WHERE ingest_id = 'bench'")).scalar_one()
    assert written == len(result.done), (written, len(result.done))
    return RedriveResults(
        rows=rows,
        seconds=elapsed,
        redriven=len(result.done),
        skipped=len(result.skipped),
        failed=len(result.failed),
        batches=-(-rows // R.BATCH_SIZE),
        repair_us=measure_repair(),
    )
