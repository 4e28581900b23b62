"""`dlq-tui redrive`: repair dead letters and redrive them into raw_events, for cron and scripts.

The same code path as the app (dlq_tui.db.redrive). Exit codes: 0 when every selected event was redriven or
skipped for a stated reason, 1 when any failed or redrive is not possible here (no target, read-only, no
privilege), 2 for connection faults. Ambiguous repairs are never redriven from here: they need a person in the
preview (`f` on the events screen).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from dlq_tui.config import default_operator
from dlq_tui.db.connect import open_checked
from dlq_tui.db.dsn import is_sqlite
from dlq_tui.db.errors import connection_errors, explain_connection_error
from dlq_tui.db.redrive import RedriveRefused, RedriveResult, redrive, select_ids
from dlq_tui.db.triage import Operator
from dlq_tui.text import plain

EXIT_OK, EXIT_PROBLEM, EXIT_FAULT = 0, 1, 2
_LINE_LIMIT = 300


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", default=None, help="only pending events with this reason code")
    parser.add_argument("--id", dest="ids", type=int, action="append", metavar="N", help="this event (repeat for more)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N events")
    parser.add_argument(
        "--dry-run", dest="redrive_dry_run", action="store_true", help="write nothing: say what would be redriven"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    # Also accepted after the subcommand (the global ones are app options); SUPPRESS keeps the global value.
    parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--operator", default=argparse.SUPPRESS, help="name written in the audit trail")


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.ids and args.reason is not None:
        parser.error("--id and --reason cannot be combined: --id names the events itself")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")


def _stamp(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else plain(value)


def _reason(result: RedriveResult, event_id: int, reason: str) -> str:
    detail = result.details.get(event_id)
    return f"{reason}: {detail}" if detail else reason


def _where(result: RedriveResult, event_id: int) -> dict[str, Any]:
    dest = result.destinations.get(event_id)
    if dest is None:
        return {}
    return {
        "source": dest.source,
        "source_offset": dest.source_offset,
        "source_inode": dest.source_inode,
        "source_inode_basis": dest.inode_basis,
        "session_id": dest.session_id,
        "event_type": dest.event_type,
        "event_timestamp": _stamp(dest.event_timestamp),
        "payload_hash": dest.payload_hash,
    }


def document(result: RedriveResult, selected: int, refusal: str | None = None) -> dict[str, Any]:
    """Everything per event, for --json (database text is kept as is: json.dumps escapes controls)."""
    key = "would_redrive" if result.dry_run else "redriven"
    done = []
    for event_id in result.done:
        entry: dict[str, Any] = {"id": event_id, "repair_status": result.statuses.get(event_id)}
        if event_id in result.raw_ids:
            entry["raw_events_id"] = result.raw_ids[event_id]
        entry["existing_row"] = event_id in result.existing
        entry.update(_where(result, event_id))
        done.append(entry)
    return {
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "selected": selected,
        key: done,
        "not_redriven": [
            {"id": i, "reason": r, "detail": result.details.get(i), "repair_status": result.statuses.get(i)}
            for i, r in result.skipped.items()
        ],
        "failed": [{"id": i, "reason": r, "detail": result.details.get(i)} for i, r in result.failed.items()],
        "refusal": refusal,
        "metrics_recorded": result.metrics_recorded,
        "duration_s": round(result.duration_s, 3),
        "summary": summary_line(result, selected),
    }


def summary_line(result: RedriveResult, selected: int) -> str:
    """The last line: counts, the skip reasons grouped, the time."""
    reasons = Counter(r.split(" until ", 1)[0] for r in result.skipped.values())
    grouped = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    line = f"{result.summary} of {selected} selected"
    if grouped:
        line += f" ({grouped})"
    line += f" in {result.duration_s:.1f} s"
    if not result.dry_run and selected and not result.metrics_recorded:
        line += "; the run could not be recorded in dlq_processing_metrics"
    return line


def report_lines(result: RedriveResult) -> list[str]:
    """Text report: a dry run lists every event; a real run lists what was not redriven and what failed."""
    lines = []
    if result.dry_run:
        for event_id in result.done:
            dest = result.destinations.get(event_id)
            if event_id in result.existing:
                where = f"already in raw_events as row {result.raw_ids.get(event_id, '?')}"
            elif dest is not None:
                where = (
                    f"new raw_events row: source={plain(dest.source, limit=120)} offset={plain(dest.source_offset)}"
                    f" inode={plain(dest.source_inode)} session={plain(dest.session_id)}"
                    f" {plain(dest.event_type, limit=60)} at {_stamp(dest.event_timestamp)}"
                )
            else:
                where = "raw_events"
            status = result.statuses.get(event_id, "?")
            lines.append(f"would redrive {event_id} ({status}) → {where}")
    word = "would not redrive" if result.dry_run else "not redriven"
    for event_id, reason in result.skipped.items():
        lines.append(f"{word} {event_id}: {plain(_reason(result, event_id, reason), limit=_LINE_LIMIT)}")
    for event_id, reason in result.failed.items():
        lines.append(f"failed {event_id}: {plain(_reason(result, event_id, reason), limit=_LINE_LIMIT)}")
    return lines


def _progress(stream: TextIO) -> Callable[[int, int], None] | None:
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        stream.write(f"\rredrive: {done:,}/{total:,} events ({100 * done // max(1, total)}%){end}")
        stream.flush()

    return show


def run_redrive(dsn: str, args: argparse.Namespace) -> int:
    dry_run = bool(args.redrive_dry_run)
    if is_sqlite(dsn):
        from dlq_tui.db.lite import Unavailable

        print(f"dlq-tui: {Unavailable('redrive')}", file=sys.stderr)
        return EXIT_PROBLEM
    engine = open_checked(dsn, read_only=bool(args.read_only))  # ConnectionFault: the CLI's one line, exit 2
    op = Operator((args.operator or "").strip() or default_operator())
    try:
        if args.ids:
            ids = list(dict.fromkeys(args.ids))[: args.limit]
        else:
            with engine.connect() as conn:
                ids = select_ids(conn, reason=args.reason, limit=args.limit)
        try:
            result = redrive(engine, op, ids, dry_run=dry_run, progress=_progress(sys.stderr))
            refusal, code = None, EXIT_PROBLEM if result.failed else EXIT_OK
        except RedriveRefused as exc:
            partial = exc.result if isinstance(exc.result, RedriveResult) else RedriveResult("redrive", dry_run=dry_run)
            result, refusal = partial, str(exc)
            code = EXIT_FAULT if exc.connection_lost else EXIT_PROBLEM
    except connection_errors() as exc:
        print(f"dlq-tui: {explain_connection_error(exc, dsn)}", file=sys.stderr)
        return EXIT_FAULT
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(document(result, len(ids), refusal), ensure_ascii=True, indent=2, default=str))
    else:
        for line in report_lines(result):
            print(line)
        print(summary_line(result, len(ids)))
    if refusal is not None:
        print(f"dlq-tui: {plain(refusal, limit=500)}", file=sys.stderr)
    return code
