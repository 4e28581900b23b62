"""The config file: profiles choose the database and the app's settings, `config check` finds every problem with
its line, a password in a file others can read is refused, libpq's password file supplies passwords instead.

Precedence is tested on real files read by the real command line parser; connections against real servers (the
suite's PostgreSQL, and the password-auth fault server for .pgpass, PGPASSFILE and passfile=).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlq_tui.cli import build_parser, run
from dlq_tui.config import Overrides, resolve_start, settings_for
from dlq_tui.health_rules import Thresholds
from tests.support.faultservers import DATABASE, PASSWORD, ROLE, FaultServer, start_fault_server, stop_fault_server
from tests.support.terminal import DSN_VARIABLES

STAGING = "postgresql://dlq@staging.example/dlq"
PROD = "postgresql://dlq@prod.example/dlq"

CONFIG = f"""\
default_profile = "staging"

[profiles.staging]
dsn = "{STAGING}"
operator = "alice"
refresh = 2.5

[profiles.prod]
dsn = "{PROD}"
production = true
read_only = true
lock_ttl = 15

[profiles.prod.thresholds]
pending_warn = 50
oldest_crit_hours = "off"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DSN of whoever runs the suite, and a working directory without a sensors.toml."""
    for name in DSN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$XDG_CONFIG_HOME/dlq-tui/config.toml holding CONFIG."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return write(home / "dlq-tui" / "config.toml", CONFIG, 0o644)


def start(*argv: str):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(list(argv))
    return resolve_start(args)


# ------------------------------------------------------------------------------------------ precedence


def test_default_profile_of_the_xdg_file(xdg: Path) -> None:
    config, profile, choice = start()
    assert config is not None and config.path == xdg
    assert (profile.name, choice.dsn, choice.origin) == ("staging", STAGING, "profile staging")


def test_home_dot_config_when_xdg_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "home" / ".config" / "dlq-tui" / "config.toml", CONFIG)
    assert start()[2].dsn == STAGING


def test_profile_flag_chooses_and_sets_the_app(xdg: Path) -> None:
    config, profile, choice = start("--profile", "prod")
    assert choice.dsn == PROD
    settings = settings_for(choice.dsn, profile=profile, config=config)
    assert (settings.profile, settings.production, settings.read_only, settings.lock_ttl_minutes) == (
        "prod",
        True,
        True,
        15,
    )
    assert settings.thresholds == Thresholds(pending_warn=50, oldest_crit_hours=None)


def test_flags_beat_the_profile(xdg: Path) -> None:
    config, profile, choice = start("--profile", "staging", "--dsn", PROD, "--refresh", "9")
    assert choice.origin == "--dsn"
    settings = settings_for(choice.dsn, profile=profile, config=config, overrides=Overrides(refresh=9.0))
    assert (settings.refresh_seconds, settings.operator) == (9.0, "alice")  # the flag, and the profile under it


def test_environment_beats_the_default_profile_but_not_an_explicit_one(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLQ_TUI_DSN", "postgresql://env@h/db")
    assert start()[2].origin == "DLQ_TUI_DSN"
    # `--profile prod` typed on the command line is a flag: a stale variable in the shell must not win over it.
    assert start("--profile", "prod")[2].dsn == PROD


def test_profile_beats_sensors_toml_which_beats_embedded(xdg: Path, tmp_path: Path) -> None:
    write(Path.cwd() / "config" / "sensors.toml", '[global]\ndb = "postgresql://proc@h/cowrie"\n')
    assert start()[2].origin == "profile staging"
    xdg.unlink()
    assert start()[2].dsn == "postgresql://proc@h/cowrie"
    (Path.cwd() / "config" / "sensors.toml").unlink()
    assert start()[2].origin == "embedded"


def test_unknown_profile_lists_the_known_ones(xdg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--profile", "prdo", "check"]) == 2
    assert capsys.readouterr().err == f"dlq-tui: no profile 'prdo' in {xdg} (profiles: prod, staging)\n"


def test_profile_without_config_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--profile", "prod", "check"]) == 2
    assert "--profile 'prod': there is no config file" in capsys.readouterr().err


def test_missing_config_flag_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(tmp_path / "nope.toml"), "check"]) == 2
    assert capsys.readouterr().err == f"dlq-tui: {tmp_path / 'nope.toml'}: no such file\n"


def test_profile_connects_for_real(v7_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / "c.toml", f'[profiles.local]\ndsn = "{v7_dsn}"\n')
    assert run(["--config", str(config), "--profile", "local", "check"]) == 0
    assert "v7" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ config check


BROKEN = """\
default_profile = "stagin"
colour = "red"

[keys]
"go.nowhere" = "x"

[profiles.staging]
dsn = "postgresql://dlq@staging/dlq"
refresh = "fast"
lock_ttl = 0

[profiles.prod]
production = "yes"
oprator = "me"

[profiles.prod.thresholds]
pending_crit = 1.5
bogus = 1

[searches]
"bad name!" = "wget"
unparsable = "priority<=banana"
chained = "@attacker"
attacker = "src_ip:198.51.100.7"
"""


def test_config_check_lists_every_problem_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.toml", BROKEN)
    assert run(["config", "check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:{n}" for n in (1, 2, 5, 9, 10, 13, 14, 17, 18, 21, 22, 23)
    ]
    assert "default_profile names no profile: 'stagin' (profiles: prod, staging)" in lines[0]
    assert "unknown key 'colour'" in lines[1]
    assert "no binding has the id 'go.nowhere' (ids: " in lines[2] and "go.events" in lines[2]
    assert "refresh must be a number, got 'fast'" in lines[3]
    assert "lock_ttl must be whole minutes from 1 to 10080, got 0" in lines[4]
    assert "production must be true or false, got 'yes'" in lines[5]
    assert "unknown key 'oprator'" in lines[6]
    assert "pending_crit must be a whole number" in lines[7]
    assert "unknown threshold 'bogus'" in lines[8]
    assert "[searches]: 'bad name!' is not a search name" in lines[9]
    assert "[searches]: unparsable: " in lines[10] and "priority" in lines[10]
    assert "[searches]: chained names another saved search" in lines[11]
    assert err == f"dlq-tui: 12 problems in {path}\n"


def test_config_check_ok_and_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.toml", CONFIG + '\n[keys]\n"go.events" = "w"\n')
    assert run(["config", "check", "--config", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK (profiles: prod, staging; default staging; 1 key(s) remapped)\n"
    bad = write(tmp_path / "bad.toml", 'a = 1\nb = [\nc = "x"\n')
    assert run(["config", "check", "--config", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}:3: not valid TOML: ")


def test_a_broken_config_stops_every_command_with_its_first_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "c.toml", BROKEN)
    assert run(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"dlq-tui: {path}:1: default_profile names no profile")
    assert err.endswith("(10 more: dlq-tui config check)\n")  # [keys] ids are checked for the app only


# --------------------------------------------------------------------------------------------- passwords

SECRET = "Zq8-s3cret-pw"


@pytest.mark.parametrize(
    "body",
    [
        f'dsn = "postgresql://dlq:{SECRET}@h/dlq"',
        f"dsn = \"host=h user=dlq password='{SECRET}'\"",
        f'dsn = "postgresql://h/dlq"\npassword = "{SECRET}"',
    ],
    ids=["uri", "key=value", "password key"],
)
def test_a_password_in_a_file_others_can_read_is_refused(
    body: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "c.toml", f"[profiles.p]\n{body}\n", 0o644)
    assert run(["--config", str(path), "--profile", "p", "check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and SECRET not in err
    assert "holds a password but the file can be read by others (mode 0644)" in err
    assert "~/.pgpass" in err and f"chmod 600 {path}" in err


def test_a_password_in_a_private_file_is_taken(v7_dsn: str, tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "{v7_dsn}"\npassword = "{SECRET}"\n', 0o600)
    _config, _profile, choice = start("--config", str(path), "--profile", "p")
    assert choice.dsn is not None and f"password={SECRET}" in choice.dsn


@pytest.fixture(scope="module")
def password_server() -> Iterator[FaultServer]:
    """A real PostgreSQL that asks for a password over TCP (scram)."""
    server = start_fault_server()
    yield server
    stop_fault_server(server)


def _no_password_dsn(server: FaultServer) -> str:
    return f"postgresql://{ROLE}@127.0.0.1:{server.port}/{DATABASE}?connect_timeout=5"


def _pgpass_line(server: FaultServer) -> str:
    # .pgpass escapes ':' and '\' in its fields.
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    return f"127.0.0.1:{server.port}:{DATABASE}:{ROLE}:{escaped}\n"


def _connects(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` reached the database (the fault server has no dlq schema: exit 1, not the fault exit 2)."""
    code = run(["--config", str(path), "--profile", "p", "check"])
    out, err = capsys.readouterr()
    assert "password" not in err, err
    assert code == 1 and "catalog: no dlq tables" in out, out + err


def test_no_password_anywhere_is_a_clear_fault(
    password_server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: the tests below connect because of the password file, not because none is needed."""
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "{_no_password_dsn(password_server)}"\n', 0o644)
    assert run(["--config", str(path), "--profile", "p", "check"]) == 2
    assert "the server asks for a password and none was given" in capsys.readouterr().err


def test_pgpassfile_supplies_the_password(
    password_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGPASSFILE", str(write(tmp_path / "pgpass", _pgpass_line(password_server))))
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "{_no_password_dsn(password_server)}"\n', 0o644)
    _connects(path, capsys)


def test_home_pgpass_supplies_the_password(
    password_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "home" / ".pgpass", _pgpass_line(password_server))
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "{_no_password_dsn(password_server)}"\n', 0o644)
    _connects(path, capsys)


@pytest.mark.parametrize("where", ["passfile key", "passfile= in the dsn"])
def test_passfile_supplies_the_password(
    where: str, password_server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passfile = write(tmp_path / "prod.pgpass", _pgpass_line(password_server))
    dsn = _no_password_dsn(password_server)
    body = (
        f'dsn = "{dsn}"\npassfile = "{passfile}"' if where == "passfile key" else f'dsn = "{dsn}&passfile={passfile}"'
    )
    path = write(tmp_path / "c.toml", f"[profiles.p]\n{body}\n", 0o644)
    _connects(path, capsys)


def test_the_readme_documents_connections() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    section = readme.split("## Connections", 1)[1].split("\n## ", 1)[0]
    for needed in ("config.toml", "--profile", "default_profile", ".pgpass", "PGPASSFILE", "passfile", "0600"):
        assert needed in section, needed
    assert "flags > environment > profile > sensors.toml > embedded" in section


def test_config_errors_never_show_a_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "postgresql://dlq:{SECRET}@h:99999/dlq"\n', 0o600)
    assert run(["config", "check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "invalid port" in out and SECRET not in out
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_profile_thresholds_judge_health_under_the_flags(
    v7_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty queue is OK by the built-in levels; a profile that warns from 0 pending says WARNING."""
    path = write(tmp_path / "c.toml", f'[profiles.p]\ndsn = "{v7_dsn}"\n\n[profiles.p.thresholds]\npending_warn = 0\n')
    assert run(["--dsn", v7_dsn, "health"]) == 0
    assert run(["--config", str(path), "--profile", "p", "health"]) == 1
    assert run(["--config", str(path), "--profile", "p", "health", "--warn-pending", "off"]) == 0
    capsys.readouterr()
