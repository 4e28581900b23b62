"""Hostile strings for display tests, shared by every test that puts database text on screen.

Each is what an attacker can write into a honeypot log line and so into the dead-letter table. The big ones
are built once at import (about 15 MB in total): reuse the constants, do not copy them.
"""

from __future__ import annotations

import json

# Terminal control: each would act on a real terminal if it reached it raw.
CLEAR_SCREEN = "\x1b[2J\x1b[H"
OSC8_HYPERLINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
OSC52_CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
WINDOW_TITLE = "\x1b]0;pwned\x07"
DCS_SEQUENCE = "\x1bP+q544e\x1b\\"  # XTGETTCAP request: makes the terminal answer into stdin
C1_CSI = "\x9b31m"  # 8-bit CSI: red text on terminals that honour C1
C1_OSC = "\x9d0;pwned\x9c"  # 8-bit OSC title change, ended by 8-bit ST
BELL = "ding\x07\x07\x07"
BACKSPACE_OVERWRITE = "safe\x08\x08\x08\x08evil"
CR_OVERWRITE = "rm -rf / # harmless\rls -l          "
NUL_AND_DEL = "a\x00b\x7fc"
CURSOR_MOVE = "ok\x1b[1A\x1b[2K\x1b[10;10Hmoved"

# Invisible or reordering characters: the text on screen would not be the text in the database.
BIDI_OVERRIDE = "\u202eexe.txt"
BIDI_ISOLATES = "a\u2066b\u2067c\u2068d\u2069e\u200ef\u200fg\u061ch"
ZERO_WIDTH = "pass\u200bword\u200c\u200d\u2060\ufeff"
TAG_CHARACTERS = "hi\U000e0041\U000e0042\U000e007f"
LINE_SEPARATORS = "one\u2028two\u2029three"
INVISIBLE_FILLERS = "\u3164\u115f\u00ad\ufe0f\u034f"
PRIVATE_USE = "\ue000\U000f0000\ufdd0\uffff"

# Rich/Textual markup: must show literally (and "[/]" alone crashed Textual's parser).
MARKUP_BOLD = "[bold red]x[/]"
MARKUP_LINK = "[link=http://evil]y[/link]"
MARKUP_CLICK = "[@click=app.quit]z[/]"
MARKUP_MALFORMED = "[/]"

# Broken encodings.
INVALID_UTF8 = b"ok \xff\xfe \xc3( \xed\xa0\x80 end"
LONE_SURROGATE = "a\ud800b\udcffc"  # surrogatepass/surrogateescape decoding leaves these in a str
BACKSLASH_LOOKALIKE = "\\x1b[2J is text, \x1b is not"

# Size and shape.
HUGE_LINE = "A" * (5 * 1024 * 1024)  # a 5 MB single line
DEEP_JSON = "[" * 10_000 + "]" * 10_000
DEEP_JSON_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000
HUGE_ARRAY = json.dumps(list(range(1_000_000)))
MALFORMED_PAYLOAD = json.dumps(
    {
        "malformed_content": '{"eventid": "cowrie.command.input", "input": "echo \x1b]0;pwned\x07"\n  "reason": "ok"}',
        "parsing_timestamp": "2024-03-01T12:00:00Z",
        "original_offset": 42,
    }
)


def _deep_list(depth: int) -> list[object]:
    root: list[object] = []
    node = root
    for _ in range(depth):
        child: list[object] = []
        node.append(child)
        node = child
    return root


DEEP_PARSED = _deep_list(10_000)  # parsed value too deep for json.dumps/loads recursion

SMALL: dict[str, str | bytes] = {
    name: value
    for name, value in globals().items()
    if name.isupper() and isinstance(value, (str, bytes)) and len(value) < 10_000
}
BIG: dict[str, str] = {"HUGE_LINE": HUGE_LINE, "DEEP_JSON": DEEP_JSON, "HUGE_ARRAY": HUGE_ARRAY}
# Every entry by name: the list other tests iterate over.
CORPUS: dict[str, str | bytes] = {**SMALL, **BIG, "DEEP_JSON_OBJECT": DEEP_JSON_OBJECT}
ALL: list[str | bytes] = list(CORPUS.values())
# A row with every small hostile string at once, for screens that show one value per column.
COMBINED = "".join(v if isinstance(v, str) else v.decode("utf-8", "surrogateescape") for v in SMALL.values())
