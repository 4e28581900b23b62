"""Text fields of the dialogs: what each may hold, a limit the user sees before reaching it, one line saying why not.

Two layers, both Textual's own: `restrict` and `max_length` keep a character or a paste out of the field at
entry (FieldInput says why instead of only ringing the bell), and validators check the whole value on every
change and on enter (a value can also arrive pre-filled). The dialogs show the first failure in a FieldError
line under the fields and refuse to close on enter while there is one.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual.message import Message
from textual.validation import Length, ValidationResult, Validator
from textual.widgets import Input, Static

from dlq_tui.ui.source import unstorable

# What no field takes. The Input draws its value without escaping, so a pasted ESC or C1 control would act on
# the terminal, and a lone surrogate cannot be encoded for it (nor for the database, like NUL).
_REFUSED_CLASS = "\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff"
TYPEABLE = f"[^{_REFUSED_CLASS}]*"
_CONTROL_RE = re.compile("[\\x00-\\x1f\\x7f-\\x9f]")

# dead_letter_events.id is a serial (PostgreSQL integer): no event has a larger id, and the queries bind it as one.
EVENT_ID_MAX = 2**31 - 1
EVENT_ID_DIGITS = len(str(EVENT_ID_MAX))


def refused_character(value: str) -> str | None:
    """The first character no field takes, described ("a NUL character (U+0000, character 3)"), or None."""
    if (problem := unstorable(value)) is not None:
        return problem
    found = _CONTROL_RE.search(value)
    if found is None:
        return None
    return f"a control character (U+{ord(found.group()):04X}, character {found.start() + 1})"


class Typeable(Validator):
    """No character a field refuses at entry (the value may have been set without typing)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def validate(self, value: str) -> ValidationResult:
        problem = refused_character(value)
        return self.success() if problem is None else self.failure(f"{self.what} cannot hold {problem}", value)


def at_most(what: str, limit: int) -> Length:
    return Length(maximum=limit, failure_description=f"{what} is limited to {limit:,} characters")


class EventId(Validator):
    """An event id: a whole number from 1 to EVENT_ID_MAX, digits 0-9 only (the length is checked before int():
    Python refuses to convert more than 4,300 digits)."""

    def validate(self, value: str) -> ValidationResult:
        digits = value.strip()
        if not digits:
            return self.failure("type an event id (esc cancels)", value)
        if not re.fullmatch("[0-9]+", digits):
            return self.failure("an event id is a whole number: digits 0-9 only", value)
        if len(digits) > EVENT_ID_DIGITS or not 1 <= int(digits) <= EVENT_ID_MAX:
            return self.failure(f"no event has that id: ids go from 1 to {EVENT_ID_MAX}", value)
        return self.success()


AGAIN = "; enter again to go on without it"


def first_failure(result: ValidationResult | None) -> str | None:
    if result is None or result.is_valid:
        return None
    return next(iter(result.failure_descriptions), "not accepted")


class FieldInput(Input):
    """An Input that names the reason when it refuses a keystroke or a paste (it would only ring the bell)."""

    class Refused(Message):
        def __init__(self, field: FieldInput, reason: str) -> None:
            super().__init__()
            self.field = field
            self.reason = reason

        @property
        def control(self) -> FieldInput:
            return self.field

    def __init__(self, value: str = "", *, what: str, restrict_hint: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("restrict", TYPEABLE)
        kwargs.setdefault("validate_on", ("changed", "submitted"))
        super().__init__(value, **kwargs)  # type: ignore[arg-type]
        self.what = what
        self.restrict_hint = restrict_hint
        self._attempt = ("", 0)
        self._refusal: tuple[str, str] | None = None  # (why, the value then) of the last refused entry

    def take_refusal(self) -> str | None:
        """Why the last entry was refused, if the value has not changed since; once. Enter right after a refused
        paste must not go on as if the paste had worked, but a second enter may (the field holds what it shows)."""
        refusal, self._refusal = self._refusal, None
        return refusal[0] if refusal is not None and refusal[1] == self.value else None

    def replace(self, text: str, start: int, end: int) -> None:
        start, end = sorted((max(0, start), min(len(self.value), end)))
        self._attempt = (text, len(self.value) - (end - start) + len(text))  # for restricted() to explain
        super().replace(text, start, end)

    def restricted(self) -> None:
        super().restricted()
        text, new_length = self._attempt
        if self.max_length and new_length > self.max_length:
            reason = f"{self.what} is limited to {self.max_length:,} characters; that would make {new_length:,}"
        elif (problem := refused_character(text)) is not None:
            reason = f"{self.what} cannot hold {problem}; nothing was added"
        else:
            reason = self.restrict_hint or f"{self.what} cannot hold that; nothing was added"
        self._refusal = (reason, self.value)
        self.post_message(self.Refused(self, reason))


class FieldError(Static):
    """The one line under a dialog's fields saying what was refused (empty while all is well)."""

    DEFAULT_CSS: ClassVar[str] = "FieldError { color: $error; height: auto; }"

    def say(self, reason: str | None) -> None:
        self.update(Text(reason or ""))
        self.display = bool(reason)

    def on_mount(self) -> None:
        self.display = False


__all__ = [
    "AGAIN",
    "EVENT_ID_DIGITS",
    "EVENT_ID_MAX",
    "EventId",
    "FieldError",
    "FieldInput",
    "Typeable",
    "at_most",
    "first_failure",
    "refused_character",
]
