"""Repair of dead-letter payloads into Cowrie events: pure functions (no database, no UI).

    result = repair_payload(payload)      # what the db layer reads from dead_letter_events.payload
    result.status                         # "valid" | "repaired" | "ambiguous" | "refused"
    result.event, result.steps, result.checks, result.warnings, result.reason
    raw_event_fields(result.event)        # the raw_events values that come from the event itself

A repair can take tens of milliseconds on hostile input: run it in a worker thread.
"""

from __future__ import annotations

from .cowrie import EVENT_IDS, check_event, parse_timestamp, payload_hash, raw_event_fields
from .engine import MAX_DEPTH, MAX_TEXT_BYTES, repair_fragments, repair_payload, repair_text
from .model import AMBIGUOUS, REFUSED, REPAIRED, VALID, Check, RepairResult, Status

__all__ = [
    "AMBIGUOUS",
    "EVENT_IDS",
    "MAX_DEPTH",
    "MAX_TEXT_BYTES",
    "REFUSED",
    "REPAIRED",
    "VALID",
    "Check",
    "RepairResult",
    "Status",
    "check_event",
    "parse_timestamp",
    "payload_hash",
    "raw_event_fields",
    "repair_fragments",
    "repair_payload",
    "repair_text",
]
