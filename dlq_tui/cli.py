"""Command line: parse arguments, resolve the database, dispatch to the app or a one-shot command.

Exit codes: 0 success; 1 the command ran and found a problem (migration failed, schema not
current); 2 the database could not be reached, did not answer within the overall time limit, or the
arguments were wrong. `health` follows the monitoring-plugin convention instead (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from dlq_tui import __version__
from dlq_tui.config import (
    DEFAULT_MIGRATE_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    DsnChoice,
    Overrides,
    SettingFault,
    parse_seconds,
    resolve_start,
    resolve_timeout,
    settings_for,
)
from dlq_tui.db.connect import is_hot_standby, standby_refusal
from dlq_tui.db.deadline import Deadline
from dlq_tui.db.dsn import describe_target, mask_dsn, scrub
from dlq_tui.db.errors import ConnectionFault, classify_connection_error, connection_errors, first_line
from dlq_tui.profiles import ConfigFault

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_FAULT = 2


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before or after the subcommand (`dlq-tui --dsn X check` == `dlq-tui check --dsn X`)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--dsn",
        default=default,
        help="PostgreSQL connection string (URI or key=value). Default: see README, Connections.",
    )
    parser.add_argument(
        "--config", default=default, metavar="PATH", help="config file (default: $XDG_CONFIG_HOME/dlq-tui/config.toml)"
    )
    parser.add_argument("--profile", default=default, metavar="NAME", help="the config file's profile to use")
    parser.add_argument(
        "--sensors", default=default, metavar="PATH", help="the processor's sensors.toml (default: its own lookup)"
    )
    parser.add_argument("--sensor", default=default, metavar="NAME", help="a [[sensor]] of sensors.toml: its own db")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help="overall time limit of check, health, analyze and the app's start "
        f"(default: DLQ_TUI_TIMEOUT, else {DEFAULT_TIMEOUT_S:g}; 0: none)",
    )


def _seconds(raw: str) -> float:
    try:
        return parse_seconds(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lock_ttl(raw: str) -> int:
    """--lock-ttl: whole minutes in the range a claim accepts, checked as text first (int() of a 5,000-digit
    argument would fail with Python's own message)."""
    from dlq_tui.db.triage import LOCK_TTL_MAX_MINUTES

    digits = raw.strip()
    fits = digits.isascii() and digits.isdigit() and len(digits) <= len(str(LOCK_TTL_MAX_MINUTES))
    if fits and 1 <= int(digits) <= LOCK_TTL_MAX_MINUTES:
        return int(digits)
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    raise argparse.ArgumentTypeError(f"expected whole minutes from 1 to {LOCK_TTL_MAX_MINUTES}, got {shown!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlq-tui",
        description="See and triage a PostgreSQL dead-letter queue (schema v7) from a terminal.",
    )
    parser.add_argument("--version", action="version", version=f"dlq-tui {__version__}")
    _common_options(parser, suppress=False)
    app = parser.add_argument_group("the app")
    app.add_argument("--demo", action="store_true", help="migrate the database and fill it with demo events when empty")
    app.add_argument("--read-only", action="store_true", help="open a read-only database session; no actions")
    app.add_argument("--operator", default=None, help="name written in the audit trail (default: login name)")
    app.add_argument(
        "--refresh", type=float, default=None, metavar="SECONDS", help="health refresh interval (default 5)"
    )
    app.add_argument(
        "--lock-ttl",
        type=_lock_ttl,
        default=None,
        metavar="MINUTES",
        help="claim lock lifetime, at most a week (default 30)",
    )
    from dlq_tui.commands.health import add_threshold_options

    add_threshold_options(parser, title="the app's health thresholds (as `health` takes them; 'off' disables a level)")
    mig = parser.add_argument_group("one-shot migration")
    mig.add_argument("--migrate", action="store_true", help="upgrade the database to schema v7 and exit")
    mig.add_argument("--dry-run", action="store_true", help="with --migrate: print the SQL, change nothing")
    mig.add_argument("--online", action="store_true", help="with --migrate: short locks, batched, resumable")
    mig.add_argument("--batch-size", type=int, default=10_000, help="with --online: rows per backfill batch")
    mig.add_argument("--max-rate", type=float, default=None, metavar="ROWS_PER_S", help="with --online: throttle")
    mig.add_argument(
        "--migrate-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"overall time limit of --migrate (default: DLQ_TUI_MIGRATE_TIMEOUT, else {DEFAULT_MIGRATE_TIMEOUT_S:g}; "
        "0: none)",
    )

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="is the schema current (v7)? exit 0 only when it is")
    _common_options(check, suppress=True)
    check.add_argument(
        "--strict", action="store_true", help="data notes (rows without checksum or key, duplicates) fail too"
    )
    health = sub.add_parser("health", help="health figures for scripts and alerting (0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN)")
    _common_options(health, suppress=True)
    health.add_argument("--json", action="store_true", help="one JSON object")
    add_threshold_options(health)
    analyze = sub.add_parser("analyze", help="failure-pattern analysis")
    _common_options(analyze, suppress=True)
    analyze.add_argument("--json", action="store_true", help="one JSON object")
    from dlq_tui.commands.redrive import add_options as add_redrive_options

    redrive = sub.add_parser("redrive", help="repair dead letters and redrive them into raw_events (for cron)")
    _common_options(redrive, suppress=True)
    add_redrive_options(redrive)
    purge = sub.add_parser("purge", help="delete resolved events older than DAYS days, in short batches")
    _common_options(purge, suppress=True)
    from dlq_tui.commands.purge import add_purge_options

    add_purge_options(purge)
    from dlq_tui.commands.search import add_search_options

    search = sub.add_parser("search", help="events whose payload matches QUERY (0 matches, 1 none, 2 bad query)")
    _common_options(search, suppress=True)
    add_search_options(search)
    config = sub.add_parser("config", help="the config file: `config check` validates it")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    _common_options(
        config_sub.add_parser("check", help="list every problem of the config file, with its line"), suppress=True
    )
    return parser


def _binding_ids() -> frozenset[str]:
    from dlq_tui.ui.keymap import binding_ids

    return binding_ids()


def resolve_database(choice: DsnChoice, *, demo: bool = False) -> tuple[str, bool]:
    """The DSN to use and whether it is the embedded server (started here on demand)."""
    if choice.dsn is not None:
        return choice.dsn, False
    from dlq_tui.db.embedded import embedded_dsn

    return embedded_dsn(), True


def fail(message: str, code: int = EXIT_FAULT) -> int:
    # One line whatever the message holds: a stray newline would read as two faults.
    print(f"dlq-tui: {' '.join(message.split())}", file=sys.stderr)
    return code


def _fault_line(exc: BaseException, dsn: str) -> tuple[str, int]:
    """The line and exit code for a connection-class exception that reached the top.

    Commands handle their own faults; this is the net under them, so that no connection problem ever
    ends in a traceback. Exceptions that are not connection problems say "database error" (exit 1).
    """
    line = classify_connection_error(exc, dsn)
    code = EXIT_FAULT
    if line is None:
        line, code = scrub(f"database error: {first_line(exc)}", dsn), EXIT_PROBLEM
    return line, code


WRITE_COMMANDS = frozenset({"redrive", "purge"})


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dry_run and not args.migrate:
        parser.error("--dry-run goes with --migrate")
    if args.online and not args.migrate:
        parser.error("--online goes with --migrate")
    if args.migrate and args.command:
        parser.error("--migrate cannot be combined with a command")
    if args.migrate and args.timeout is not None:
        parser.error("--timeout does not apply to --migrate: use --migrate-timeout")
    if args.migrate_timeout is not None and not args.migrate:
        parser.error("--migrate-timeout goes with --migrate")
    if args.command == "redrive":
        from dlq_tui.commands.redrive import check_options

        check_options(parser, args)
    if args.command == "purge":
        from dlq_tui.commands.purge import usage_problem

        # Before the database is resolved: a bad DAYS must not start the embedded server first.
        if (problem := usage_problem(args)) is not None:
            return fail(problem)
    if args.command == "search":
        from dlq_tui.commands.search import query_problem

        # Before the database is resolved: a bad query must not start the embedded server first.
        if (problem := query_problem(args)) is not None:
            return fail(problem)
    if args.demo and args.read_only:
        # Before the database is even resolved: the embedded default would create its database first.
        return fail(
            "--demo writes to the database (it migrates it and adds demo events) and --read-only refuses "
            "every write: use one or the other; nothing was changed"
        )

    if args.command == "config":
        from dlq_tui.commands.config_check import run_config_check

        return run_config_check(args.config)

    try:
        app = args.command is None and not args.migrate
        # Only the app has keys to remap: the one-shot commands do not import the UI to check their ids.
        config, profile, choice = resolve_start(args, binding_ids=_binding_ids if app else None)
        if args.command == "search":
            from dlq_tui.commands.search import expand_query

            # Before the database is resolved, as a bad query is: `@name` is known from the config file alone.
            if (problem := expand_query(args, config.searches if config else {})) is not None:
                return fail(problem)
        if args.migrate:
            limit = resolve_timeout(args.migrate_timeout, "DLQ_TUI_MIGRATE_TIMEOUT", DEFAULT_MIGRATE_TIMEOUT_S)
        elif args.command in WRITE_COMMANDS:
            # Batch writes for cron may rightly run long: only an explicit --timeout bounds them.
            limit = args.timeout or None
        else:
            limit = resolve_timeout(args.timeout, "DLQ_TUI_TIMEOUT", DEFAULT_TIMEOUT_S)
        dsn, embedded = resolve_database(choice, demo=args.demo)
    except (ConnectionFault, SettingFault, ConfigFault) as exc:
        # `health` speaks the monitoring-plugin convention: a database it cannot read is UNKNOWN (3).
        if args.command != "health":
            return fail(str(exc), EXIT_FAULT)
        from dlq_tui.commands.health import report_unknown

        return report_unknown(str(exc), args, args.dsn, plugin_line=False)

    # A hot standby refuses every write with its own raw error: the one-shot writers say so first, in one
    # line; the app opens read-only. Other commands only read.
    writer = "--migrate" if args.migrate else "--demo" if args.demo else args.command
    if writer not in WRITE_COMMANDS | {"--migrate", "--demo"}:
        writer = None
    deadline = Deadline(limit, "--migrate-timeout" if args.migrate else "--timeout")
    deadline.on_stuck = lambda: _give_up(deadline, dsn, args)
    deadline.start()
    try:
        # Inside the deadline: a server that accepts and never answers must not hang the question.
        standby = is_hot_standby(dsn) if writer or args.command is None else False
        if standby and writer:
            return fail(standby_refusal(writer, dsn))
        if args.migrate:
            from dlq_tui.commands.migrate import run_migrate

            return run_migrate(
                dsn,
                dry_run=args.dry_run,
                online=args.online,
                batch_size=args.batch_size,
                max_rate=args.max_rate,
                deadline=deadline,
            )
        if args.command == "check":
            from dlq_tui.commands.check import run_check

            return run_check(dsn, strict=args.strict, deadline=deadline)
        if args.command == "health":
            from dlq_tui.commands.health import run_health

            if profile is not None:
                args.base_thresholds = profile.thresholds
            return run_health(dsn, args, deadline=deadline)
        if args.command == "analyze":
            from dlq_tui.commands.analyze import run_analyze

            return run_analyze(dsn, as_json=args.json, deadline=deadline)
        if args.command == "search":
            from dlq_tui.commands.search import run_search

            return run_search(dsn, args, deadline=deadline)
        if args.command == "redrive":
            from dlq_tui.commands.redrive import run_redrive

            return run_redrive(dsn, args)
        if args.command == "purge":
            from dlq_tui.commands.purge import run_purge

            return run_purge(dsn, args)
        from dlq_tui.commands.health import threshold_flags

        overrides = Overrides(args.read_only, args.operator, args.refresh, args.lock_ttl, threshold_flags(args))
        settings = settings_for(
            dsn, embedded=embedded, profile=profile, overrides=overrides, config=config, standby=standby
        )
        if args.demo and settings.read_only:
            return fail(f"--demo writes to the database and profile {profile.name if profile else ''} is read_only")
        from dlq_tui.commands.app import run_app

        return run_app(settings, demo=args.demo, deadline=deadline, config=config, overrides=overrides)
    except ConnectionFault as exc:
        return fail(str(exc))
    except connection_errors() as exc:
        return fail(*_fault_line(exc, dsn))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    finally:
        deadline.stop()


def _give_up(deadline: Deadline, dsn: str, args: argparse.Namespace) -> None:
    """The command did not end although its connections were cut: say why, and end the process."""
    line = deadline.describe(describe_target(dsn).label())
    if args.command == "health":
        from dlq_tui.commands.health import report_unknown

        code = report_unknown(line, args, dsn)
    else:
        code = fail(line)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the main thread is blocked where no exception can reach it


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


__all__ = ["main", "mask_dsn", "run"]
