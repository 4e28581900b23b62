"""The search language: parsed into a SearchQuery, and the field terms matched against a payload (pure Python).

    wget                       the payload text contains "wget" (case-insensitive substring)
    "chmod +x"                 a phrase (quotes; \\" and \\\\ inside them)
    src_ip:198.51.100.7        a key src_ip, at any depth of the payload object or of the event inside
                               malformed_content (when it parses or repairs), whose value contains that text
    nested.eventid:login       a key path: key eventid inside a key nested, at any depth
    session:                   the key is present, whatever its value
    source:/var/log/x.json     the event's source file, exactly; checksum:HEX the stored payload checksum (duplicates)
    reason:json_parsing_failed the existing filters: reason (exact), class:malicious|corrupted|format_error|none,
    priority<=2  priority<3    at most that priority, locked / free (held or not), resolved (resolved events too)

Terms combine with AND. A word holding a colon is a field term unless the colon starts "//" (a URL is text);
quote a word to search it as text ("locked", "a:b"). No SQL is built here: db/search.py binds every value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dlq_tui.db.models import EventFilter
from dlq_tui.db.schema import CLASSIFICATIONS
from dlq_tui.db.triage import unstorable
from dlq_tui.text import json_nesting_exceeds

# Long enough for any indicator an operator pastes (a URL, a hash, a command line), short enough that one query
# can never make a pattern the server spends seconds compiling.
QUERY_MAX_CHARS = 20_000
# A payload nested deeper than this is not walked for field terms (json.loads recurses): free text still finds it.
FIELD_MAX_DEPTH = 200
SNIPPET_CHARS = 80
FLAGS = ("locked", "free", "resolved")
_CLASS_NONE = ("none", "unclassified")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_PRIORITY_RE = re.compile(r"priority(<=|<)(.*)", re.IGNORECASE | re.DOTALL)
_CONTENT_KEY = "malformed_content"
_EXAMPLES = {"source": "/var/log/cowrie/cowrie.json", "checksum": "3f2a…"}
_BARE_VALUE = re.compile(r'[^\s"\\]+')


SAVED_PREFIX = "@"  # `@name`: a saved search of the config file's [searches], as the whole query
SAVED_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,39}")


def expand_saved(text: str, saved: Mapping[str, str]) -> str:
    """The query `text` stands for: a saved search's own query for `@name`, else `text` itself."""
    stripped = text.strip()
    if not stripped.startswith(SAVED_PREFIX):
        return text
    name = stripped[len(SAVED_PREFIX) :]
    if name in saved:
        return saved[name]
    from dlq_tui.text import plain

    known = ", ".join(SAVED_PREFIX + n for n in sorted(saved)) or "none: add them under [searches] in the config file"
    raise QueryError(f"no saved search {plain(stripped, limit=45)!r} (saved: {known})")


class QueryError(ValueError):
    """A query that cannot run; str() is the one line the operator sees."""


@dataclass(frozen=True)
class FieldTerm:
    path: tuple[str, ...]  # ("src_ip",) or ("nested", "eventid")
    value: str  # substring of the value's text, case-insensitive; "" = the key is present

    @property
    def key(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class SearchQuery:
    text: str  # the query as typed (shown in the header, in exports)
    terms: tuple[str, ...] = ()
    fields: tuple[FieldTerm, ...] = ()
    filter: EventFilter = field(default_factory=EventFilter)
    source: str | None = None  # source:FILE, the event's source column, exactly
    checksum: str | None = None  # checksum:HEX, the stored payload checksum, exactly (duplicates)

    @property
    def searches_payload(self) -> bool:
        return bool(self.terms or self.fields)


def parse_query(source: str, *, base: EventFilter | None = None) -> SearchQuery:
    """Parse a query; QueryError says what is wrong in one line. base: the view it runs in (its order)."""
    if len(source) > QUERY_MAX_CHARS:
        raise QueryError(f"a query is limited to {QUERY_MAX_CHARS:,} characters (this one has {len(source):,})")
    if (problem := unstorable(source)) is not None:
        raise QueryError(f"a query cannot hold {problem}: no event can contain it")
    flt = EventFilter(order=base.order) if base is not None else EventFilter()
    terms: list[str] = []
    fields: list[FieldTerm] = []
    seen: set[str] = set()
    columns: dict[str, str] = {}
    for word, quoted in _words(source):
        if quoted:
            if word:
                terms.append(word)
            continue
        lowered = word.lower()
        if lowered in FLAGS:
            if lowered == "resolved":
                flt = replace(flt, include_resolved=True)
            else:
                _once(seen, "locked/free", word)
                flt = replace(flt, lock="locked" if lowered == "locked" else "free")
            continue
        if (found := _PRIORITY_RE.fullmatch(word)) is not None:
            _once(seen, "priority", word)
            flt = replace(flt, max_priority=_priority(found.group(1), found.group(2)))
            continue
        if lowered.startswith("priority") and lowered[8:9] in (":", "=", ">"):
            raise QueryError("priority takes <= or <: for example priority<=2")
        key, colon, value = word.partition(":")
        if not colon or value.startswith("//"):
            terms.append(word)
            continue
        value = _unquote(value)
        lowered_key = key.lower()
        if lowered_key == "reason":
            _once(seen, "reason", word)
            if not value:
                raise QueryError("reason: needs a reason code, for example reason:json_parsing_failed")
            flt = replace(flt, reason=value)
        elif lowered_key in ("source", "checksum"):
            _once(seen, lowered_key, word)
            if not value:
                raise QueryError(f"{lowered_key}: needs a value, for example {lowered_key}:{_EXAMPLES[lowered_key]}")
            columns[lowered_key] = value
        elif lowered_key in ("class", "classification"):
            _once(seen, "class", word)
            flt = replace(flt, classification=_classification(value))
        elif _KEY_RE.fullmatch(key):
            fields.append(FieldTerm(tuple(key.split(".")), value))
        else:
            shown = key if len(key) <= 40 else key[:40] + "…"
            raise QueryError(
                f"{shown!r} is not a field name (letters, digits, _ and -, dots between keys); "
                'quote it to search it as text: "' + (word if len(word) <= 40 else word[:40] + "…") + '"'
            )
    if not terms and not fields and not columns and flt == (EventFilter(order=flt.order)):
        raise QueryError("type something to search for: text, key:value or a filter (see ? for the language)")
    return SearchQuery(
        text=source.strip(),
        terms=tuple(terms),
        fields=tuple(fields),
        filter=flt,
        source=columns.get("source"),
        checksum=columns.get("checksum"),
    )


def _once(seen: set[str], what: str, word: str) -> None:
    if what in seen:
        raise QueryError(f"{what} is given twice (at {word[:40]!r}): one of each")
    seen.add(what)


def _priority(op: str, raw: str) -> int:
    digits = raw.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 2):
        raise QueryError("priority takes a whole number from 1 to 10, for example priority<=2")
    limit = int(digits) - (1 if op == "<" else 0)
    if not 1 <= limit <= 10:
        raise QueryError("priority goes from 1 (critical) to 10: priority<=N with N from 1 to 10, < from 2 to 11")
    return limit


def _classification(value: str) -> str:
    lowered = value.lower()
    if lowered in _CLASS_NONE:
        return ""
    if lowered in CLASSIFICATIONS:
        return lowered
    choices = ", ".join((*CLASSIFICATIONS, "none"))
    shown = value if len(value) <= 40 else value[:40] + "…"
    raise QueryError(f"class:{shown} is not a classification: one of {choices}")


def _words(source: str) -> Iterator[tuple[str, bool]]:
    """Whitespace-separated words; a word that starts with a quote is a phrase up to the closing quote. A quote
    after key: keeps the value together (key:"a b"). Yields (word, quoted); a quoted word is returned unquoted."""
    i, n = 0, len(source)
    while i < n:
        if source[i].isspace():
            i += 1
            continue
        start = i
        quoted = source[i] == '"'
        if quoted:
            i = _closing_quote(source, i)
            yield _unescape(source[start + 1 : i]), True
            i += 1
            continue
        while i < n and not source[i].isspace():
            if source[i] == '"':
                i = _closing_quote(source, i)
            i += 1
        yield source[start:i], False


def _closing_quote(source: str, opening: int) -> int:
    i = opening + 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source[i] == '"':
            return i
        i += 1
    raise QueryError(f'the quote opened at character {opening + 1} is not closed (add a " at the end)')


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _unescape(value[1:-1])
    if '"' in value:
        raise QueryError('a quote belongs around the whole value: key:"a value"')
    return value


# --- matching field terms (the server narrows the rows first, see db/search.py) ------------------------------


def field_snippet(query: SearchQuery, payload_text: str) -> str | None:
    """None when some field term does not match the payload, else "key: value" of the first term's match."""
    documents = list(_documents(payload_text))
    first: str | None = None
    for term in query.fields:
        found = next((hit for doc in documents if (hit := _find(doc, term)) is not None), None)
        if found is None:
            return None
        first = first if first is not None else f"{term.key}: {found}"
    return first if first is not None else ""


def _documents(payload_text: str) -> Iterator[Any]:
    """The payload object, and the event inside malformed_content when that text parses or repairs."""
    if json_nesting_exceeds(payload_text, FIELD_MAX_DEPTH):
        return
    try:
        payload = json.loads(payload_text)
    except (ValueError, RecursionError):
        return
    yield payload
    content = payload.get(_CONTENT_KEY) if isinstance(payload, dict) else None
    if not isinstance(content, str) or json_nesting_exceeds(content, FIELD_MAX_DEPTH):
        return
    try:
        yield json.loads(content)
        return
    except (ValueError, RecursionError):
        pass
    from dlq_tui.repair import repair_text

    result = repair_text(content)
    if result.event is not None:
        yield result.event
    for part in result.parts:
        if part.event is not None:
            yield part.event


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _find(document: Any, term: FieldTerm) -> str | None:
    """The text of the first value at term.path (at any depth) that contains term.value; walked without recursion."""
    wanted = term.value.lower()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            value: Any = node
            for key in term.path:
                if not isinstance(value, dict) or key not in value:
                    break
                value = value[key]
            else:
                shown = value_text(value)
                if wanted in shown.lower():
                    return shown
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return None


def text_snippet(payload_text: str, term: str, width: int = SNIPPET_CHARS) -> str:
    """The part of the payload around the first occurrence of term (case-insensitive), "…" where it is cut."""
    at = payload_text.lower().find(term.lower())
    if at < 0:
        return payload_text[:width] + ("…" if len(payload_text) > width else "")
    start = max(0, at - (width - min(len(term), width)) // 2)
    end = start + max(width, min(len(term), width))
    return ("…" if start else "") + payload_text[start:end] + ("…" if end < len(payload_text) else "")


def quote_value(value: str) -> str:
    """value written so that parse_query reads it back unchanged (quoted when it holds spaces or quotes)."""
    if _BARE_VALUE.fullmatch(value) and not value.startswith("//"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_value(payload_text: str, key: str) -> str | None:
    """The text of the first `key` at any depth of the payload (or of the event in malformed_content), or None."""
    term = FieldTerm((key,), "")
    return next((hit for doc in _documents(payload_text) if (hit := _find(doc, term)) is not None), None)


RELATED = {
    "session": "same session",
    "source": "same source file",
    "src_ip": "same source IP",
    "checksum": "same payload checksum (duplicates)",
}


def related_query(kind: str, *, payload_text: str, source: str | None, checksum: str | None) -> str | None:
    """The search that finds the events related to one event (None: it has no such value), e.g. session:abcd1234."""
    if kind in ("session", "src_ip"):
        value = field_value(payload_text, kind)
    else:
        value = source if kind == "source" else checksum
    if not value or unstorable(value) is not None or len(value) > QUERY_MAX_CHARS // 2:
        return None
    return f"{kind}:{quote_value(value)}"


__all__ = [
    "QUERY_MAX_CHARS",
    "RELATED",
    "FieldTerm",
    "QueryError",
    "SearchQuery",
    "field_snippet",
    "field_value",
    "parse_query",
    "quote_value",
    "related_query",
    "text_snippet",
]
