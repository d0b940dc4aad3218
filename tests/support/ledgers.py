"""Ledgers for tests: a migrated ledger on SQLite, PostgreSQL and MariaDB, cloned per test.

Every test that takes ``ledger`` (or ``service``, ``cli``) runs once per backend,
on a database of its own: a clone of a ledger migrated once per session
(:class:`LedgerTemplate`), kept on tmpfs when there is room.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import models
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import create_engine
from ovh_credit_plugin.service import CreditService
from tests.support import dbservers
from tests.support.clock import TEST_NOW

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


VOUCHERS = {
    "vouchers": [
        {
            "code": "WELCOME-2026",
            "amount": "50.00",
            "currency": "EUR",
            "status": "active",
            "valid_from": None,
            "valid_until": None,
            "validity_days": 90,
            "products": [],
            "max_redemptions": None,
            "redemptions": 0,
            "description": "Welcome voucher",
        },
        {
            "code": "GPU-ONLY",
            "amount": "20.00",
            "currency": "EUR",
            "status": "active",
            "valid_from": None,
            "valid_until": "2027-01-01T00:00:00Z",
            "validity_days": None,
            "products": ["gpu"],
            "max_redemptions": 1,
            "redemptions": 0,
            "description": "GPU trial",
        },
        {
            "code": "REVOKED-1",
            "amount": "10.00",
            "currency": "EUR",
            "status": "revoked",
            "products": [],
        },
        {
            "code": "YEN-1000",
            "amount": "1000",
            "currency": "JPY",
            "status": "active",
            "products": [],
        },
    ]
}


def invoice(project: str, invoice_id: str, *amounts: str, issued_at: dt.datetime | str,
            currency: str = "EUR") -> models.Invoice:
    """An invoice of ``project`` with one ``compute`` line per amount (ids l1, l2...)."""
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": currency,
        "issued_at": issued_at if isinstance(issued_at, str) else issued_at.isoformat(),
        "lines": [{"id": f"l{n}", "product": "compute", "amount": amount}
                  for n, amount in enumerate(amounts, start=1)],
    })


BACKENDS = ("sqlite", "postgresql", "mariadb")
# CI sets this: a database server that cannot be started is then a failure, not a skip.
REQUIRE_DATABASES = os.environ.get("OVH_CREDIT_REQUIRE_DATABASES") == "1"
# Where throwaway servers and SQLite ledgers live (default: /dev/shm when it has room).
SCRATCH_ENV = "OVH_CREDIT_TEST_SCRATCH"
_SCRATCH_MIN_FREE = 1 << 30


def scratch_root() -> Path:
    """A private directory for the session's database files.

    On tmpfs when there is room: the throwaway servers run with fsync off,
    but SQLite does not, and CREATE DATABASE writes whole files; on tmpfs
    all of that is memory speed. Never under pytest's basetemp: a concurrent
    pytest session resets ``/tmp/pytest-of-<user>`` to mode 0700, which cuts
    the ``postgres`` user off from its own data directory mid-run.
    """
    configured = os.environ.get(SCRATCH_ENV)
    candidates = [configured] if configured else ["/dev/shm", None]
    for directory in candidates:
        if directory is not None:
            try:
                stat = os.statvfs(directory)
            except OSError:
                continue
            if stat.f_bavail * stat.f_frsize < _SCRATCH_MIN_FREE and not configured:
                continue
            if not os.access(directory, os.W_OK | os.X_OK):
                continue
        root = Path(tempfile.mkdtemp(prefix="ovh-credit-tests-", dir=directory))
        root.chmod(0o711)  # the postgres user must reach its data directory
        return root
    raise RuntimeError(f"{SCRATCH_ENV}={configured!r} is not a writable directory")


def _copy_sqlite(source: Path, target: Path) -> None:
    """``target`` made a copy of the SQLite database ``source`` (SQLite's backup API)."""
    original, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        original.backup(copy)
    finally:
        copy.close()
        original.close()


def sqlite_backup(ledger: Path, target: Path) -> Path:
    """docs/operations.md's SQLite backup: ``sqlite3 LEDGER "VACUUM INTO 'TARGET'"``
    (through Python's sqlite3 where the shell is not installed); ``target``."""
    if shutil.which("sqlite3"):
        done = subprocess.run(["sqlite3", str(ledger), f"VACUUM INTO '{target}'"],
                              capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done
    else:  # the same statement
        source = sqlite3.connect(ledger)
        try:
            source.execute("VACUUM INTO ?", (str(target),))
        finally:
            source.close()
    return target


def sqlite_restore(ledger: Path, backup: Path) -> None:
    """docs/operations.md's SQLite restore, no process holding the ledger: its ``-wal``
    and ``-shm`` deleted (SQLite would replay a stale ``-wal`` into the restored file),
    the backup copied to it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, ledger)


class LedgerTemplate:
    """A ledger migrated once per session, cloned for every test that wants one.

    Migrating costs a few hundred milliseconds per database; a clone costs a
    few: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
    PostgreSQL, the template's own ``SHOW CREATE TABLE`` statements (foreign
    keys and checks included, which ``CREATE TABLE ... LIKE`` would drop) and
    rows replayed into a new schema on MariaDB. Every clone is a database of
    its own, dropped when its test ends: tests stay isolated.
    """

    def __init__(self, backend: str, pool: ServerPool) -> None:
        self.backend = backend
        self._pool = pool
        self._name = f"tpl_{uuid.uuid4().hex[:12]}"
        self._admin: Any = None
        self._mariadb_script: list[str] = []
        if backend == "sqlite":
            self._file = pool.scratch / "sqlite" / f"{self._name}.sqlite"
            self._file.parent.mkdir(exist_ok=True)
            url = f"sqlite:///{self._file}"
            migrated = os.environ.get("OVH_CREDIT_TEST_MIGRATED_SQLITE")
            if migrated:
                # The mutation run starts a test session per mutant, thousands of
                # them: tools/mutation.py migrates one ledger before mutmut starts,
                # with the code as it is, and every session starts from a copy.
                _copy_sqlite(Path(migrated), self._file)
                return
        else:
            url = dbservers.create_database(pool.get(backend), self._name)
        engine = create_engine(url)
        try:
            migration.upgrade(engine)
        finally:
            engine.dispose()
        if backend == "mariadb":
            self._mariadb_script = self._mariadb_copy_script()

    # -- per backend ----------------------------------------------------------

    def _server(self) -> dbservers.DatabaseServer:
        return self._pool.get(self.backend)

    def _admin_connection(self) -> Any:
        if self._admin is None:
            server = self._server()
            if self.backend == "postgresql":
                import psycopg

                self._admin = psycopg.connect(
                    host=server.host,
                    port=server.port,
                    user=server.admin_user,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=10,
                )
            else:
                import pymysql

                self._admin = pymysql.connect(
                    host=server.host,
                    port=server.port,
                    user=server.admin_user,
                    autocommit=True,
                    connect_timeout=10,
                    read_timeout=120,
                    write_timeout=120,
                )
                with self._admin.cursor() as cur:
                    cur.execute("SET SESSION lock_wait_timeout = 30")
        return self._admin

    def _mariadb_copy_script(self) -> list[str]:
        """Statements that rebuild the migrated schema and its rows in the current database."""
        script = ["SET foreign_key_checks = 0"]
        with self._admin_connection().cursor() as cur:
            cur.execute(f"SHOW FULL TABLES FROM `{self._name}` WHERE Table_type = 'BASE TABLE'")
            tables = sorted(row[0] for row in cur.fetchall())
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE `{self._name}`.`{table}`")
                script.append(cur.fetchone()[1])
            for table in tables:
                cur.execute(f"SELECT COUNT(*) FROM `{self._name}`.`{table}`")
                if cur.fetchone()[0]:  # the alembic version row, any seeded data
                    script.append(f"INSERT INTO `{table}` SELECT * FROM `{self._name}`.`{table}`")
        script.append("SET foreign_key_checks = 1")
        return script

    # -- clones ------------------------------------------------------------------

    def clone(self) -> str:
        """A new database holding exactly the migrated template; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        if self.backend == "sqlite":
            target = self._pool.scratch / "sqlite" / f"{name}.sqlite"
            _copy_sqlite(self._file, target)
            return f"sqlite:///{target}"
        server = self._server()
        if self.backend == "postgresql":
            self._admin_connection().execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{self._name}" OWNER "{server.user}" '
                "STRATEGY FILE_COPY".encode()
            )
        else:
            with self._admin_connection().cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
                cur.execute(f"USE `{name}`")
                for statement in self._mariadb_script:
                    cur.execute(statement)
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{server.user}'@'{server.host}'"
                )
        return server.url_for(name)

    def drop(self, url: str) -> None:
        """Drop a clone, whatever connections its test left behind."""
        name = sa.make_url(url).database or ""
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(name + suffix).unlink(missing_ok=True)
            return
        if not name.startswith("t_"):
            raise ValueError(f"not a clone: {url}")
        try:
            if self.backend == "postgresql":
                self._admin_connection().execute(
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode()
                )
            else:
                with self._admin_connection().cursor() as cur:
                    # An open transaction's metadata locks would make DROP wait.
                    cur.execute(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = %s AND id <> CONNECTION_ID()",
                        (name,),
                    )
                    for (ident,) in cur.fetchall():
                        with contextlib.suppress(Exception):
                            cur.execute(f"KILL CONNECTION {int(ident)}")
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        except Exception as error:  # a leftover database only costs space
            warnings.warn(f"could not drop test database {name}: {error}", stacklevel=2)

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None


class ServerPool:
    """Throwaway PostgreSQL and MariaDB servers, started on first use, one per session.

    Also holds the session's migrated ledger templates, one per backend.
    """

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._servers: dict[str, dbservers.DatabaseServer] = {}
        self._templates: dict[str, LedgerTemplate] = {}

    def get(self, kind: str) -> dbservers.DatabaseServer:
        if kind not in self._servers:
            available = {
                "postgresql": dbservers.postgresql_available,
                "mariadb": dbservers.mariadb_available,
            }[kind]()
            if not available:
                message = (
                    f"{kind} server binaries are not installed "
                    "(bash .ci/install-db-servers.sh installs them)"
                )
                if REQUIRE_DATABASES:
                    pytest.fail(message)
                pytest.skip(message)
            start = dbservers.start_postgresql if kind == "postgresql" else dbservers.start_mariadb
            self._servers[kind] = start(self.scratch / kind)
        return self._servers[kind]

    def template(self, backend: str) -> LedgerTemplate:
        if backend not in self._templates:
            self._templates[backend] = LedgerTemplate(backend, self)
        return self._templates[backend]

    def stop_all(self) -> None:
        for template in self._templates.values():
            template.close()
        for server in self._servers.values():
            server.stop()


def new_database_url(backend: str, pool: ServerPool, tmp_path: Path) -> str:
    """A fresh, empty database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/ledger-{uuid.uuid4().hex[:8]}.sqlite"
    return dbservers.create_database(pool.get(backend), f"t_{uuid.uuid4().hex[:16]}")


@dataclass
class Ledger:
    """A migrated ledger on a real database, with its config file."""

    backend: str
    url: str
    config: Path
    vouchers: Path

    @property
    def path(self) -> Path:
        assert self.backend == "sqlite", "only a SQLite ledger is a file"
        return Path(self.url.removeprefix("sqlite:///"))

    def service(self, *, clock: Callable[[], dt.datetime] | None = None,
                **cloud_credit: Any) -> CreditService:
        """A service on this ledger's config file, ``[cloud_credit]`` options overridden.

        Its clock is the tests' (:data:`TEST_NOW`) unless ``clock`` is given: a
        test that seeds the ledger for a server running on the wall clock (the
        REST API, CloudKitty) passes ``inputs.now``.
        """
        from oslo_config import cfg

        from ovh_credit_plugin.conf import register_opts

        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[str(self.config)])
        for name, value in cloud_credit.items():
            conf.set_override(name, value, "cloud_credit")
        return CreditService.from_conf(conf, clock=clock or (lambda: TEST_NOW))

    def checksum(self) -> str:
        """A digest of every row of every table: 'nothing was written' made checkable."""
        return database_checksum(self.url)


def database_checksum(url: str) -> str:
    """Digest of the whole database: SQLite's full dump, or every column and row of every table.

    No reflection on the servers (it costs a tenth of a second): one query of
    ``information_schema.columns``, then every table's rows ordered by all
    their columns.
    """
    digest = hashlib.sha256()
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for line in conn.iterdump():
                digest.update(line.encode())
        finally:
            conn.close()
        return digest.hexdigest()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    schema = "current_schema()" if engine.dialect.name == "postgresql" else "DATABASE()"
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect() as conn:
            tables: dict[str, list[tuple[Any, ...]]] = {}
            for row in conn.execute(
                sa.text(
                    "SELECT table_name, column_name, data_type, is_nullable "
                    f"FROM information_schema.columns WHERE table_schema = {schema} "
                    "ORDER BY table_name, ordinal_position"
                )
            ):
                tables.setdefault(row[0], []).append(tuple(row[1:]))
            for name, columns in sorted(tables.items()):
                digest.update(repr((name, columns)).encode())
                order = ", ".join(str(n) for n in range(1, len(columns) + 1))
                for row in conn.execute(sa.text(f"SELECT * FROM {quote(name)} ORDER BY {order}")):
                    digest.update(repr(tuple(row)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()


#: ``[cloud_credit]`` lines selling credit in the currencies the tests order in, each
#: within the defaults' bounds (5 to 100000). GBP is left out: no credit is sold in it.
PURCHASE_LIMITS = (
    "purchase_min_amount = EUR:5,USD:5,CHF:5,JPY:5,KWD:5\n"
    "purchase_max_amount = EUR:100000,USD:100000,CHF:100000,JPY:100000,KWD:100000\n"
)


def write_config(path: Path, url: str, vouchers: Path, extra: str = "") -> Path:
    path.write_text(
        "[cloud_credit]\n"
        f"connection = {url}\n"
        "payment_url_template = https://pay.example/orders/{order_id}\n"
        + PURCHASE_LIMITS +
        "[voucher_catalog]\n"
        "driver = file\n"
        f"file_path = {vouchers}\n" + extra
    )
    return path


def new_ledger(backend: str, pool: ServerPool, directory: Path) -> Ledger:
    """A migrated ledger of its own (a clone of the session's template), config in ``directory``.

    Give it back with :func:`drop_ledger`; the ``ledger`` fixture does both.
    """
    url = pool.template(backend).clone()
    vouchers = directory / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = write_config(directory / "ovh-credit.conf", url, vouchers)
    return Ledger(backend=backend, url=url, config=config, vouchers=vouchers)


@contextlib.contextmanager
def engine_of(ledger: Ledger) -> Iterator[sa.Engine]:
    """The plugin's engine on ``ledger`` (SQLite foreign keys on), disposed after."""
    engine = create_engine(ledger.url)
    try:
        yield engine
    finally:
        engine.dispose()


def unmigrated_ledger(backend: str, pool: ServerPool, directory: Path) -> Ledger:
    """An empty database with its config file: for tests that migrate it revision by
    revision (data written at one revision, then the next ones run on it)."""
    url = new_database_url(backend, pool, directory)
    vouchers = directory / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = write_config(directory / "ovh-credit.conf", url, vouchers)
    return Ledger(backend=backend, url=url, config=config, vouchers=vouchers)


def drop_ledger(ledger: Ledger, pool: ServerPool) -> None:
    pool.template(ledger.backend).drop(ledger.url)


