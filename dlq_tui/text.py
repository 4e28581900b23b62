"""Display of untrusted text: every database-derived string goes through here before it reaches the screen.

Dead-letter payloads are written by attackers (honeypot logs), and the tool runs in operators' terminals over
SSH. Textual/Rich parse markup in plain strings and pass raw escape sequences through even inside ``Text``, so:

* ``Text`` objects are built from plain strings plus spans; no markup-parsing path is ever used.
* Characters that can drive a terminal or hide/reorder text (C0/C1 controls, DEL, bidi controls, invisible
  format characters, separators, lone surrogates, private-use and noncharacters) are replaced by visible
  escapes such as ``\\x1b``, ``\\u202e`` or ``\\U000e0041``.
* Long values are cut for display with an explicit "… +N more bytes" marker (N = UTF-8 bytes not shown).

Backslashes: a literal backslash in the input is left as is (shell commands and Windows paths stay readable).
So in *plain* output a literal ``\\x1b`` typed by an attacker looks like an escaped ESC; that ambiguity only
errs towards "there may be a control here" and no raw control ever reaches the terminal. In ``Text`` output
every escape is drawn in ``ESCAPE_STYLE`` (reverse video), so escapes and literal text are told apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import cast

from rich.style import Style
from rich.text import Span, Text

__all__ = [
    "CELL_LIMIT",
    "DETAIL_LIMIT",
    "ESCAPE_STYLE",
    "MARKER_STYLE",
    "NONE_MARK",
    "clip",
    "cut_marker",
    "decode_bytes",
    "escape_controls",
    "json_nesting_exceeds",
    "page_of",
    "plain",
    "safe_json",
    "safe_text",
    "utf8_len",
]

CELL_LIMIT = 200
DETAIL_LIMIT = 2000

ESCAPE_STYLE = "reverse"
MARKER_STYLE = "dim"
NONE_MARK = "—"

# JSON highlighting: concrete colours rather than Rich theme names ("json.key", ...), because Textual does not
# always resolve theme names when it converts a Rich Text.
KEY_STYLE = "bold blue"
STRING_STYLE = "green"
NUMBER_STYLE = "cyan"
TRUE_STYLE = "italic bright_green"
FALSE_STYLE = "italic bright_red"
NULL_STYLE = "italic magenta"
BRACE_STYLE = "bold"
GUTTER_STYLE = "dim"

# Code points shown as escapes. Cf/Zl/Zp are listed from Unicode 14 (Python 3.11) plus the blocks later
# versions filled, so a newer unicodedata cannot silently let a new format character through (a test checks
# this table against unicodedata). Extra entries are Default_Ignorable characters outside Cf that render as
# nothing (Hangul fillers, variation selectors, Mongolian selectors, combining grapheme joiner): they can make
# two different strings look identical, and variation selectors also confuse cell-width accounting.
_RISKY_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),  # C0 controls: ESC, BEL, BS, CR, LF, TAB, ...
    (0x007F, 0x009F),  # DEL and C1 controls, incl. 8-bit CSI U+009B and OSC U+009D
    (0x00AD, 0x00AD),  # soft hyphen (Cf)
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (Cf)
    (0x061C, 0x061C),  # Arabic letter mark (bidi)
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),  # Hangul fillers (invisible)
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space/non-joiner/joiner, LRM, RLM
    (0x2028, 0x202E),  # line/paragraph separators, bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated format chars
    (0x3164, 0x3164),  # Hangul filler
    (0xD800, 0xDFFF),  # lone surrogates (surrogateescape-decoded bytes and broken input)
    (0xE000, 0xF8FF),  # private use: font-dependent, can be invisible
    (0xFDD0, 0xFDEF),  # noncharacters
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space / BOM
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFFB),  # unassigned specials and interlinear annotation controls
    (0xFFFE, 0xFFFF),  # noncharacters
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tag characters and variation selectors supplement
    (0xF0000, 0x10FFFF),  # supplementary private use areas A and B
    *((plane + 0xFFFE, plane + 0xFFFF) for plane in range(0x10000, 0xF0000, 0x10000)),  # plane-end nonchars
)


def _char_class(ranges: tuple[tuple[int, int], ...], keep: str = "") -> re.Pattern[str]:
    parts: list[str] = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    body = "".join(parts)
    if keep:
        # A lookahead excludes the kept characters without splitting the C0 range by hand.
        return re.compile(f"(?![{re.escape(keep)}])[{body}]")
    return re.compile(f"[{body}]")


# Single-line: everything risky. Multiline: LF stays a line break, TAB is matched separately and expanded.
_RISKY_RE = _char_class(_RISKY_RANGES)
_RISKY_ML_RE = _char_class(_RISKY_RANGES, keep="\n")
# The same for pure-ASCII text (most log lines): a two-range class is several times faster than the full one.
_ASCII_RISKY_RE = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_RISKY_ML_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_ASCII_RISKY_BYTES = bytes(range(0x20)) + b"\x7f"
_ASCII_RISKY_ML_BYTES = _ASCII_RISKY_BYTES.replace(b"\n", b"")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TAB_SIZE = 4


def _escape_char(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if 0xDC80 <= cp <= 0xDCFF:
        # surrogateescape's stand-in for the undecodable byte cp - 0xDC00: show the byte, as decode_bytes does.
        return f"\\x{cp - 0xDC00:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


_Pieces = list[tuple[str, bool]]  # (displayed text, is an escape)


def _escape_pieces(value: str, budget: int | None, multiline: bool, col: int = 0) -> tuple[_Pieces, int, int]:
    """Escape `value` into display pieces of at most `budget` characters in total.

    Returns (pieces, input characters covered, column after the last piece). An escape is never split: it is
    shown whole or not at all, so a cut can never produce a half escape, let alone a raw control.
    """
    # Every input character yields at least one output character, so only the first `budget` can be shown;
    # slicing first keeps the work proportional to the budget for a 5 MB value.
    src = value if budget is None or len(value) <= budget else value[:budget]
    if src.isascii():
        pattern = _ASCII_RISKY_ML_RE if multiline else _ASCII_RISKY_RE
    else:
        pattern = _RISKY_ML_RE if multiline else _RISKY_RE
    pieces: _Pieces = []
    used = 0
    pos = 0

    def take_run(run: str) -> int:
        """Append a literal run (cut to the budget); return how many of its characters were taken."""
        nonlocal used, col
        if budget is not None and used + len(run) > budget:
            run = run[: budget - used]
        if run:
            pieces.append((run, False))
            used += len(run)
            newline = run.rfind("\n")
            col = len(run) - newline - 1 if newline >= 0 else col + len(run)
        return len(run)

    for match in pattern.finditer(src):
        start = match.start()
        if start > pos:
            taken = take_run(src[pos:start])
            if taken < start - pos:
                return pieces, pos + taken, col
            pos = start
        ch = match.group()
        if multiline and ch == "\t":
            shown, is_escape = " " * (_TAB_SIZE - col % _TAB_SIZE), False
        else:
            shown, is_escape = _escape_char(ch), True
        if budget is not None and used + len(shown) > budget:
            return pieces, pos, col
        pieces.append((shown, is_escape))
        used += len(shown)
        col += len(shown)
        pos = match.end()
    if pos < len(src):
        pos += take_run(src[pos:])
    return pieces, pos, col


def escape_controls(value: str, *, multiline: bool = False) -> str:
    """`value` with every risky character replaced by a visible escape (see the module docstring).

    With multiline=True, LF stays a line break and TAB becomes spaces up to the next 4-column stop.
    """
    if value.isascii():
        raw = value.encode("ascii")
        # C-speed check (bytes.translate) so a clean multi-megabyte value costs milliseconds.
        if len(raw.translate(None, _ASCII_RISKY_ML_BYTES if multiline else _ASCII_RISKY_BYTES)) == len(raw):
            return value
    elif (_RISKY_ML_RE if multiline else _RISKY_RE).search(value) is None:
        return value
    pieces, _, _ = _escape_pieces(value, None, multiline)
    return "".join(piece for piece, _ in pieces)


def utf8_len(value: str) -> int:
    """UTF-8 size of `value`; a surrogateescape stand-in counts as the one byte it stands for."""
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        pass
    size = len(value.encode("utf-8", "surrogatepass"))
    # surrogatepass counts 3 bytes for each surrogate; an escaped byte was 1 byte of the original.
    return size - 2 * sum(1 for ch in value if "\udc80" <= ch <= "\udcff")


def decode_bytes(raw: bytes) -> str:
    """UTF-8 text with each undecodable byte kept visible as the four characters ``\\xNN``."""
    return bytes(raw).decode("utf-8", "backslashreplace")


def clip(value: str, limit: int) -> tuple[str, int]:
    """The first `limit` characters of raw `value` and the number of UTF-8 bytes not shown.

    Works on raw text: escape the result afterwards (escaping cannot be split by a cut that happens before
    it). safe_text/plain instead cut after escaping, counting displayed characters and never splitting an escape.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if len(value) <= limit:
        return value, 0
    return value[:limit], utf8_len(value[limit:])


def cut_marker(hidden_bytes: int | None) -> str:
    """The text appended to a cut value; None when the size of the rest is not known."""
    if hidden_bytes is None:
        return " … more not shown"
    return f" … +{hidden_bytes} more bytes"


def page_of(value: str, page: int, page_chars: int) -> tuple[str, int]:
    """Raw page `page` (0-based, clamped to the valid range) of `value` and the number of pages (at least 1).

    The slice is raw: the caller sanitises it (safe_text/plain with limit=None).
    """
    if page_chars <= 0:
        raise ValueError("page_chars must be > 0")
    pages = max(1, -(-len(value) // page_chars))
    page = min(max(page, 0), pages - 1)
    return value[page * page_chars : (page + 1) * page_chars], pages


def _to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        # surrogateescape keeps one character per bad byte, so byte counts for the cut marker stay exact; the
        # stand-ins are shown as \xNN like decode_bytes does.
        return bytes(value).decode("utf-8", "surrogateescape")
    try:
        return str(value)
    except Exception:  # a hostile or broken __str__ must not take the screen down
        return f"<unprintable {type(value).__name__}>"


@lru_cache(maxsize=64)
def _escape_style(style: str) -> Style:
    base = Style.parse(style) if style else Style()
    return base + Style(reverse=True)


class _Builder:
    """Collects (string, style) pieces and makes one Text at the end.

    Text.append per piece is slow for the thousands of tokens of a 20 KB JSON view; one Text from a joined
    plain string plus a list of spans is the same result without markup parsing.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.length = 0

    def add(self, s: str, style: str | Style) -> None:
        if not s:
            return
        if style:
            self.spans.append(Span(self.length, self.length + len(s), style))
        self.parts.append(s)
        self.length += len(s)

    def add_pieces(self, pieces: _Pieces, style: str) -> int:
        escape_style = _escape_style(style)
        size = 0
        for piece, is_escape in pieces:
            self.add(piece, escape_style if is_escape else style)
            size += len(piece)
        return size

    def build(self) -> Text:
        text = Text("".join(self.parts))
        text.spans = self.spans
        return text


def _build_text(value: str, limit: int | None, style: str, multiline: bool, total_bytes: int | None = None) -> Text:
    pieces, consumed, _ = _escape_pieces(value, limit, multiline)
    out = _Builder()
    out.add_pieces(pieces, style)
    if consumed < len(value) or (total_bytes is not None and total_bytes > utf8_len(value)):
        shown = utf8_len(value[:consumed])
        total = utf8_len(value) if total_bytes is None else total_bytes
        out.add(cut_marker(total - shown), MARKER_STYLE)
    return out.build()


def safe_text(value: object, *, limit: int | None = CELL_LIMIT, style: str = "", multiline: bool = False) -> Text:
    """A Text showing `value` safely: escapes in reverse video, cut after `limit` displayed characters.

    None shows as a dim "—"; bytes are decoded as UTF-8 with bad bytes shown as ``\\xNN``; other objects via
    str(). A cut value ends with a dim "… +N more bytes" (N = UTF-8 bytes of the value not shown).
    """
    if value is None:
        return Text(NONE_MARK, style=MARKER_STYLE)
    return _build_text(_to_str(value), limit, style, multiline)


def plain(value: object, *, limit: int | None = None, multiline: bool = False) -> str:
    """The same sanitisation as safe_text as a str, for CLI output (cut marker " … +N more bytes")."""
    if value is None:
        return NONE_MARK
    s = _to_str(value)
    pieces, consumed, _ = _escape_pieces(s, limit, multiline)
    out = "".join(piece for piece, _ in pieces)
    if consumed < len(s):
        out += cut_marker(utf8_len(s[consumed:]))
    return out


# --- JSON -----------------------------------------------------------------------------------------------------
#
# safe_json never parses the whole value. JSON text is lexed token by token and pretty-printed straight into the
# Text until the output budget is spent, so the work is proportional to what is shown: a 5 MB payload costs the
# same as a 20 KB one, nesting is a counter (no recursion), and a text cut server-side (a prefix) still shows.
# Parsed values (dict/list) are first encoded iteratively into JSON text, only as far as can be shown.

_WS_RE = re.compile(r"[ \t\n\r]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Lenient about raw controls inside strings (invalid JSON, but attackers write it): they are escaped on display.
_STRING_BODY_RE = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)


def _match_end(pattern: re.Pattern[str], src: str, pos: int, endpos: int | None = None) -> int:
    """End of `pattern` at `pos`; for the patterns above, which match the empty string, so always match."""
    match = pattern.match(src, pos, len(src) if endpos is None else endpos)
    assert match is not None
    return match.end()


_LITERALS = {
    "true": TRUE_STYLE,
    "false": FALSE_STYLE,
    "null": NULL_STYLE,
    # json.dumps writes these for float specials; shown rather than rejected.
    "NaN": NUMBER_STYLE,
    "Infinity": NUMBER_STYLE,
    "-Infinity": NUMBER_STYLE,
}
_LITERAL_RE = re.compile("|".join(sorted((re.escape(k) for k in _LITERALS), key=len, reverse=True)))
# Nesting without parsing: strings are jumped over whole so brackets inside them do not count, and a run of
# brackets is one token, so the pathological "[[[[..." of 100,000 levels costs two tokens, not 200,000.
_NEST_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+', re.DOTALL)
_NEST_MAX_TOKENS = 200_000  # bound the scan of a pathological value so it cannot freeze the screen
_JSON_PIECE_RE = re.compile(
    r"[^\"\\]+|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.?", re.DOTALL
)
_SIMPLE_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"'}
_RAW_TEXT_KEYS = frozenset({"malformed_content"})
_INDENT = "  "
_GUTTER = "│ "
_STRUCTURE_SLACK = 256  # indentation and brackets may overshoot the budget by this much (then output stops)


class _NotJson(Exception):
    """The text is not JSON (found within the part that was looked at): show it as raw text instead."""


class _Stop(Exception):
    """The output budget is spent; `pos` is where the source was cut (None when unknown)."""

    def __init__(self, pos: int | None) -> None:
        super().__init__()
        self.pos = pos


def _decode_json_escape(raw: str) -> str:
    if len(raw) == 2:
        return _SIMPLE_JSON_ESCAPES.get(raw[1], raw)
    if raw.startswith("\\u") and len(raw) == 6:
        return chr(int(raw[2:], 16))
    if len(raw) == 12:  # surrogate pair
        high, low = int(raw[2:6], 16), int(raw[8:12], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    return raw  # a lone trailing backslash or an unknown escape: shown as written


def _depth_marker(levels: int) -> str:
    """The text shown where a value nested too deep to draw is cut: the levels not drawn."""
    return f"{levels:,} more level{'' if levels == 1 else 's'}"


def json_nesting_exceeds(source: str, levels: int) -> bool:
    """Whether JSON text nests deeper than `levels` (brackets outside strings), found without parsing.

    For deciding, before json.loads (which recurses and overflows on deep input), whether a value can be parsed
    safely; the scan stops as soon as the answer is known. A value too big to scan counts as too deep.
    """
    if source.count("[") + source.count("{") <= levels:  # C-speed upper bound: the usual, shallow case
        return False
    depth = 0
    for count, match in enumerate(_NEST_RE.finditer(source)):
        if count > _NEST_MAX_TOKENS:
            return True
        token = match.group()
        if token[0] in "[{":
            depth += len(token)
            if depth > levels:
                return True
        elif token[0] != '"':
            depth = max(0, depth - len(token))
    return False


class _JsonPrinter:
    def __init__(self, source: str, limit: int, max_depth: int, multiline: bool) -> None:
        self.src = source
        self.room = limit
        self.max_depth = max_depth
        self.multiline = multiline
        self.out = _Builder()

    # -- output ------------------------------------------------------------------------------------------------
    def put(self, s: str, style: str, pos: int | None) -> None:
        """Structural output (brackets, indentation): never cut, but stops the output once over budget."""
        self.out.add(s, style)
        self.room -= len(s)
        if self.room < -_STRUCTURE_SLACK or (self.room <= 0 and pos is not None and pos < len(self.src)):
            raise _Stop(pos)

    def put_escaped(self, s: str, style: str, multiline: bool, col: int = 0) -> tuple[int, int]:
        """Untrusted characters, escaped and cut to the budget; returns (characters taken, column)."""
        if len(s) <= self.room and "\t" not in s and _RISKY_RE.search(s) is None:
            # Common case, kept cheap for the thousands of short tokens and lines of a 20 KB view.
            self.out.add(s, style)
            self.room -= len(s)
            newline = s.rfind("\n")
            return len(s), len(s) - newline - 1 if newline >= 0 else col + len(s)
        pieces, taken, col = _escape_pieces(s, max(self.room, 0), multiline, col)
        self.room -= self.out.add_pieces(pieces, style)
        return taken, col

    def newline(self, depth: int, pos: int) -> None:
        if self.multiline:
            self.put("\n" + _INDENT * depth, "", pos)

    # -- tokens ------------------------------------------------------------------------------------------------
    def string(self, pos: int, style: str) -> tuple[int, str | None]:
        """Show the string token at `pos` in its JSON-encoded form; return (end position, body if short)."""
        start = pos + 1
        window = min(len(self.src), start + 6 * max(self.room, 0) + 16)
        end = _match_end(_STRING_BODY_RE, self.src, start, window)
        complete = end < len(self.src) and self.src[end] == '"'
        self.put('"', style, pos)
        taken, _ = self.put_escaped(self.src[start:end], style, multiline=False)
        if taken < end - start or not complete:
            raise _Stop(start + taken)
        self.put('"', style, end + 1)
        return end + 1, self.src[start:end] if end - start <= 64 else None

    def raw_block(self, pos: int, depth: int) -> int:
        """Show a JSON string decoded, as the raw lines it holds, in a gutter block (malformed_content)."""
        start = pos + 1
        window = min(len(self.src), start + 6 * max(self.room, 0) + 16)
        end = _match_end(_STRING_BODY_RE, self.src, start, window)
        complete = end < len(self.src) and self.src[end] == '"'
        # The gutter marks every raw line, so raw text cannot pass itself off as more JSON keys.
        gutter = "\n" + _INDENT * (depth + 1) + _GUTTER
        self.put(gutter, GUTTER_STYLE, start)
        col = 0
        for match in _JSON_PIECE_RE.finditer(self.src, start, end):
            raw = match.group()
            literal = raw[0] != "\\"
            decoded = raw if literal else _decode_json_escape(raw)
            lines = decoded.split("\n")
            offset = 0
            for i, line in enumerate(lines):
                if i:
                    self.put(gutter, GUTTER_STYLE, match.start() + (offset if literal else 0))
                    col = 0
                    offset += 1
                taken, col = self.put_escaped(line, "", multiline=True, col=col)
                if taken < len(line):
                    raise _Stop(match.start() + (offset + taken if literal else 0))
                offset += len(line)
        if not complete:
            raise _Stop(end)
        return end + 1

    # -- driver ------------------------------------------------------------------------------------------------
    def skip_subtree(self, pos: int) -> tuple[int | None, int, int]:
        """Skip the container opening at `pos` without looking inside strings.

        Returns (position after it, or None when the text or the scan budget ends first; how many levels deep
        it goes, counting itself, or at least that many when not ended; where the scan stopped).
        """
        depth = deepest = 0
        for count, match in enumerate(_NEST_RE.finditer(self.src, pos)):
            if count > _NEST_MAX_TOKENS:
                return None, deepest, match.start()
            token = match.group()
            if token[0] == '"':
                continue
            if token[0] in "[{":
                depth += len(token)
                deepest = max(deepest, depth)
            elif len(token) >= depth:
                return match.start() + depth, deepest, match.start() + depth
            else:
                depth -= len(token)
        return None, deepest, len(self.src)

    def run(self) -> None:
        """Pretty-print the whole source; raises _Stop when cut, _NotJson on a syntax error."""
        src = self.src
        stack: list[str] = []  # open containers: "{" or "["
        state = "value"  # "value": a value is due; "member": a key is due; "after": a comma or a closer is due
        after_block = False  # the previous member was a raw block: its comma is left out (it would read as raw)
        pos = 0
        while True:
            pos = _match_end(_WS_RE, src, pos)
            if state == "after" and not stack:
                if pos < len(src):
                    raise _NotJson
                return
            if pos >= len(src):
                if not stack and state == "value":
                    raise _NotJson  # empty or blank text (a top-level value is only due at the start)
                raise _Stop(pos)  # ended inside a value: a prefix (or invalid JSON, decided by the caller)
            ch = src[pos]
            if state == "value":
                state = "after"
                if ch == '"':
                    pos = self.string(pos, STRING_STYLE)[0]
                elif ch in "[{":
                    closer = "]" if ch == "[" else "}"
                    after = _match_end(_WS_RE, src, pos + 1)
                    if after < len(src) and src[after] == closer:
                        self.put(ch + closer, BRACE_STYLE, after + 1)
                        pos = after + 1
                    elif len(stack) >= self.max_depth:
                        end, levels, stopped = self.skip_subtree(pos)
                        self.put(ch, BRACE_STYLE, pos)
                        if end is None:
                            self.put(f" … at least {_depth_marker(levels)}", MARKER_STYLE, pos)
                            raise _Stop(stopped)
                        self.put(f" … {_depth_marker(levels)} ", MARKER_STYLE, pos)
                        self.put(closer, BRACE_STYLE, end)
                        pos = end
                    else:
                        stack.append(ch)
                        self.put(ch, BRACE_STYLE, pos + 1)
                        self.newline(len(stack), pos + 1)
                        pos += 1
                        state = "member" if ch == "{" else "value"
                else:
                    match = _NUMBER_RE.match(src, pos) or _LITERAL_RE.match(src, pos)
                    if match is None:
                        raise _NotJson
                    # Digits, signs and letters only: nothing to escape, only the budget to respect.
                    token = match.group()
                    shown = token[: max(self.room, 0)]
                    self.out.add(shown, _LITERALS.get(token, NUMBER_STYLE))
                    self.room -= len(shown)
                    if len(shown) < len(token):
                        raise _Stop(pos + len(shown))
                    pos = match.end()
            elif state == "member":
                if ch != '"':
                    raise _NotJson
                pos, key = self.string(pos, KEY_STYLE)
                pos = _match_end(_WS_RE, src, pos)
                if pos >= len(src):
                    raise _Stop(pos)
                if src[pos] != ":":
                    raise _NotJson
                pos = _match_end(_WS_RE, src, pos + 1)
                if self.multiline and key in _RAW_TEXT_KEYS and pos < len(src) and src[pos] == '"':
                    self.put(":", BRACE_STYLE, pos)
                    pos = self.raw_block(pos, len(stack))
                    after_block = True
                    state = "after"
                else:
                    self.put(": ", BRACE_STYLE, pos)
                    state = "value"
            else:  # "after", inside a container
                closer = "}" if stack[-1] == "{" else "]"
                if ch == closer:
                    stack.pop()
                    self.newline(len(stack), pos)
                    self.put(ch, BRACE_STYLE, pos + 1)
                    pos += 1
                elif ch == ",":
                    pos += 1
                    if not after_block:
                        self.put(",", BRACE_STYLE, pos)
                    if self.multiline:
                        self.newline(len(stack), pos)
                    else:
                        self.put(" ", "", pos)
                    state = "member" if stack[-1] == "{" else "value"
                else:
                    raise _NotJson
                after_block = False


def _encode_leaf(value: object, room: int) -> tuple[str, bool]:
    """JSON for a non-container value, cut to about `room` characters; returns (json, complete)."""
    if value is None:
        return "null", True
    if value is True:
        return "true", True
    if value is False:
        return "false", True
    if isinstance(value, int):
        try:
            return str(value), True
        except ValueError:  # more digits than int->str allows: not worth a freeze
            value = f"<integer of about {value.bit_length() * 3 // 10} digits>"
    elif isinstance(value, float):
        return json.dumps(value), True
    s = value if isinstance(value, str) else _to_str(value)
    if len(s) <= room:
        return json.dumps(s, ensure_ascii=False), True
    return json.dumps(s[:room], ensure_ascii=False)[:-1], False  # no closing quote: the string goes on


def _encode_capped(value: object, cap: int) -> tuple[str, bool]:
    """JSON text of a parsed value (json.dumps layout), built iteratively and only up to about `cap` characters.

    Returns (text, complete). Iterative, so 10,000 levels of nesting cannot overflow the stack; capped, so a huge
    list costs only what is shown. Also survives cycles (cut at the cap) and non-JSON types (shown via str()).
    """
    parts: list[str] = []
    size = 0
    stack: list[tuple[Iterator[object], bool]] = []  # (items, is a dict)
    firsts: list[bool] = []

    def emit(s: str) -> None:
        nonlocal size
        parts.append(s)
        size += len(s)

    def start(item: object) -> bool:
        if isinstance(item, dict):
            emit("{")
            stack.append((iter(item.items()), True))
            firsts.append(True)
        elif isinstance(item, (list, tuple)):
            emit("[")
            stack.append((iter(item), False))
            firsts.append(True)
        else:
            encoded, complete = _encode_leaf(item, cap - size + 1)
            emit(encoded)
            return complete
        return True

    if not start(value):
        return "".join(parts), False
    while stack:
        if size > cap:
            return "".join(parts), False
        items, is_dict = stack[-1]
        item = next(items, _END)
        if item is _END:
            stack.pop()
            firsts.pop()
            emit("}" if is_dict else "]")
            continue
        if not firsts[-1]:
            emit(", ")
        firsts[-1] = False
        if is_dict:
            key, item = cast("tuple[object, object]", item)
            encoded, complete = _encode_leaf(key if isinstance(key, str) else _to_str(key), cap - size + 1)
            emit(encoded)
            if not complete:
                return "".join(parts), False
            emit(": ")
        if not start(item):
            return "".join(parts), False
    return "".join(parts), True


_END = object()
_NOT_JSON_ESCAPED = bytes(b for b in range(0x20, 0x100) if b not in b'"\\')
_SHORT_JSON_ESCAPED = (b'"', b"\\", b"\n", b"\r", b"\t", b"\b", b"\f")  # escaped in 2 characters by json.dumps


def _json_escape_extra(value: str) -> int:
    """How many characters json.dumps(ensure_ascii=False) adds to `value` by escaping (quotes not included).

    Works on the UTF-8 bytes (C0 and ASCII bytes never occur inside a multi-byte sequence) with C-speed
    counting: a regex over a 5 MB string would cost more than the whole JSON view.
    """
    # One pass keeps only the bytes json.dumps escapes; the counting then runs over that (usually tiny) rest.
    special = value.encode("utf-8", "surrogatepass").translate(None, _NOT_JSON_ESCAPED)
    if not special:
        return 0
    short = sum(special.count(c) for c in _SHORT_JSON_ESCAPED)
    extra = short + 5 * (len(special) - short)  # \n-style: 1 extra character; \u00XX: 5
    return extra


_SIZE_MAX_NODES = 20_000  # counting what was not shown must stay cheap: beyond this the size is "not known"


def _encoded_size(value: object, max_nodes: int = _SIZE_MAX_NODES) -> int | None:
    """UTF-8 size of _encode_capped's full output for `value`, or None when that would take too long."""
    size = 0
    todo: list[object] = [value]
    nodes = 0
    while todo:
        nodes += 1
        if nodes > max_nodes:
            return None
        item = todo.pop()
        if isinstance(item, (dict, list, tuple)) and nodes + len(item) > max_nodes:
            return None  # checked before copying the members: a list of a million items gives up at once
        if isinstance(item, dict):
            size += 2 + 2 * max(len(item) - 1, 0) + 2 * len(item)  # braces, ", " and ": "
            for key, member in item.items():
                todo.append(key if isinstance(key, str) else _to_str(key))
                todo.append(member)
        elif isinstance(item, (list, tuple)):
            size += 2 + 2 * max(len(item) - 1, 0)
            todo.extend(item)
        elif isinstance(item, str):
            # json.dumps(ensure_ascii=False) only escapes quote, backslash and C0: \n-style takes 2 characters,
            # \u00XX 6. Counted without encoding the string, which matters for a 5 MB value.
            size += utf8_len(item) + 2 + _json_escape_extra(item)
        else:
            size += utf8_len(_encode_leaf(item, 1 << 62)[0])
    return size


def safe_json(
    value: object,
    *,
    limit: int = 20_000,
    max_depth: int = 32,
    multiline: bool = True,
    total_bytes: int | None = None,
) -> Text:
    """Pretty-printed, highlighted, sanitised JSON, bounded to about `limit` output characters.

    `value` is parsed JSON (dict/list/...) or JSON text (str/bytes; shown as raw text when it is not JSON).
    `total_bytes` is the size of the full text when `value` is only its beginning (cut server-side): the prefix
    is shown as far as it goes and the marker counts the rest. Strings keep their JSON-encoded form (a newline
    shows as \\n) with any remaining risky character escaped; a "malformed_content" string (the raw log line that
    failed to parse) is decoded and shown as raw lines in a gutter block. A container nested deeper than
    `max_depth` is drawn empty with "… N more levels" (the levels not drawn) inside. multiline=False gives a
    one-line compact form.
    """
    if value is None:
        return Text(NONE_MARK, style=MARKER_STYLE)
    known_total: int | None
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        source = _to_str(value)
        known_total = total_bytes if total_bytes is not None else utf8_len(source)
        is_prefix = total_bytes is not None and total_bytes > utf8_len(source)
    else:
        # json.dumps-style text spends at most 2 source characters per shown one (a \\n in a raw block).
        source, complete = _encode_capped(value, 2 * limit + 64)
        known_total = utf8_len(source) if complete else _encoded_size(value)
        is_prefix = not complete
    printer = _JsonPrinter(source, limit, max_depth, multiline)
    try:
        printer.run()
    except _NotJson:
        return _build_text(source, limit, "", multiline, total_bytes)
    except _Stop as stop:
        if stop.pos is not None and stop.pos >= len(source) and not is_prefix:
            return _build_text(source, limit, "", multiline, total_bytes)  # ended mid-value: not JSON
        hidden = None if known_total is None or stop.pos is None else known_total - utf8_len(source[: stop.pos])
        printer.out.add(cut_marker(hidden), MARKER_STYLE)
    return printer.out.build()
