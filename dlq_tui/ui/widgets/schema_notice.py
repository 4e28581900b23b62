"""What health and events show instead of data: the database is not at schema v7, is empty, has drifted
(v7 objects dropped or altered), or the role may not read it. Always an explanation plus the next step."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from dlq_tui.ui.app import DlqApp
    from dlq_tui.ui.source import AccessProblem, SchemaStatus


def describe_access(problem: AccessProblem) -> Text:
    """The role may not SELECT some objects: name them and give the GRANT that fixes it."""
    from dlq_tui.text import safe_text

    out = Text()
    out.append("Your database role may not read the dead-letter tables.\n", style="bold")
    out.append("Role ")
    out.append_text(safe_text(problem.role, limit=80, style="bold"))
    out.append(" has no SELECT privilege on: ")
    out.append_text(safe_text(", ".join(problem.objects), limit=300))
    out.append("\n\nAsk the database owner or an administrator to run:\n  ")
    out.append_text(safe_text(problem.grant_sql(), limit=500, style="bold"))
    out.append("\nthen press ")
    out.append("r", style="bold reverse")
    out.append(" to check again. From a shell: ")
    out.append("dlq-tui check", style="bold")
    out.append(" explains the state.")
    return out


def _is_drift(marker: int | None, missing: list[str]) -> bool:
    """Said to be v7 (marker) but v7 objects are gone: someone dropped or altered them."""
    return bool(missing) and marker is not None and marker >= 7


def describe_status(status: SchemaStatus | None, access: AccessProblem | None = None) -> Text:
    """A plain-language explanation of the runner's SchemaStatus, plus the next step."""
    from dlq_tui.text import safe_text

    if access is not None:
        return describe_access(access)
    out = Text()
    if status is None:
        out.append("Reading the schema version…\n", style="italic")
        return out
    marker, catalog, missing, problems = status.marker, status.catalog_version, status.missing, status.problems
    if marker is None and not catalog:
        out.append("This database has no dead-letter tables yet.\n", style="bold")
    elif _is_drift(marker, missing):
        out.append("This database says it is at schema v7, but v7 objects are missing (schema drift).\n", style="bold")
        out.append(
            "They were dropped or altered afterwards, or an older migration half-applied; "
            "the screens cannot work without them.\n"
        )
    else:
        out.append("This database is not at schema v7.\n", style="bold")
        out.append("schema_state marker: ")
        out.append(str(marker) if marker is not None else "none")
        out.append("    catalog looks like: ")
        out.append(f"v{catalog}" if catalog else "no dead-letter tables")
        out.append("\n")
    if missing:
        out.append(f"\nMissing ({len(missing)}): ")
        out.append_text(safe_text(", ".join(missing[:12]) + (" …" if len(missing) > 12 else "")))
        out.append("\n")
    for problem in problems[:8]:
        out.append("• ")
        out.append_text(safe_text(problem))
        out.append("\n")
    out.append("\nPress ")
    out.append("m", style="bold reverse")
    if _is_drift(marker, missing):
        out.append(" to open the migration panel: its dry run shows whether it can re-create them (u repairs).\n")
    else:
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

    @property
    def dlq(self) -> DlqApp:
        return cast("DlqApp", self.app)

    def on_mount(self) -> None:
        # A recheck can change the status while schema_ready stays False (v6 -> no access): redraw then too.
        self.watch(self.app, "schema_generation", lambda _: self.show_status(self.dlq.schema_status))

    def show_status(self, status: SchemaStatus | None) -> None:
        self.update(describe_status(status, self.dlq.access_problem))
