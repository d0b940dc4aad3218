"""Shared fixtures: a migrated ledger on SQLite, PostgreSQL and MariaDB; the CLI in-process.

Every test that takes ``ledger`` (or ``service``, ``cli``) runs once per backend.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService
from tests import dbservers

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


BACKENDS = ("sqlite", "postgresql", "mariadb")
# CI sets this: a database server that cannot be started is then a failure, not a skip.
REQUIRE_DATABASES = os.environ.get("OVH_CREDIT_REQUIRE_DATABASES") == "1"


class ServerPool:
    """Throwaway PostgreSQL and MariaDB servers, started on first use, one per session."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._servers: dict[str, dbservers.DatabaseServer] = {}

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
            self._servers[kind] = start(self._base / kind)
        return self._servers[kind]

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("dbservers"))
    yield pool
    pool.stop_all()


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

    def service(self) -> CreditService:
        from oslo_config import cfg

        from ovh_credit_plugin.conf import register_opts

        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[str(self.config)])
        return CreditService.from_conf(conf)

    def checksum(self) -> str:
        """A digest of every row of every table: 'nothing was written' made checkable."""
        return database_checksum(self.url)


def database_checksum(url: str) -> str:
    """Digest of the whole database: SQLite's full dump, or every row of every table."""
    digest = hashlib.sha256()
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for line in conn.iterdump():
                digest.update(line.encode())
        return digest.hexdigest()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for name in sorted(meta.tables):
                table = meta.tables[name]
                digest.update(name.encode())
                order = list(table.primary_key.columns) or list(table.columns)
                for row in conn.execute(sa.select(table).order_by(*order)):
                    digest.update(repr(tuple(row)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()


def write_config(path: Path, url: str, vouchers: Path, extra: str = "") -> Path:
    path.write_text(
        "[cloud_credit]\n"
        f"connection = {url}\n"
        "payment_url_template = https://pay.example/orders/{order_id}\n"
        "[voucher_catalog]\n"
        "driver = file\n"
        f"file_path = {vouchers}\n" + extra
    )
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger(tmp_path: Path, backend: str, server_pool: ServerPool) -> Ledger:
    url = new_database_url(backend, server_pool, tmp_path)
    vouchers = tmp_path / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = write_config(tmp_path / "ovh-credit.conf", url, vouchers)
    engine = create_engine(url)
    migration.upgrade(engine)
    engine.dispose()
    return Ledger(backend=backend, url=url, config=config, vouchers=vouchers)


@pytest.fixture
def service(ledger: Ledger) -> Iterator[CreditService]:
    svc = ledger.service()
    yield svc
    report = svc.audit()
    svc.close()
    assert report.ok, report.violations


@pytest.fixture
def database(ledger: Ledger) -> Iterator[Database]:
    db = Database(create_engine(ledger.url))
    yield db
    db.dispose()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    def __init__(
        self, ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self._ledger = ledger
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str = "", json_output: bool = True) -> Result:
        self._capsys.readouterr()
        self._monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        argv = ["--config-file", str(self._ledger.config), *args]
        if json_output and "-f" not in args and args[:2] != ("db", "upgrade"):
            argv += ["-f", "json"]
        code = main(argv)
        out, err = self._capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str, stdin: str = "") -> Any:
        result = self(*args, stdin=stdin)
        assert result.code == 0, result.stderr
        assert result.stderr == ""
        return result.json()


@pytest.fixture
def cli(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(ledger, capsys, monkeypatch)
