"""The Cowrie processor's sensors.toml and variables: dlq-tui started where the processor runs finds its database.

The real file layout: a working directory holding config/sensors.toml and/or ./sensors.toml, shaped like the
processor's own example file (a [global] db, [[sensor]] entries with a name, other tables we ignore).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from psycopg import conninfo as pg_conninfo

from dlq_tui.cli import build_parser, run
from dlq_tui.config import resolve_start
from tests.cli.test_profiles import write
from tests.support.terminal import DSN_VARIABLES


def sensors_toml(global_db: str, **sensor_dbs: str | None) -> str:
    text = (
        f'[global]\ndb = "{global_db}"\nreport_dir = "/mnt/dshield/reports"\n\n[global.cache]\nredis_enabled = true\n'
    )
    for name, db in sensor_dbs.items():
        text += f'\n[[sensor]]\nname = "{name}"\nlogpath = "/mnt/dshield/{name}/NSM/cowrie"\nsummarizedays = 1\n'
        if db is not None:
            text += f'db = "{db}"\n'
    return text + "\n[snowshoe_detector]\nenabled = true\n"


@pytest.fixture(autouse=True)
def processor_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in DSN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "cowrieprocessor"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def choice(*argv: str):  # type: ignore[no-untyped-def]
    return resolve_start(build_parser().parse_args(list(argv)))[2]


def uri(dsn: str, scheme: str = "postgresql") -> str:
    """The suite's key=value DSN (a unix socket) as the URL the processor's file holds."""
    params = pg_conninfo.conninfo_to_dict(dsn)
    dbname = params.pop("dbname")
    return f"{scheme}:///{dbname}?{urlencode(params)}"


def test_config_sensors_toml_comes_before_dot_sensors_toml(processor_directory: Path) -> None:
    write(processor_directory / "sensors.toml", sensors_toml("postgresql://dot@h/cowrie"))
    assert choice().dsn == "postgresql://dot@h/cowrie"
    write(processor_directory / "config" / "sensors.toml", sensors_toml("postgresql://config@h/cowrie"))
    found = choice()
    assert (found.dsn, found.origin) == ("postgresql://config@h/cowrie", str(Path("config") / "sensors.toml"))


def test_sensor_takes_its_own_db_over_the_global_one(processor_directory: Path) -> None:
    write(
        processor_directory / "config" / "sensors.toml",
        sensors_toml("postgresql://global@h/cowrie", **{"honeypot-a": "postgresql://a@h/cowrie", "honeypot-b": None}),
    )
    assert choice("--sensor", "honeypot-a").dsn == "postgresql://a@h/cowrie"
    assert choice("--sensor", "honeypot-b").dsn == "postgresql://global@h/cowrie"  # no db of its own
    assert choice().dsn == "postgresql://global@h/cowrie"


def test_unknown_sensor_lists_the_names(processor_directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(processor_directory / "config" / "sensors.toml", sensors_toml("/db.sqlite", a=None, b=None))
    assert run(["--sensor", "c", "check"]) == 2
    assert capsys.readouterr().err == (
        f"dlq-tui: {Path('config') / 'sensors.toml'}: no [[sensor]] named 'c' (sensors: a, b)\n"
    )


def test_sensors_flag_names_the_file(tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "etc" / "cowrie.toml", sensors_toml("postgresql://named@h/cowrie"))
    write(Path.cwd() / "config" / "sensors.toml", sensors_toml("postgresql://lookup@h/cowrie"))
    assert choice("--sensors", str(elsewhere)).dsn == "postgresql://named@h/cowrie"


def test_a_bare_path_is_a_sqlite_file(processor_directory: Path) -> None:
    write(processor_directory / "config" / "sensors.toml", sensors_toml("/mnt/dshield/data/db/cowrieprocessor.sqlite"))
    assert choice().dsn == "sqlite:////mnt/dshield/data/db/cowrieprocessor.sqlite"
    write(processor_directory / "config" / "sensors.toml", sensors_toml("sqlite:///cowrieprocessor.sqlite"))
    assert choice().dsn == "sqlite:///cowrieprocessor.sqlite"


def test_other_databases_and_broken_files_are_one_line(
    processor_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(processor_directory / "sensors.toml", sensors_toml("mysql://u:Secr3tPw@h/cowrie"))
    assert run(["check"]) == 2
    err = capsys.readouterr().err
    assert "'mysql' URL: dlq-tui reads PostgreSQL and SQLite databases" in err and "Secr3tPw" not in err
    write(processor_directory / "sensors.toml", "[global]\nreport_dir = 1\n")
    assert run(["check"]) == 2
    assert capsys.readouterr().err == "dlq-tui: sensors.toml: [global] has no db\n"
    write(processor_directory / "sensors.toml", "[global\n")
    assert run(["check"]) == 2
    assert capsys.readouterr().err.startswith("dlq-tui: sensors.toml: not valid TOML: ")


def test_processor_variables_come_after_dlq_tui_dsn(processor_directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(processor_directory / "config" / "sensors.toml", sensors_toml("postgresql://file@h/cowrie"))
    monkeypatch.setenv("COWRIEPROC_DB_PATH", "data/cowrie.sqlite")
    assert (choice().dsn, choice().origin) == (
        f"sqlite:///{processor_directory}/data/cowrie.sqlite",
        "COWRIEPROC_DB_PATH",
    )
    monkeypatch.setenv("COWRIEPROC_DB_URL", "postgresql+psycopg://url@h/cowrie")
    assert choice().origin == "COWRIEPROC_DB_URL"
    monkeypatch.setenv("DATABASE_URL", "postgresql://generic@h/db")
    assert choice().origin == "COWRIEPROC_DB_URL"  # the processor's own variable is the more specific one
    monkeypatch.setenv("DLQ_TUI_DSN", "postgresql://own@h/db")
    assert choice().origin == "DLQ_TUI_DSN"
    assert choice("--dsn", "postgresql://flag@h/db").origin == "--dsn"
    # Naming the file on the command line outranks every variable.
    assert choice("--sensors", "config/sensors.toml").dsn == "postgresql://file@h/cowrie"


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_a_postgresql_url_in_sensors_toml_connects(
    scheme: str, v7_dsn: str, processor_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(processor_directory / "config" / "sensors.toml", sensors_toml(uri(v7_dsn, scheme)))
    assert run(["check"]) == 0
    assert "v7" in capsys.readouterr().out


def test_the_processor_url_variable_connects(
    v7_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COWRIEPROC_DB_URL", uri(v7_dsn, "postgresql+psycopg"))
    assert run(["check"]) == 0


def test_a_password_in_sensors_toml_is_never_shown(
    processor_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The processor's file is its own (the 0600 rule is dlq-tui's config file's): read, but its password never shown.
    write(processor_directory / "config" / "sensors.toml", sensors_toml("postgresql://u:Secr3tPw@127.0.0.1:1/c"), 0o644)
    assert run(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dlq-tui: cannot connect") and "Secr3tPw" not in err


def test_readme_documents_sensors() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    section = readme.split("## Connections", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "--sensors",
        "--sensor",
        "config/sensors.toml",
        "COWRIEPROC_DB_URL",
        "COWRIEPROC_DB_PATH",
        "+psycopg",
    ):
        assert needed in section, needed
