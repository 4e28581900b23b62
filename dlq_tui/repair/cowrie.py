"""What a Cowrie event must look like, and the raw_events values that come from the event itself."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .model import Check

# Every event id Cowrie's JSON output can carry (Cowrie keeps this catalogue itself and tests its emitters against
# it). An id outside it is either a typo, a plugin we do not know, or text that merely looks like an event.
EVENT_IDS: frozenset[str] = frozenset(
    {
        "cowrie.abuseipdb.ratelimited",
        "cowrie.abuseipdb.reportedip",
        "cowrie.abuseipdb.reportfail",
        "cowrie.abuseipdb.started",
        "cowrie.abuseipdb.wakeup",
        "cowrie.client.fingerprint",
        "cowrie.client.kex",
        "cowrie.client.malformed_packet",
        "cowrie.client.size",
        "cowrie.client.var",
        "cowrie.client.version",
        "cowrie.command.chpasswd",
        "cowrie.command.failed",
        "cowrie.command.input",
        "cowrie.command.success",
        "cowrie.direct-tcpip.data",
        "cowrie.direct-tcpip.ja4",
        "cowrie.direct-tcpip.ja4h",
        "cowrie.direct-tcpip.redirect",
        "cowrie.direct-tcpip.request",
        "cowrie.direct-tcpip.tunnel",
        "cowrie.tunnelproxy-tcpip.data",
        "cowrie.greynoise.result",
        "cowrie.log.closed",
        "cowrie.log.open",
        "cowrie.login.failed",
        "cowrie.login.success",
        "cowrie.proxy.backend_connect_error",
        "cowrie.proxy.backend_connected",
        "cowrie.proxy.backend_disconnected",
        "cowrie.proxy.client_disconnect",
        "cowrie.proxy.ssh",
        "cowrie.reversedns.connect",
        "cowrie.reversedns.forward",
        "cowrie.session.closed",
        "cowrie.session.connect",
        "cowrie.session.file_download",
        "cowrie.session.file_download.failed",
        "cowrie.session.file_upload",
        "cowrie.session.input",
        "cowrie.session.params",
        "cowrie.telnet.error",
        "cowrie.telnet.exploit_attempt",
        "cowrie.telnet.exploit_success",
        "cowrie.telnet.option",
        "cowrie.urlhaus.submitted",
        "cowrie.virustotal.scanfile",
        "cowrie.virustotal.scanurl",
    }
)

# The fields the checks look at, in the order they are reported.
CHECKED_FIELDS: tuple[str, ...] = ("eventid", "timestamp", "session", "src_ip")

_SESSION_RE = re.compile(r"[0-9a-fA-F]{8,12}")
_QUOTE_LIMIT = 40


def quote(value: object) -> str:
    """A short, quoted rendering of a value for a check detail or warning (repr escapes controls)."""
    text = repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


def parse_timestamp(value: object) -> datetime | None:
    """The event time as an aware UTC datetime, or None when it is not ISO-8601 text with a time zone."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed.astimezone(UTC)


def check_event(event: Mapping[str, Any], truncated: frozenset[str] = frozenset()) -> tuple[Check, ...]:
    """The Cowrie checks, each reported. `truncated`: fields whose value the text cut short (they fail: a cut
    value can still look right, "10.0.0.12" cut to "10.0.0.1" is an IP address, just the wrong one)."""
    checks: list[Check] = []

    def cut(name: str) -> Check | None:
        if name in truncated and name in event:
            return Check(name, False, f"{quote(event[name])} was cut short by the end of the text")
        return None

    eventid = event.get("eventid")
    if (c := cut("eventid")) is not None:
        checks.append(c)
    elif "eventid" not in event:
        checks.append(Check("eventid", False, "missing"))
    elif not isinstance(eventid, str) or eventid not in EVENT_IDS:
        checks.append(Check("eventid", False, f"{quote(eventid)} is not a Cowrie event id"))
    else:
        checks.append(Check("eventid", True, eventid))

    stamp = event.get("timestamp")
    if (c := cut("timestamp")) is not None:
        checks.append(c)
    elif "timestamp" not in event:
        checks.append(Check("timestamp", False, "missing"))
    elif (parsed := parse_timestamp(stamp)) is None:
        checks.append(Check("timestamp", False, f"{quote(stamp)} is not an ISO-8601 time with a time zone"))
    else:
        checks.append(Check("timestamp", True, parsed.isoformat().replace("+00:00", "Z")))

    session = event.get("session")
    if (c := cut("session")) is not None:
        checks.append(c)
    elif "session" not in event:
        checks.append(Check("session", False, "missing"))
    elif not isinstance(session, str) or _SESSION_RE.fullmatch(session) is None:
        checks.append(Check("session", False, f"{quote(session)} is not 8-12 hex digits"))
    else:
        checks.append(Check("session", True, session))

    src_ip = event.get("src_ip")
    if (c := cut("src_ip")) is not None:
        checks.append(c)
    elif "src_ip" not in event:
        checks.append(Check("src_ip", True, "absent (optional)"))
    elif not isinstance(src_ip, str) or not _is_ip(src_ip):
        checks.append(Check("src_ip", False, f"{quote(src_ip)} is not an IP address"))
    else:
        checks.append(Check("src_ip", True, src_ip))
    return tuple(checks)


def _is_ip(value: str) -> bool:
    if len(value) > 64:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def payload_hash(event: Mapping[str, Any]) -> str:
    """The pipeline's payload_hash: BLAKE2b-256 hex over the event with sorted keys and no spaces.

    ensure_ascii stays on (json's default, as the pipeline has it): it also turns lone surrogates into escapes, so
    the text always encodes.
    """
    text = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=32).hexdigest()


def raw_event_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The raw_events column values that come from the event itself (call it on a checked event).

    event_timestamp is an aware UTC datetime for databases where the column is timestamptz; event_timestamp_text is
    the same instant as ISO-8601 text with a Z suffix, for databases where it is still varchar(64). Columns that
    come from the dead letter row or the database (source, offsets, ingest_id, risk_score, ...) are not here.
    """
    session = event.get("session")
    eventid = event.get("eventid")
    stamp = parse_timestamp(event.get("timestamp"))
    return {
        "payload": dict(event),
        "payload_hash": payload_hash(event),
        "session_id": session if isinstance(session, str) else None,
        "event_type": eventid if isinstance(eventid, str) else None,
        "event_timestamp": stamp,
        "event_timestamp_text": None if stamp is None else stamp.isoformat().replace("+00:00", "Z"),
    }
