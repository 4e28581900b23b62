"""`dlq-tui purge --resolved-older-than DAYS [--dry-run] [--batch-size N]`: the retention chore.

Deletes resolved events whose resolved_at is more than DAYS days before the server's clock, in short batches
(dlq_tui.db.purge), with progress on a terminal and a summary line. `--dry-run` counts and changes nothing.
Exit codes: 0 done (or nothing to do); 1 the database refused or stopped the purge (batches committed before
stay deleted); 2 bad arguments, --read-only, or the database could not be reached.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from dlq_tui.db.connect import open_checked
from dlq_tui.db.dsn import describe_target, is_sqlite
from dlq_tui.db.errors import ConnectionFault, connection_errors, explain_connection_error

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from dlq_tui.db.purge import PurgePlan

EXIT_OK, EXIT_FAILED, EXIT_FAULT, EXIT_INTERRUPTED = 0, 1, 2, 130
PROGRESS_EVERY_S = 5.0  # without a terminal (a log file, cron mail) one progress line this often at most
READ_ONLY_REFUSAL = "purge deletes events: it does not run with --read-only"


def add_purge_options(parser: argparse.ArgumentParser) -> None:
    # Checked by run_purge, not by argparse: a bad value gets one line (argparse prints the usage too).
    parser.add_argument(
        "--resolved-older-than",
        dest="purge_days",
        required=True,
        metavar="DAYS",
        help="delete events resolved more than DAYS days ago (a positive whole number)",
    )
    parser.add_argument("--dry-run", dest="purge_dry_run", action="store_true", help="count only; delete nothing")
    parser.add_argument(
        "--batch-size",
        dest="purge_batch_size",
        default=None,
        metavar="N",
        help="rows per transaction (default 5000)",
    )
    parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _say(message: str) -> None:
    from dlq_tui.text import plain

    print(f"dlq-tui: {' '.join(plain(message, limit=500).split())}", file=sys.stderr)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 'es' if word.endswith('ch') else 's'}"


def _batch_size(raw: str | None) -> int:
    from dlq_tui.db.purge import BATCH_SIZE

    if raw is None:
        return BATCH_SIZE
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 1_000_000:
        raise ValueError(f"--batch-size: expected a whole number from 1 to 1000000, got {raw!r}")
    return int(value)


class Progress:
    """Rows deleted / total and the rate: rewritten in place on a terminal, else a line every few seconds."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self.every_s = 0.2 if self.tty else PROGRESS_EVERY_S
        self._last = time.monotonic()
        self._drawn = False

    def line(self, deleted: int, rate: float) -> str:
        share = f" ({100 * deleted / self.total:.0f}%)" if self.total else ""
        return f"  … {deleted:,} / {self.total:,} deleted{share} · {rate:,.0f} rows/s"

    def show(self, deleted: int, rate: float) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and deleted < self.total:
            return
        self._last = now
        text = self.line(deleted, rate)
        if self.tty:
            self.out.write(f"\r{text}\x1b[K")  # our own text: the one escape is ours, never database content
            self._drawn = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self._drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()


def _options(args: argparse.Namespace) -> tuple[int, int]:
    """DAYS and the batch size, checked; ValueError says which option is wrong and why (one line)."""
    from dlq_tui.db.purge import validate_days

    try:
        days = validate_days(args.purge_days)
    except ValueError as exc:
        raise ValueError(f"--resolved-older-than: {exc}") from None
    return days, _batch_size(args.purge_batch_size)


def usage_problem(args: argparse.Namespace) -> str | None:
    """The one line refusing these arguments, or None when purge may run."""
    try:
        _options(args)
    except ValueError as exc:
        return str(exc)
    if getattr(args, "read_only", False):
        return READ_ONLY_REFUSAL
    return None


def run_purge(dsn: str, args: argparse.Namespace) -> int:
    from dlq_tui.db.purge import PurgeFailed

    problem = usage_problem(args)
    if problem is not None:
        _say(problem)
        return EXIT_FAULT
    days, batch_size = _options(args)
    if is_sqlite(dsn):
        from dlq_tui.db.lite import Unavailable

        _say(str(Unavailable("purge")))
        return EXIT_FAULT
    try:
        engine = open_checked(dsn)
    except ConnectionFault as exc:
        _say(str(exc))
        return EXIT_FAULT
    run = _Run(engine, dsn, days, batch_size)
    try:
        return run.dry_run() if args.purge_dry_run else run.purge()
    except PurgeFailed as exc:
        run.finish()
        _say(f"purge stopped: {exc}")
        return EXIT_FAILED
    except connection_errors() as exc:
        run.finish()
        _say(f"{explain_connection_error(exc, dsn)}; {run.kept()}")
        return EXIT_FAULT
    except KeyboardInterrupt:
        run.finish()
        _say(f"interrupted; {run.kept()}; run the purge again to continue")
        return EXIT_INTERRUPTED
    finally:
        engine.dispose()


class _Run:
    def __init__(self, engine: Engine, dsn: str, days: int, batch_size: int) -> None:
        self.engine = engine
        self.dsn = dsn
        self.days = days
        self.batch_size = batch_size
        self.progress: Progress | None = None
        self.deleted = 0

    def kept(self) -> str:
        if not self.deleted:
            return "nothing was deleted"
        return f"{_plural(self.deleted, 'row')} deleted before {'stays' if self.deleted == 1 else 'stay'} deleted"

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.finish()

    def _plan(self) -> PurgePlan:
        from dlq_tui.db.purge import cutoff_for, plan

        return plan(self.engine, cutoff_for(self.engine, self.days))

    def _scope(self, found: PurgePlan) -> str:
        return f"resolved before {_when(found.cutoff)} (more than {_plural(self.days, 'day')} ago)"

    def _notes(self, found: PurgePlan) -> list[str]:
        lines = []
        if found.held:
            lines.append(
                f"  {_plural(found.held, 'more event')} {'holds' if found.held == 1 else 'hold'} a live processing "
                "lock: left alone"
            )
        if found.without_resolved_at:
            lines.append(
                f"  {_plural(found.without_resolved_at, 'resolved event')} without resolved_at: never purged "
                "(their age is unknown)"
            )
        return lines

    def dry_run(self) -> int:
        found = self._plan()
        print(f"Dry run on {describe_target(self.dsn).label()}: nothing is deleted.")
        if not found.count:
            print(f"Nothing to purge: no event was {self._scope(found)}.")
        else:
            print(f"Would purge {_plural(found.count, 'event')} {self._scope(found)}")
            print(f"  resolved_at from {_when(found.oldest_resolved_at)} to {_when(found.newest_resolved_at)}")
            batches = -(-found.count // self.batch_size)
            print(f"  in {_plural(batches, 'batch')} of at most {self.batch_size:,} rows, one transaction each")
        for line in self._notes(found):
            print(line)
        return EXIT_OK

    def purge(self) -> int:
        from dlq_tui.db.purge import PurgeProgress, purge

        found = self._plan()
        if not found.count:
            print(f"Nothing to purge: no event was {self._scope(found)}.")
            for line in self._notes(found):
                print(line)
            return EXIT_OK
        print(
            f"Purging {_plural(found.count, 'event')} {self._scope(found)} from {describe_target(self.dsn).label()}, "
            f"{self.batch_size:,} per transaction",
            flush=True,
        )
        self.progress = Progress(found.count, sys.stdout)

        def on_batch(progress: PurgeProgress) -> None:
            self.deleted = progress.deleted
            assert self.progress is not None
            self.progress.show(progress.deleted, progress.rate)

        result = purge(self.engine, found.cutoff, batch_size=self.batch_size, on_batch=on_batch)
        self.finish()
        print(
            f"✓ Purged {_plural(result.deleted, 'event')} in {_plural(result.batches, 'batch')}, "
            f"{result.elapsed_s:.1f} s ({result.rate:,.0f} rows/s)"
        )
        if result.left:
            print(
                f"  {_plural(result.left, 'event')} {self._scope(found)} left: locked by another transaction or "
                "holding a live processing lock; run the purge again later"
            )
        return EXIT_OK
