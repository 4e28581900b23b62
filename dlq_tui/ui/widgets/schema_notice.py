"""What health and events show instead of data when the database is not at schema v7 (or is empty)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


def describe_status(status: Any) -> Text:
    """A plain-language explanation of the runner's SchemaStatus, plus the next step."""
    from dlq_tui.text import safe_text

    out = Text()
    if status is None:
        out.append("Reading the schema version…\n", style="italic")
        return out
    marker = getattr(status, "marker", None)
    catalog = getattr(status, "catalog_version", None)
    missing = list(getattr(status, "missing", []) or [])
    problems = list(getattr(status, "problems", []) or [])
    if marker is None and not catalog:
        out.append("This database has no dead-letter tables yet.\n", style="bold")
    else:
        out.append("This database is not at schema v7.\n", style="bold")
        out.append("schema_state marker: ")
        out.append(str(marker) if marker is not None else "none")
        out.append("    catalog looks like: ")
        out.append(f"v{catalog}" if catalog else "no dead-letter tables")
        out.append("\n")
    if missing:
        out.append(f"\nMissing ({len(missing)}): ")
        out.append_text(safe_text(", ".join(str(m) for m in missing[:12]) + (" …" if len(missing) > 12 else "")))
        out.append("\n")
    for problem in problems[:8]:
        out.append("• ")
        out.append_text(safe_text(str(problem)))
        out.append("\n")
    out.append("\nPress ")
    out.append("m", style="bold reverse")
    out.append(" to open the migration panel: it shows the steps, a dry run, and upgrades to v7.\n")
    out.append("From a shell: ")
    out.append("dlq-tui check", style="bold")
    out.append(" explains the state, ")
    out.append("dlq-tui --migrate", style="bold")
    out.append(" upgrades.")
    return out


class SchemaNotice(Static):
    DEFAULT_CSS = """
    SchemaNotice { border: round $warning; padding: 1 2; margin: 1 2; height: auto; }
    """

    def show_status(self, status: Any) -> None:
        self.update(describe_status(status))
