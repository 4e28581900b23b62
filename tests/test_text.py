"""dlq_tui.text over the hostile corpus: nothing that can drive a terminal or hide text gets through."""

from __future__ import annotations

import io
import json
import re
import sys
import unicodedata
from collections.abc import Callable

import pytest
from rich.console import Console
from rich.text import Text

from dlq_tui import text as T
from dlq_tui.text import (
    CELL_LIMIT,
    DETAIL_LIMIT,
    clip,
    decode_bytes,
    escape_controls,
    page_of,
    plain,
    safe_json,
    safe_text,
)
from tests.support import hostile_corpus as H

# Built from unicodedata rather than from text.py's own table, so the table is checked, not trusted.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def _bad_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) in _BAD_CATEGORIES:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


def _char_class(ranges: list[tuple[int, int]]) -> re.Pattern[str]:
    return re.compile("[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges) + "]")


_RANGES = _bad_ranges()
_BAD = _char_class(_RANGES)
_BAD_EXCEPT_LF = _char_class([(0, 9), (11, 0x1F)] + [r for r in _RANGES if r[0] > 0x1F])
_BAD_CHARS = "".join(chr(cp) for lo, hi in _RANGES for cp in range(lo, hi + 1))
_ESC_OK = re.compile(r"\x1b\[[0-9;]*m")  # SGR only: colours and attributes


_ASCII_OK = bytes(range(0x20, 0x7F))


def assert_clean(s: str, *, allow_newline: bool) -> None:
    if s.isascii():  # fast path for the multi-megabyte outputs: only ASCII controls can be wrong here
        rest = s.encode().translate(None, _ASCII_OK + (b"\n" if allow_newline else b""))
        assert not rest, f"raw ASCII controls {rest[:20]!r}"
        return
    match = (_BAD_EXCEPT_LF if allow_newline else _BAD).search(s)
    assert match is None, f"raw {match.group()!r} at {match.start()} in {s[max(0, match.start() - 20) :][:60]!r}"


def rendered(text: Text) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=100, legacy_windows=False).print(text)
    return out.getvalue()


def assert_renders_clean(text: Text) -> None:
    """The terminal output may contain SGR sequences Rich made itself, and nothing else that is a control."""
    out = rendered(text)
    for match in re.finditer("\x1b", out):
        assert _ESC_OK.match(out, match.start()), f"non-SGR escape {out[match.start() : match.start() + 20]!r}"
    assert_clean(_ESC_OK.sub("", out), allow_newline=True)


def as_str(value: str | bytes) -> str:
    return decode_bytes(value) if isinstance(value, bytes) else value


SMALL = sorted(H.SMALL.items())
ALL = sorted(H.CORPUS.items())

# (name, function) pairs returning str: every one must be free of raw controls for every corpus entry.
STR_FUNCTIONS: list[tuple[str, Callable[[str | bytes], str], bool]] = [
    ("escape_controls", lambda v: escape_controls(as_str(v)), False),
    ("escape_controls multiline", lambda v: escape_controls(as_str(v), multiline=True), True),
    ("plain", lambda v: plain(v, limit=DETAIL_LIMIT), False),
    ("plain unlimited", lambda v: plain(v), False),
    ("plain multiline", lambda v: plain(v, limit=DETAIL_LIMIT, multiline=True), True),
    ("plain cut 7", lambda v: plain(v, limit=7), False),
    ("clip then escape", lambda v: escape_controls(clip(as_str(v), 9)[0]), False),
    ("page then plain", lambda v: plain(page_of(as_str(v), 1, 5)[0], limit=None), False),
]
TEXT_FUNCTIONS: list[tuple[str, Callable[[str | bytes], Text], bool]] = [
    ("safe_text", lambda v: safe_text(v), False),
    ("safe_text styled", lambda v: safe_text(v, style="bold red", limit=40), False),
    ("safe_text detail", lambda v: safe_text(v, limit=DETAIL_LIMIT, multiline=True), True),
    ("safe_json", lambda v: safe_json(v, limit=DETAIL_LIMIT), True),
    ("safe_json compact", lambda v: safe_json(v, limit=CELL_LIMIT, multiline=False), False),
]


@pytest.mark.parametrize(("fname", "func", "multiline"), STR_FUNCTIONS, ids=[f[0] for f in STR_FUNCTIONS])
@pytest.mark.parametrize(("name", "value"), ALL, ids=[n for n, _ in ALL])
def test_str_output_has_no_raw_controls(
    name: str, value: str | bytes, fname: str, func: Callable[[str | bytes], str], multiline: bool
) -> None:
    assert_clean(func(value), allow_newline=multiline)


@pytest.mark.parametrize(("fname", "func", "multiline"), TEXT_FUNCTIONS, ids=[f[0] for f in TEXT_FUNCTIONS])
@pytest.mark.parametrize(("name", "value"), ALL, ids=[n for n, _ in ALL])
def test_text_output_is_clean_and_renders_only_sgr(
    name: str, value: str | bytes, fname: str, func: Callable[[str | bytes], Text], multiline: bool
) -> None:
    text = func(value)
    assert isinstance(text, Text)
    assert_clean(text.plain, allow_newline=multiline)
    assert len(text.plain) <= DETAIL_LIMIT + 300  # bounded whatever the input size
    assert_renders_clean(text)


@pytest.mark.parametrize("markup", [H.MARKUP_BOLD, H.MARKUP_LINK, H.MARKUP_CLICK, H.MARKUP_MALFORMED])
def test_markup_shows_literally(markup: str) -> None:
    text = safe_text(markup)
    assert text.plain == markup
    assert not text.spans  # nothing was interpreted as a style, link or action
    assert markup in _ESC_OK.sub("", rendered(text))
    assert plain(markup) == markup
    assert markup in safe_json({"k": markup}).plain


@pytest.mark.parametrize(
    ("value", "multiline", "expected"),
    [
        (H.CLEAR_SCREEN, False, r"\x1b[2J\x1b[H"),
        (H.WINDOW_TITLE, False, r"\x1b]0;pwned\x07"),
        (H.OSC52_CLIPBOARD, False, r"\x1b]52;c;ZWNobyBwd25lZA==\x07"),
        (H.C1_CSI, False, r"\x9b31m"),
        (H.BACKSPACE_OVERWRITE, False, r"safe\x08\x08\x08\x08evil"),
        ("a\rb\nc\td", False, r"a\rb\nc\td"),
        ("a\rb\nc\td", True, "a\\rb\nc   d"),  # LF kept, TAB to the next 4-column stop
        ("ab\tc", True, "ab  c"),
        (H.BIDI_OVERRIDE, False, r"\u202eexe.txt"),
        (H.TAG_CHARACTERS, False, r"hi\U000e0041\U000e0042\U000e007f"),
        (H.LONE_SURROGATE, False, r"a\ud800b\xffc"),  # surrogateescape stand-in shows as the byte it was
        ("\u2028\ufeff\u200b", True, r"\u2028\ufeff\u200b"),
        ("plain é ñ 漢字 ok", False, "plain é ñ 漢字 ok"),
        ("C:\\temp\\x", False, "C:\\temp\\x"),  # literal backslashes are left alone
    ],
)
def test_escape_controls_table(value: str, multiline: bool, expected: str) -> None:
    assert escape_controls(value, multiline=multiline) == expected


def test_every_control_and_format_character_is_escaped() -> None:
    assert_clean(escape_controls(_BAD_CHARS), allow_newline=False)
    assert_clean(escape_controls(_BAD_CHARS, multiline=True), allow_newline=True)


def test_decode_bytes_keeps_invalid_bytes_visible() -> None:
    assert decode_bytes(b"ok\xff") == "ok\\xff"
    assert decode_bytes("é".encode()) == "é"
    # Via safe_text the stand-ins are escapes (reverse video), and byte counts stay exact.
    text = safe_text(H.INVALID_UTF8, limit=None)
    assert text.plain == decode_bytes(H.INVALID_UTF8)
    assert any(text.plain[s.start : s.end] == "\\xff" for s in text.spans)


def test_escapes_are_styled_apart_from_literal_backslashes() -> None:
    text = safe_text(H.BACKSLASH_LOOKALIKE)
    assert text.plain == r"\x1b[2J is text, \x1b is not"
    styled = [(text.plain[s.start : s.end], str(s.style)) for s in text.spans]
    assert styled == [(r"\x1b", str(T._escape_style("")))]  # only the real ESC, not the typed one
    assert safe_text("\x07", style="bold").spans[0].style == T._escape_style("bold")


@pytest.mark.parametrize(
    ("value", "limit", "shown", "hidden"),
    [
        ("é" * 300, 10, "é" * 10, 580),
        ("😀" * 10, 3, "😀" * 3, 28),
        ("abc", 3, "abc", 0),
        ("ab\x1b[2J", 4, "ab", 4),  # the escape does not fit whole: it is left out, not split
        ("ab\x1b[2J", 6, "ab\\x1b", 3),
        (b"ok\xff\xfe" * 3, 7, "ok\\xff", 9),  # bytes: N counts the raw bytes, one per bad byte
        (H.HUGE_LINE, CELL_LIMIT, "A" * CELL_LIMIT, len(H.HUGE_LINE) - CELL_LIMIT),
    ],
)
def test_cut_marker_counts_bytes_not_shown(value: str | bytes, limit: int, shown: str, hidden: int) -> None:
    marker = f" … +{hidden} more bytes" if hidden else ""
    assert plain(value, limit=limit) == shown + marker
    text = safe_text(value, limit=limit)
    assert text.plain == shown + marker
    if hidden:
        assert text.spans[-1].style == "dim" and text.plain[text.spans[-1].start :] == marker


def test_clip_and_page_of() -> None:
    assert clip("é" * 5, 2) == ("éé", 6)
    assert clip("abc", 10) == ("abc", 0)
    assert clip("a\udcffb", 1) == ("a", 2)  # a surrogateescape stand-in counts as its one byte
    assert page_of("abcdefg", 0, 3) == ("abc", 3)
    assert page_of("abcdefg", 2, 3) == ("g", 3)
    assert page_of("abcdefg", 99, 3) == ("g", 3)  # clamped
    assert page_of("", 0, 3) == ("", 1)
    pages = page_of(H.HUGE_LINE, 0, DETAIL_LIMIT)[1]
    assert "".join(page_of(H.HUGE_LINE, p, DETAIL_LIMIT)[0] for p in range(3)) == H.HUGE_LINE[: 3 * DETAIL_LIMIT]
    assert pages == -(-len(H.HUGE_LINE) // DETAIL_LIMIT)


def test_none_and_other_types() -> None:
    assert safe_text(None).plain == "—" and safe_text(None).style == "dim"
    assert plain(None) == "—"
    assert safe_text(42).plain == "42"
    assert safe_json(None).plain == "—"


# --- JSON -------------------------------------------------------------------------------------------------------


def test_json_pretty_prints_with_highlighting() -> None:
    text = safe_json('{"a": [1, true, null, "s\\n"], "b": {}}')
    assert text.plain == '{\n  "a": [\n    1,\n    true,\n    null,\n    "s\\n"\n  ],\n  "b": {}\n}'
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert styles["1"] == T.NUMBER_STYLE and styles["true"] == T.TRUE_STYLE and styles["null"] == T.NULL_STYLE
    assert styles["a"] == T.KEY_STYLE and styles["s\\n"] == T.STRING_STYLE
    assert safe_json({"a": [1, True, None, "s\n"], "b": {}}).plain == text.plain  # parsed input, same view
    assert safe_json({"a": [1, "x"]}, multiline=False).plain == '{"a": [1, "x"]}'


@pytest.mark.parametrize("value", ["not json [bold]x[/]", '{"a": 1 "b": 2}', "", "[1, 2", '{"a": 1} trailing'])
def test_non_json_text_is_shown_raw(value: str) -> None:
    assert safe_json(value).plain == value


def test_json_strings_are_sanitised() -> None:
    text = safe_json({"k\u202e": "\x1b]0;pwned\x07 \u200b \x9b"})
    assert_clean(text.plain, allow_newline=True)
    assert r"\u001b]0;pwned\u0007" in text.plain  # JSON's own escapes for C0
    assert r"\u200b" in text.plain and r"\x9b" in text.plain and r"k\u202e" in text.plain
    lenient = safe_json('{"a": "raw \x1b[2J inside"}')  # invalid JSON as written by attackers
    assert r"raw \x1b[2J inside" in lenient.plain


@pytest.mark.parametrize("payload", [H.MALFORMED_PAYLOAD, json.loads(H.MALFORMED_PAYLOAD)], ids=["text", "parsed"])
def test_malformed_content_is_a_raw_block(payload: object) -> None:
    lines = safe_json(payload).plain.split("\n")
    assert lines[1] == '  "malformed_content":'
    assert lines[2] == r'    │ {"eventid": "cowrie.command.input", "input": "echo \x1b]0;pwned\x07"'
    assert lines[3] == '    │   "reason": "ok"}'  # cannot pose as a key: it sits in the gutter
    assert lines[4] == '  "parsing_timestamp": "2024-03-01T12:00:00Z",'
    assert lines[5] == '  "original_offset": 42'


def test_json_5mb_value_is_bounded_with_exact_count() -> None:
    source = json.dumps({"malformed_content": H.HUGE_LINE})
    for value in (source, json.loads(source)):
        text = safe_json(value)
        assert len(text.plain) <= 20_000 + 300
        shown = text.plain.count("A")
        consumed = len('{"malformed_content": "') + shown
        assert text.plain.endswith(f" … +{len(source) - consumed} more bytes")


def test_json_text_prefix_counts_the_rest() -> None:
    text = safe_json('{"a": "abcdefgh', total_bytes=1000)
    assert text.plain == '{\n  "a": "abcdefgh … +985 more bytes'
    assert safe_json('{"a": [1, 2', total_bytes=100).plain.endswith(" … +89 more bytes")


@pytest.mark.parametrize(
    "value", [H.DEEP_JSON, H.DEEP_JSON_OBJECT, H.DEEP_PARSED], ids=["text", "object-text", "parsed"]
)
def test_json_deep_nesting_is_cut_at_max_depth(value: object) -> None:
    text = safe_json(value)
    levels = 10_001 if value is H.DEEP_PARSED else 10_000  # DEEP_PARSED wraps 10,000 lists in one more
    assert f"… {levels - 32:,} more levels" in text.plain
    assert len(text.plain) <= 20_000 + 300
    assert text.plain.count("\n") < 80  # 32 levels each way, then the marker
    assert text.plain.rstrip().endswith(("]", "}"))


@pytest.mark.parametrize("value", [H.HUGE_ARRAY, list(range(1_000_000))], ids=["text", "parsed"])
def test_json_huge_array_is_bounded(value: object) -> None:
    text = safe_json(value, limit=5_000)
    assert len(text.plain) <= 5_000 + 300
    assert re.search(r" … (\+\d+ more bytes|more not shown)$", text.plain)
    if isinstance(value, str):
        assert text.plain.endswith(" more bytes")


def test_json_view_is_bounded_at_small_limits() -> None:
    for limit in (0, 1, 5, 50):
        text = safe_json(json.loads(H.MALFORMED_PAYLOAD), limit=limit)
        assert len(text.plain) <= limit + 300
        assert_clean(text.plain, allow_newline=True)
