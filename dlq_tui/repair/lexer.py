"""Cowrie-specific, deterministic repairs done on tokens, before any general JSON repair is tried.

The text is cut into tokens with one regular expression (linear, no recursion), then into segments: one segment
per top-level object. Two facts about the text make this reliable:

* The loader strips each line and joins a dead letter's lines with "\\n", and a JSON encoder never writes a raw
  newline inside a string, so a newline always ends a string: a string still open at a newline is a line cut short.
* A JSON encoder escapes every quote inside a string, so `{"eventid":` can only be the start of an object. Cowrie
  writes eventid first, so each occurrence starts a new event even when the one before it was cut mid-string
  (interleaved writes), which would otherwise swallow the next event's opening quote.

`repair_tokens` then fixes what a cut line or a sloppy writer leaves behind (trailing commas, a missing comma
between lines, a string or key cut at the end, unclosed brackets) and says exactly what it did. Anything else makes
it give up (return None) so the caller can fall back to a general repair.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

_JSON_WS = " \t\r\n"
_TOKEN_RE = re.compile(
    r"""
      (?P<ws>[ \t\r\n]+)
    | (?P<str>"(?:[^"\\\n]|\\[^\n])*\\?)(?P<close>")?
    | (?P<punct>[{}\[\]:,])
    | (?P<other>[^ \t\r\n"{}\[\]:,]+)
    """,
    re.VERBOSE,
)
EVENT_START_RE = re.compile(r'\{[ \t\r\n]*"eventid"[ \t\r\n]*:')
_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_CONTROL_RE = re.compile(r"[\x00-\x1f]")
_CUT_ESCAPE_RE = re.compile(r"(\\+)(u[0-9a-fA-F]{0,3})?\Z")
_LITERALS = frozenset({"true", "false", "null"})


class TooDeep(Exception):
    """The text nests brackets deeper than any Cowrie event does."""


class Tok(NamedTuple):
    kind: str  # "s" string, "p" punctuation, "o" anything else (numbers, literals, junk)
    text: str
    line: int  # 1-based line of the text the token is on
    closed: bool  # strings only: the closing quote is there


@dataclass(frozen=True, slots=True)
class Segment:
    """One top-level object: text[start:end], its tokens, and whether its closing brace is there."""

    start: int
    end: int
    tokens: tuple[Tok, ...]
    complete: bool

    @property
    def lines(self) -> int:
        return self.tokens[-1].line - self.tokens[0].line + 1


def segments(text: str, max_depth: int) -> list[Segment]:
    """The top-level objects of the text, in order. Text outside them is junk (the caller finds it in the gaps)."""
    starts = [m.start() for m in EVENT_START_RE.finditer(text)]
    bounds = sorted({0, *starts, len(text)})
    found: list[Segment] = []
    line = 1
    for a, b in itertools.pairwise(bounds):
        line = _segments_in(text, a, b, line, max_depth, found)
    return found


def _segments_in(text: str, a: int, b: int, line: int, max_depth: int, found: list[Segment]) -> int:
    depth = 0
    start = 0
    end = 0
    toks: list[Tok] = []
    for m in _TOKEN_RE.finditer(text, a, b):
        kind = m.lastgroup
        if kind == "ws":
            line += m.group().count("\n")
            continue
        if kind == "close":  # lastgroup is the last group that matched: a closed string
            tok = Tok("s", m.group(), line, True)
        elif kind == "str":
            tok = Tok("s", m.group(), line, False)
        elif kind == "punct":
            tok = Tok("p", m.group(), line, False)
        else:
            tok = Tok("o", m.group(), line, False)
        if depth == 0:
            if tok.text != "{" or tok.kind != "p":
                continue  # junk between objects
            start = m.start()
            toks = []
        toks.append(tok)
        end = m.end()
        if tok.kind == "p":
            if tok.text in "{[":
                depth += 1
                if depth > max_depth:
                    raise TooDeep
            elif tok.text in "}]":
                depth -= 1
                if depth == 0:
                    found.append(Segment(start, end, tuple(toks), True))
    if depth > 0:
        found.append(Segment(start, end, tuple(toks), False))
    return line


@dataclass(slots=True)
class TokenRepair:
    """What repair_tokens made of a segment."""

    event: Any
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)  # warnings that make the verdict ambiguous
    truncated: set[str] = field(default_factory=set)  # top-level fields whose kept value was cut short


@dataclass(slots=True)
class _Frame:
    kind: str  # "{" or "["
    state: str  # "{": open, key, colon, value, after; "[": open, value, after
    member_start: int = 0  # index in `out` where the current member starts (its comma included)
    comma_line: int = 0
    count: int = 0  # members completed
    key: str | None = None


def _after_comma(frame: _Frame) -> bool:
    """The frame's last token is a comma (a closer or the end of the text here leaves it trailing)."""
    return (frame.kind == "{" and frame.state == "key") or (frame.kind == "[" and frame.state == "value")


def _key_name(text: str) -> str:
    try:
        value = json.loads(text, strict=False)
    except ValueError:
        return text.strip('"')
    return value if isinstance(value, str) else text


def _close_string(text: str) -> str:
    """Close a string cut short, first dropping an escape the cut split in two (a lone '\\' or a partial '\\u12')."""
    m = _CUT_ESCAPE_RE.search(text)
    if m is not None and len(m.group(1)) % 2 == 1:
        text = text[: m.start() + len(m.group(1)) - 1]
    return text + '"'


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str, *, allow_controls: bool = False) -> Any:
    """json.loads that refuses NaN/Infinity (PostgreSQL's json type rejects them)."""
    return json.loads(text, strict=not allow_controls, parse_constant=_reject_constant)


def repair_tokens(seg: Segment) -> TokenRepair | None:
    """Mechanical repairs of one segment; None when it needs more than these (the caller falls back)."""
    toks = seg.tokens
    n = len(toks)
    out: list[str] = []
    stack: list[_Frame] = []
    rep = TokenRepair(event=None)
    trailing = 0
    added_commas = 0
    controls = 0

    def nearest_key() -> str:
        for frame in reversed(stack):
            if frame.kind == "{" and frame.key is not None:
                return frame.key
        return "?"

    def top_key() -> str | None:
        return stack[0].key if stack else None

    def drop_member(frame: _Frame) -> None:
        del out[frame.member_start :]
        frame.state = "after" if frame.count else "open"
        frame.key = None

    for i, tok in enumerate(toks):
        last = not seg.complete and i == n - 1
        if not stack:
            if tok.text != "{" or i != 0:
                return None
            stack.append(_Frame("{", "open"))
            out.append("{")
            continue
        top = stack[-1]
        if top.kind == "[" and top.state == "open":
            top.member_start = len(out)
        expects_value = (top.kind == "{" and top.state == "value") or (top.kind == "[" and top.state != "after")
        if top.state == "after" and tok.kind in "so" and not (tok.kind == "o" and top.kind == "{"):
            # A value or key straight after a value: a comma lost at a line break (or a cut line running on).
            top.member_start = len(out)
            top.comma_line = tok.line
            top.state = "key" if top.kind == "{" else "value"
            out.append(",")
            added_commas += 1
            expects_value = top.kind == "["
        if tok.kind == "s":
            controls += len(_CONTROL_RE.findall(tok.text))
            if top.kind == "{" and top.state in ("open", "key"):
                if top.state == "open":
                    top.member_start = len(out)
                if not tok.closed:
                    if not last:
                        return None
                    drop_member(top)
                    rep.steps.append(f"dropped the key cut short at the end of the text: {tok.text[1:41]!r}")
                    continue
                top.key = _key_name(tok.text)
                out.append(tok.text)
                top.state = "colon"
                continue
            if not expects_value:
                return None
            if tok.closed:
                out.append(tok.text)
            elif last and _close_string(tok.text) == '""':
                key = nearest_key()  # cut right after the opening quote: keeping "" would invent a value
                drop_member(top)
                rep.steps.append(f"dropped {key!r}: the text ends before its value")
                rep.warnings.append(f"last value truncated: {key} (field dropped)")
                continue
            else:
                out.append(_close_string(tok.text))
                key = nearest_key()
                if last:
                    rep.steps.append("closed the string cut short at the end of the text")
                    rep.doubts.append(f"last value truncated: {key}")
                else:
                    rep.steps.append(f"closed the string cut short at the end of line {tok.line}")
                    rep.doubts.append(f"value cut short at the end of line {tok.line}: {key}")
                if (k := top_key()) is not None:
                    rep.truncated.add(k)
            top.state = "after"
            top.count += 1
            continue
        if tok.kind == "o":
            if not expects_value:
                return None
            if tok.text in _LITERALS or _NUMBER_RE.fullmatch(tok.text):
                out.append(tok.text)
                top.state = "after"
                top.count += 1
                if last and tok.text not in _LITERALS:
                    rep.doubts.append(f"last value may be truncated: {nearest_key()} ends the text with a number")
                    if (k := top_key()) is not None:
                        rep.truncated.add(k)
                continue
            if not last:
                return None
            key = nearest_key()
            drop_member(top)
            rep.steps.append(f"dropped {key!r}: its value {tok.text[:20]!r} was cut short")
            rep.warnings.append(f"last value truncated: {key} (field dropped)")
            continue
        # punctuation
        t = tok.text
        if t in "{[":
            if not expects_value:
                return None
            stack.append(_Frame(t, "open"))
            out.append(t)
        elif t == ":":
            if top.kind != "{" or top.state != "colon":
                return None
            out.append(t)
            top.state = "value"
        elif t == ",":
            if top.state != "after":
                return None
            top.member_start = len(out)
            top.comma_line = tok.line
            top.state = "key" if top.kind == "{" else "value"
            out.append(t)
        else:  # "}" or "]"
            if (t == "}") != (top.kind == "{"):
                return None
            if _after_comma(top):
                del out[top.member_start :]
                trailing += 1
                if top.comma_line != tok.line:
                    rep.doubts.append(f"a line may be missing before line {tok.line} (a trailing comma was left there)")
            elif top.state not in ("open", "after"):
                return None
            out.append(t)
            stack.pop()
            if stack:
                stack[-1].state = "after"
                stack[-1].count += 1
    if stack:
        top = stack[-1]
        if _after_comma(top):
            del out[top.member_start :]
            top.state = "after"
            rep.steps.append("removed the comma left dangling at the cut")
        elif top.kind == "{" and top.state in ("colon", "value"):
            key = top.key or "?"
            drop_member(top)
            rep.steps.append(f"dropped {key!r}: the text ends before its value")
            rep.warnings.append(f"last value truncated: {key} (field dropped)")
        # An unfinished list or object inside the event is a value cut short, like a cut string.
        if len(stack) > 1 and (k := top_key()) is not None and k not in rep.truncated:
            rep.doubts.append(f"last value truncated: {k} (its list or object was cut short)")
            rep.truncated.add(k)
        closers = "".join("}" if f.kind == "{" else "]" for f in reversed(stack))
        out.append(closers)
        word = "bracket" if len(closers) == 1 else "brackets"
        rep.steps.append(f"closed {len(closers)} open {word}")
        rep.warnings.append("the text ends before the event does: fields after the cut, if any, are lost")
    if trailing:
        rep.steps.append("removed trailing comma" if trailing == 1 else f"removed {trailing} trailing commas")
    if added_commas:
        rep.steps.append(
            "added a missing comma between fields" if added_commas == 1 else f"added {added_commas} missing commas"
        )
    if controls:
        noun = "character" if controls == 1 else "characters"
        rep.steps.append(f"kept {controls} raw control {noun} inside strings")
    try:
        rep.event = loads_strict("".join(out), allow_controls=controls > 0)
    except (ValueError, RecursionError):
        return None
    return rep


def rejoin_broken_string(text: str) -> str | None:
    """The text without the first newline that falls inside a string, or None when there is none.

    A newline inside a string means either a line cut short (the rest is lost) or one line broken in two (the rest
    is on the next line); the caller tries the second reading and keeps it only if it then parses cleanly.
    """
    for m in _TOKEN_RE.finditer(text):
        if m.lastgroup == "str" and m.end() < len(text) and text[m.end()] == "\n":
            return text[: m.end()] + text[m.end() + 1 :]
    return None


def is_json_ws(text: str) -> bool:
    return not text.strip(_JSON_WS)
