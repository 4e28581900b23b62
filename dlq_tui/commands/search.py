"""`dlq-tui search QUERY`: the events whose payload matches, for scripts (exit 0 matches, 1 none, 2 bad query/fault).

Lines are "id  priority  reason  source  snippet" through text.plain (attacker text cannot drive the terminal), or
one JSON object a line with --json. The query language is the app's `/` (dlq_tui.search.query).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from dlq_tui.db.deadline import Deadline

EXIT_MATCHES = 0
EXIT_NONE = 1
EXIT_FAULT = 2
DEFAULT_LIMIT = 100
LIMIT_MAX = 1_000_000


def _limit(raw: str) -> int:
    digits = raw.strip()
    if digits.isascii() and digits.isdigit() and len(digits) <= 7 and 1 <= int(digits) <= LIMIT_MAX:
        return int(digits)
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {LIMIT_MAX:,}, got {shown!r}")


def add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", metavar="QUERY", help='what to find, e.g. wget, src_ip:1.2.3.4, "chmod +x"')
    parser.add_argument(
        "--limit", type=_limit, default=DEFAULT_LIMIT, metavar="N", help=f"at most N matches (default {DEFAULT_LIMIT})"
    )
    parser.add_argument("--json", action="store_true", help="JSON Lines: one object per match")
    parser.add_argument("--include-resolved", action="store_true", help="resolved events too")


def match_document(match: Any) -> dict[str, Any]:
    row = match.row
    return {
        "id": row.id,
        "priority": row.priority,
        "reason": row.reason,
        "source": row.source,
        "classification": row.classification,
        "resolved": row.resolved,
        "created_at": row.created_at.isoformat(),
        "snippet": match.snippet,
    }


def match_line(match: Any) -> str:
    from dlq_tui.text import plain

    row = match.row
    return (
        f"{row.id:>10}  {row.priority:>2}  {plain(row.reason, limit=40)}  {plain(row.source, limit=60)}  "
        f"{plain(match.snippet, limit=120)}"
    )


def query_problem(args: argparse.Namespace) -> str | None:
    """The one line a bad query gets (no database is needed to know), else None."""
    from dlq_tui.search.query import SAVED_PREFIX, QueryError, parse_query
    from dlq_tui.text import plain

    if args.query.strip().startswith(SAVED_PREFIX):
        return None  # a saved search: expanded (and judged) once the config file is read
    try:
        parse_query(args.query)
    except QueryError as exc:
        return plain(str(exc), limit=300)
    return None


def expand_query(args: argparse.Namespace, saved: Mapping[str, str]) -> str | None:
    """Turn `@name` into its saved query in args.query; the one line of a fault, else None."""
    from dlq_tui.search.query import QueryError, expand_saved

    try:
        args.query = expand_saved(args.query, saved)
    except QueryError as exc:
        return str(exc)
    return query_problem(args)


def run_search(dsn: str, args: argparse.Namespace, *, deadline: Deadline | None = None) -> int:
    from dataclasses import replace

    from dlq_tui.commands.health import ReadFault, read_database
    from dlq_tui.search.query import QueryError, parse_query
    from dlq_tui.text import plain

    try:
        query = parse_query(args.query)
    except QueryError as exc:
        print(f"dlq-tui: {plain(str(exc), limit=300)}", file=sys.stderr)
        return EXIT_FAULT
    if args.include_resolved:
        query = replace(query, filter=replace(query.filter, include_resolved=True))

    def read(conn: Any) -> Any:
        from dlq_tui.db.search import scan

        return scan(conn, query, limit=args.limit)

    try:
        page = read_database(dsn, read, deadline)
    except ReadFault as exc:
        print(f"dlq-tui: {exc}", file=sys.stderr)
        return EXIT_FAULT
    for match in page.matches:
        # ensure_ascii: a payload's controls and bidi characters stay escapes in the output too.
        print(json.dumps(match_document(match), ensure_ascii=True) if args.json else match_line(match))
    if not args.json:
        more = " (more follow: raise --limit)" if page.next_cursor is not None else ""
        print(f"{len(page.matches)} match{'es' if len(page.matches) != 1 else ''}{more}", file=sys.stderr)
    return EXIT_MATCHES if page.matches else EXIT_NONE
