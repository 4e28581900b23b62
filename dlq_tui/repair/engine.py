"""repair_payload / repair_text / repair_fragments: a dead letter's content -> a RepairResult.

Order of attempts, from most to least trustworthy:
1. the text is JSON already (json.loads): nothing to repair, only checks;
2. our own token repairs (lexer.repair_tokens), each step named;
3. json_repair in strict mode, then in lenient mode; a lenient-only result is at best ambiguous, and a result whose
   keys were not double-quoted in the text is refused (json_repair turns `{eventid: cowrie.login.success, ...}`
   into a perfect event, and no JSON encoder writes that).
Whatever comes out is checked as a Cowrie event; a field is never invented (a value json_repair made up as "" is
dropped, and the pipeline's own defaults such as "unknown" are never written).

Inputs are capped (MAX_TEXT_BYTES) and brackets deeper than MAX_DEPTH are refused before any parser runs, because
json_repair has no timeout (64 KB of "{" takes it about 7 s) and recursion in json/json_repair ends in
RecursionError. Still, a repair can take tens of milliseconds: call these from a worker thread, not the UI thread.
Everything here is pure: same input, same result; no database, no UI.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, overload

import json_repair

from . import lexer
from .cowrie import check_event, quote
from .model import AMBIGUOUS, REFUSED, REPAIRED, VALID, Check, RepairResult

MAX_TEXT_BYTES = 64 * 1024
MAX_DEPTH = 32  # Cowrie events nest two levels (kex lists); anything deeper is not one
MAX_OBJECTS = 100  # the loader gives up accumulating after 100 lines, so a real dead letter holds fewer objects
_REQUIRED_KEYS = ("eventid", "timestamp", "session")
_CONTENT_KEYS = ("malformed_content", "_malformed_content")  # the second: the loader's in-flight dead letter shape

_STRAY_RE = re.compile(r"[ \t\r\n\x00-\x1f\x7f-\x9f\u00a0\u200b-\u200f\u2028\u2029\ufeff\ufffd\ud800-\udfff]+")
_LOG_PREFIX_RE = re.compile(
    r"""
    (?: \d{4}-\d{2}-\d{2}[T\ ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?   # ISO time
      | [A-Z][a-z]{2}\ {1,2}\d{1,2}\ \d{2}:\d{2}:\d{2}                                 # syslog time
    )
    (?:\ +[\w.\-/]+(?:\[\d+\])?:?){0,3}      # host, program[pid]:
    (?:\ +\[[\w.\-/ ,]{1,64}\])?             # [component]
    [ :\-]*
    """,
    re.VERBOSE,
)
_UNQUOTED = "keys without double quotes (e.g. {key}): no JSON encoder writes that; refusing to guess"
_FRAGMENT_RE = re.compile(r'"[^"\n]{1,64}"[ \t]*:')
_KIND = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _a(kind: str) -> str:
    if kind == "null":
        return kind
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return _KIND.get(type(value), type(value).__name__)


def _refused(reason: str, text: str, **more: Any) -> RepairResult:
    return RepairResult(REFUSED, None, text, reason=reason, **more)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _too_big(text: str) -> str | None:
    if len(text) > MAX_TEXT_BYTES or (size := _utf8_len(text)) > MAX_TEXT_BYTES:
        size = len(text) if len(text) > MAX_TEXT_BYTES else _utf8_len(text)
        more = "at least " if len(text) > MAX_TEXT_BYTES else ""
        return f"{more}{size} bytes: larger than the {MAX_TEXT_BYTES // 1024} KB a repair looks at"
    return None


# --- entry points -------------------------------------------------------------------------------------------------


def repair_payload(payload: object) -> RepairResult:
    """Verdict on one dead letter's payload, as the db layer reads it.

    A dict with malformed_content (parse failures) is repaired from that text; any other dict is taken as the event
    itself (validation / quarantined rows hold the parsed event) and only checked; a str is repaired as raw text;
    anything else is refused.
    """
    return _repair_payload(payload, unwrap=True)


def repair_text(text: str) -> RepairResult:
    """Verdict on raw text (a malformed_content): repaired into a Cowrie event, or refused with the reason."""
    return _repair_text(text, unwrap=True)


def repair_fragments(payloads: Sequence[object]) -> RepairResult:
    """Join the texts of several dead letters (in the given order, e.g. consecutive offsets of one source) and
    repair the result: the loader splits a pretty-printed event over several dead letters, none of which is an
    event on its own. Each payload is a dict with malformed_content or a str."""
    texts: list[str] = []
    for number, payload in enumerate(payloads, 1):
        text = _content_text(payload)
        if text is None:
            return _refused(f"fragment {number} has no text to join ({_a(_kind(payload))})", "")
        texts.append(text)
    if not texts:
        return _refused("no fragments", "")
    joined = "\n".join(texts)
    result = _repair_text(joined, unwrap=False)
    if len(texts) == 1:
        return result
    step = f"joined {len(texts)} fragments of one pretty-printed event"
    status = REPAIRED if result.status == VALID else result.status
    return dataclasses.replace(result, status=status, steps=(step, *result.steps))


# --- payloads -----------------------------------------------------------------------------------------------------


def _content_text(payload: object) -> str | None:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, Mapping):
        for key in _CONTENT_KEYS:
            value = payload.get(key)
            if isinstance(value, str):
                return value
    return None


def _repair_payload(payload: object, *, unwrap: bool) -> RepairResult:
    if payload is None:
        return _refused("no payload", "")
    if isinstance(payload, str):
        return _repair_text(payload, unwrap=unwrap)
    if isinstance(payload, Mapping):
        for key in _CONTENT_KEYS:
            if key in payload:
                value = payload[key]
                if not isinstance(value, str):
                    return _refused(f"{key} is {_a(_kind(value))}, not text", "")
                return _repair_text(value, unwrap=False)
        return _check_object(payload)
    return _refused(f"the payload is {_a(_kind(payload))}, not an event object", "")


def _shape_problem(value: object) -> str | None:
    """Depth and size of a parsed value, walked without recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_TEXT_BYTES:
            return f"more than {MAX_TEXT_BYTES} values: larger than the {MAX_TEXT_BYTES // 1024} KB a repair looks at"
        if isinstance(item, Mapping):
            children: Sequence[object] = list(item.values())
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels: no Cowrie event is"
        stack.extend((child, depth + 1) for child in children)
    return None


def _check_object(obj: Mapping[str, Any]) -> RepairResult:
    """A payload that is (supposed to be) the event itself: check it, change nothing."""
    if (problem := _shape_problem(obj)) is not None:
        return _refused(problem, "")
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return _refused(f"not serialisable as JSON: {exc}", "")
    if (big := _too_big(text)) is not None:
        return _refused(big, text)
    return _finish(dict(obj), text, [], [], [], set(), None)


# --- text ---------------------------------------------------------------------------------------------------------

_NOT_JSON = object()


def _repair_text(text: str, *, unwrap: bool) -> RepairResult:
    if not isinstance(text, str):
        return _refused(f"{_a(_kind(text))}, not text", "")
    if (big := _too_big(text)) is not None:
        return _refused(big, text)
    if lexer.is_json_ws(text):
        return _refused("empty text", text)
    try:
        value: Any = lexer.loads_strict(text)
    except RecursionError:
        return _refused(f"nested deeper than {MAX_DEPTH} levels: no Cowrie event is", text)
    except ValueError:
        value = _NOT_JSON
    if value is not _NOT_JSON:
        if isinstance(value, dict):
            if unwrap and any(key in value for key in _CONTENT_KEYS):
                return _repair_payload(value, unwrap=False)  # a whole payload passed as text
            if (problem := _shape_problem(value)) is not None:
                return _refused(problem, text)
            return _finish(value, text, [], [], [], set(), None)
        return _refused(f"the text is {_a(_kind(value))}, not an event object", text)
    rejoined = _rejoined(text)
    if rejoined is not None:
        return rejoined
    try:
        segs = lexer.segments(text, MAX_DEPTH)
    except lexer.TooDeep:
        return _refused(f"brackets nested deeper than {MAX_DEPTH} levels: no Cowrie event is", text)
    if not segs:
        return _refused(_no_object_reason(text), text)
    if len(segs) == 1:
        return _repair_segment(text, segs[0], text[: segs[0].start], text[segs[0].end :])
    if len(segs) > MAX_OBJECTS:
        return _refused(
            f"{len(segs)} objects in one text: more than the {MAX_OBJECTS} a dead letter of events holds", text
        )
    parts = []
    for i, seg in enumerate(segs):
        before = text[segs[i - 1].end : seg.start] if i else text[: seg.start]
        after = text[seg.end :] if i == len(segs) - 1 else ""
        parts.append(_repair_segment(text[seg.start : seg.end], seg, before, after, whole=text))
    steps = (f"split {len(parts)} objects glued together in one dead letter",)
    usable = sum(p.status != REFUSED for p in parts)
    if not usable:
        return _refused(
            f"none of the {len(parts)} objects in the text is a Cowrie event", text, steps=steps, parts=tuple(parts)
        )
    warning = (
        f"holds {len(parts)} objects ({usable} of them Cowrie events): each is repaired on its own in parts; "
        "one dead letter can only become one event"
    )
    return RepairResult(AMBIGUOUS, None, text, steps=steps, warnings=(warning,), parts=tuple(parts))


_MAX_REJOINS = 8


def _rejoined(text: str) -> RepairResult | None:
    """A line broken in two inside a string (the rest of the string starts the next line): rejoin it, but only
    keep that reading when the result is then one object our own repairs read (never a general repair's guess)."""
    candidate = text
    for count in range(1, _MAX_REJOINS + 1):
        joined = lexer.rejoin_broken_string(candidate)
        if joined is None:
            return None
        candidate = joined
        word = "line" if count == 1 else "lines"
        step = f"rejoined {count} {word} broken inside a string"
        doubt = "a line break inside a string was removed: spaces at the break, if any, were lost"
        try:
            value = lexer.loads_strict(candidate)
        except (ValueError, RecursionError):
            value = _NOT_JSON
        if isinstance(value, dict):
            return _finish(value, text, [step], [], [doubt], set(), None)
        try:
            segs = lexer.segments(candidate, MAX_DEPTH)
        except lexer.TooDeep:
            return None
        if len(segs) != 1:
            continue
        result = _repair_segment(
            text, segs[0], candidate[: segs[0].start], candidate[segs[0].end :], whole=candidate, general=False
        )
        if result is not None and result.status != REFUSED:
            return dataclasses.replace(
                result,
                status=AMBIGUOUS,
                steps=(step, *result.steps),
                warnings=(doubt, *result.warnings),
            )
    return None


def _no_object_reason(text: str) -> str:
    if _FRAGMENT_RE.search(text):
        return (
            "no '{' in the text: it looks like lines from the middle of a pretty-printed event; "
            "join it with the dead letters around it"
        )
    return "no JSON object in the text"


def _junk(text: str, where: str, steps: list[str], doubts: list[str], *, before: bool) -> bool:
    """Classify text outside the object. Returns True when it was real text (not stray bytes or a log prefix)."""
    if lexer.is_json_ws(text):
        return False
    if _STRAY_RE.fullmatch(text):
        stray = _utf8_len(text.strip(" \t\r\n"))
        steps.append(f"stripped {stray} stray {'byte' if stray == 1 else 'bytes'} {where}")
        return False
    if before:
        lead = _STRAY_RE.match(text)
        rest = text[lead.end() :] if lead else text
        if _LOG_PREFIX_RE.fullmatch(rest.rstrip(" \t\r\n")):
            steps.append(f"stripped log prefix {quote(rest.strip())} {where}")
            return False
    body = text.strip(" \t\r\n")
    noun = "character" if len(body) == 1 else "characters"
    doubts.append(f"dropped {len(body)} {noun} of text {where}: {quote(body)}")
    return True


@overload
def _repair_segment(
    text: str, seg: lexer.Segment, before: str, after: str, *, whole: str | None = None
) -> RepairResult: ...
@overload
def _repair_segment(
    text: str, seg: lexer.Segment, before: str, after: str, *, whole: str | None = None, general: bool
) -> RepairResult | None: ...
def _repair_segment(
    text: str, seg: lexer.Segment, before: str, after: str, *, whole: str | None = None, general: bool = True
) -> RepairResult | None:
    """One object of the text. `text` is what the result reports as its original; seg offsets are into `whole`."""
    source = text if whole is None else whole
    seg_text = source[seg.start : seg.end]
    steps: list[str] = []
    warnings: list[str] = []
    doubts: list[str] = []
    prefix_text = _junk(before, "before '{'", steps, doubts, before=True)
    _junk(after, "after the object", steps, doubts, before=False)
    rep = lexer.repair_tokens(seg)
    # Newlines are whitespace to JSON: joining the lines only counts as a step when something else was repaired.
    if seg.lines > 1 and (steps or doubts or rep is None or rep.steps or rep.doubts):
        steps.append(f"joined {seg.lines} lines of one pretty-printed event")
    if rep is not None and isinstance(rep.event, dict):
        steps += rep.steps
        warnings += rep.warnings
        doubts += rep.doubts
        return _finish(rep.event, text, steps, warnings, doubts, rep.truncated, None)
    if rep is not None:
        return _refused(f"not an event object: {_a(_kind(rep.event))}", text)
    if not general:
        return None
    return _general_repair(text, seg, seg_text, steps, warnings, doubts, prefix_text)


def _general_repair(
    text: str,
    seg: lexer.Segment,
    seg_text: str,
    steps: list[str],
    warnings: list[str],
    doubts: list[str],
    prefix_text: bool,
) -> RepairResult:
    # A key that is not in the text cannot come out of a repair (unquoted keys are refused below): say so without
    # paying for json_repair, which costs about 10 µs a byte on junk.
    missing = [k for k in _REQUIRED_KEYS if f'"{k}"' not in seg_text and f"'{k}'" not in seg_text]
    if missing:
        bare = next((k for k in missing if re.search(rf"(?<![\w\"']){k}\s*:", seg_text)), None)
        if bare is not None:
            return _refused(_UNQUOTED.format(key=quote(bare)), text, steps=tuple(steps))
        cut = "" if seg.complete else " (the text ends before the event does)"
        return _refused("; ".join(f"{k}: missing" for k in missing) + cut, text, steps=tuple(steps))
    value: Any = None
    log: list[str] = []
    strict = True
    for strict in (True, False):
        try:
            result = json_repair.loads(seg_text, strict=strict, logging=True)
        except RecursionError:
            return _refused(f"nested deeper than {MAX_DEPTH} levels: no Cowrie event is", text)
        except Exception as exc:  # third-party parser on hostile input: any failure is a refusal, never a crash
            if strict:
                continue
            return _refused(f"not repairable as JSON ({type(exc).__name__})", text)
        value, entries = result if isinstance(result, tuple) else (result, [])
        log = list(dict.fromkeys(str(e.get("text", "")) for e in entries if isinstance(e, dict)))
        if isinstance(value, dict) and value:
            break
    if not isinstance(value, dict) or not value:
        return _refused(f"not repairable as a JSON object (json_repair gives {_a(_kind(value))})", text)
    mode = "strict" if strict else "lenient"
    steps.append(f"repaired with json_repair ({mode} mode)")
    steps += [f"json_repair: {entry}" for entry in log if entry]
    if not strict:
        doubts.append("only json_repair's lenient mode could read it")
        if prefix_text:
            return _refused(
                "text before '{' and only a lenient repair reads the rest: too far from a Cowrie line to trust", text
            )
    unquoted = [k for k in value if _quoted(k, seg_text) is None]
    if unquoted:
        return _refused(_UNQUOTED.format(key=quote(unquoted[0])), text, steps=tuple(steps))
    if any(_quoted(k, seg_text) == "'" for k in value):
        doubts.append("single-quoted keys: not written by a JSON encoder")
    for key in [k for k, v in value.items() if v == "" and not _has_empty_value(k, seg_text)]:
        del value[key]
        steps.append(f"dropped {key!r}: json_repair gave it an empty value the text does not have")
        warnings.append(f"last value truncated: {key} (field dropped)")
    truncated: set[str] = set()
    tail = seg.tokens[-1]
    if not seg.complete and tail.kind == "s" and not tail.closed:
        key = _tail_key(seg.tokens)
        doubts.append(f"last value truncated: {key or '?'}")
        if key is not None:
            truncated.add(key)
    return _finish(value, text, steps, warnings, doubts, truncated, None)


def _quoted(key: str, seg_text: str) -> str | None:
    """How the key appears in the text: '"' (double-quoted), "'" (single-quoted) or None (not quoted at all)."""
    for form in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
        if form in seg_text:
            return '"'
    if f"'{key}'" in seg_text:
        return "'"
    return None


def _has_empty_value(key: str, seg_text: str) -> bool:
    pattern = re.escape(json.dumps(key, ensure_ascii=False)[1:-1])
    return re.search(rf"[\"']{pattern}[\"']\s*:\s*(?:\"\"|'')", seg_text) is not None


def _tail_key(tokens: tuple[lexer.Tok, ...]) -> str | None:
    """The key whose value the last (unclosed) string token is, when the tokens show it plainly."""
    if len(tokens) >= 3 and tokens[-2].text == ":" and tokens[-3].kind == "s" and tokens[-3].closed:
        try:
            key = json.loads(tokens[-3].text, strict=False)
        except ValueError:
            return None
        return key if isinstance(key, str) else None
    return None


# --- verdict ------------------------------------------------------------------------------------------------------


def _finish(
    event: Any,
    text: str,
    steps: list[str],
    warnings: list[str],
    doubts: list[str],
    truncated: set[str],
    refusal: str | None,
) -> RepairResult:
    more: dict[str, Any] = {"steps": tuple(steps), "warnings": tuple(dict.fromkeys([*doubts, *warnings]))}
    if not isinstance(event, dict):
        return _refused(f"not an event object: {_a(_kind(event))}", text, **more)
    try:
        json.dumps(event, allow_nan=False)
    except ValueError:
        return _refused("holds NaN or Infinity, which PostgreSQL's json type rejects", text, **more)
    except RecursionError:
        return _refused(f"nested deeper than {MAX_DEPTH} levels: no Cowrie event is", text, **more)
    checks = (Check("object", True, "a JSON object"), *check_event(event, frozenset(truncated)))
    failed = [c for c in checks if not c.ok]
    if refusal is not None or failed:
        reason = refusal or "; ".join(f"{c.name}: {c.detail}" for c in failed)
        if any(c.detail == "missing" for c in failed) and any("the text ends before" in w for w in warnings):
            reason += " (the text ends before the event does)"
        return _refused(reason, text, checks=checks, **more)
    status = AMBIGUOUS if doubts else REPAIRED if steps else VALID
    return RepairResult(status, event, text, checks=checks, **more)
