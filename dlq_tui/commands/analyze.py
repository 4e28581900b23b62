"""`dlq-tui analyze`: the failure-pattern analysis the old CLI printed (exit 0, or 2 when unreadable)."""

from __future__ import annotations

import json
import sys
from typing import Any

from dlq_tui.commands.health import ReadFault, read_database, trends_document, trends_report
from dlq_tui.db.deadline import Deadline
from dlq_tui.db.models import Analysis, Trends
from dlq_tui.db.schema import priority_label

EXIT_FAULT = 2


def analysis_document(analysis: Analysis, pending: int, trends: Trends | None = None) -> dict[str, Any]:
    return {
        "pending_events": pending,
        "top_reasons": [
            {"reason": r.reason, "count": r.count, "avg_retries": round(r.avg_retries, 2)} for r in analysis.top_reasons
        ],
        "pending_by_priority": [
            {"priority": p, "label": priority_label(p), "count": n} for p, n in analysis.pending_by_priority
        ],
        "pending_by_classification": [{"classification": c, "count": n} for c, n in analysis.pending_by_classification],
        "trends": None if trends is None else trends_document(trends),
    }


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:5.1f}%" if total else "     -"


def analysis_report(analysis: Analysis, pending: int, trends: Trends | None = None) -> str:
    """Text report; reasons and classifications are database text and go through text.plain()."""
    from dlq_tui.text import plain

    lines = [f"Failure patterns among {pending:,} pending events", "", "Top failure reasons"]
    if not analysis.top_reasons:
        lines.append("  (no pending events)")
    else:
        lines.append(f"  {'count':>9} {'share':>6} {'avg retries':>12}  reason")
    for r in analysis.top_reasons:
        # The reason goes last: database text of any length cannot push the numbers out of their columns.
        lines.append(f"  {r.count:>9,} {_share(r.count, pending)} {r.avg_retries:>12.2f}  {plain(r.reason, limit=80)}")
    lines += ["", "Pending by priority"]
    for p, n in analysis.pending_by_priority:
        lines.append(f"  {n:>9,} {_share(n, pending)}  {p:>2} {priority_label(p)}")
    lines += ["", "Pending by classification"]
    for c, n in analysis.pending_by_classification:
        name = "(unclassified)" if c is None else plain(c, limit=80)
        lines.append(f"  {n:>9,} {_share(n, pending)}  {name}")
    if trends is not None:
        lines += ["", "Events arriving and resolved", *trends_report(trends)]
    return "\n".join(lines)


def run_analyze(dsn: str, *, as_json: bool = False, top: int = 10, deadline: Deadline | None = None) -> int:
    from dlq_tui.db.queries import fetch_analysis, fetch_trends

    def read(conn: Any) -> tuple[Analysis, int, Trends]:
        analysis = fetch_analysis(conn, top)
        pending = sum(n for _, n in analysis.pending_by_priority)
        return analysis, pending, fetch_trends(conn)

    try:
        analysis, pending, trends = read_database(dsn, read, deadline)
    except ReadFault as exc:
        print(f"dlq-tui: {exc}", file=sys.stderr)
        return EXIT_FAULT
    if as_json:
        print(json.dumps(analysis_document(analysis, pending, trends), ensure_ascii=True, indent=2))
    else:
        print(analysis_report(analysis, pending, trends))
    return 0
