"""The result of repairing one dead letter: what was done, what was checked, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["valid", "repaired", "ambiguous", "refused"]

VALID: Status = "valid"
REPAIRED: Status = "repaired"
AMBIGUOUS: Status = "ambiguous"
REFUSED: Status = "refused"


@dataclass(frozen=True, slots=True)
class Check:
    """One validation of the candidate event, e.g. name="session", ok=False, detail="'xyz' is not 8-12 hex digits"."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class RepairResult:
    """Verdict on one dead letter.

    status:
      valid     the text (or payload) already was a Cowrie event that passes every check; nothing was changed.
      repaired  mechanical repairs (listed in `steps`) gave an event that passes every check, and nothing kept in
                it is a guess.
      ambiguous an event that passes every check, but some of it is a guess (a value cut short and kept, text
                dropped, a lenient repair, several objects in one dead letter): a person should look first.
      refused   no trustworthy Cowrie event: `reason` says why. `event` is None.

    `event` is the candidate (None when refused, and None when the dead letter holds several objects: each is then
    in `parts`, repaired on its own). Steps and warnings may quote attacker text (key names, a dropped prefix):
    display them through dlq_tui.text like any other database text. Treat `event` as read-only.
    """

    status: Status
    event: dict[str, Any] | None
    original_text: str
    steps: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    warnings: tuple[str, ...] = ()
    reason: str | None = None
    parts: tuple[RepairResult, ...] = field(default=())

    @property
    def usable(self) -> bool:
        """True when the event may be redriven without a person deciding (valid or repaired)."""
        return self.status in (VALID, REPAIRED)

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)
