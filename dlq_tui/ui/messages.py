"""Typed messages that thread workers post back to the UI thread (post_message is thread-safe)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from dlq_tui.ui.source import AccessProblem, SchemaStatus


class SchemaChecked(Message):
    """The runner's check(): marker, catalog version, missing objects, whether v7 is current.

    `access` is an AccessProblem when the role may not read the tables (then `status` is None).
    """

    def __init__(self, status: SchemaStatus | None, access: AccessProblem | None = None) -> None:
        super().__init__()
        self.status = status
        self.access = access
