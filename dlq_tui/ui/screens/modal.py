"""The base of every dlq-tui dialog: a modal screen that is dismissed at most once.

Keys typed faster than a dialog closes (`g 1 enter g 2 enter` in a fast terminal) can reach it after its first
dismiss: Textual's dismiss pops the *top* screen, so a second one would run the callback twice and pop the
screen beneath (or crash when that is the last one). Found by the pty end-to-end test.
"""

from __future__ import annotations

from typing import TypeVar

from textual.await_complete import AwaitComplete
from textual.screen import ModalScreen

ResultType = TypeVar("ResultType")


class DlqModal(ModalScreen[ResultType]):
    _dismissed: bool = False

    def dismiss(self, result: ResultType | None = None) -> AwaitComplete:
        if self._dismissed or not self.is_current:
            return AwaitComplete()  # already on its way out: nothing more to do
        self._dismissed = True
        return super().dismiss(result)
