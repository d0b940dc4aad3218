"""Shared fixtures: a migrated ledger on a real SQLite file, the CLI in-process."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService

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


@dataclass
class Ledger:
    """A migrated ledger on a real SQLite file, with its config file."""

    path: Path
    url: str
    config: Path
    vouchers: Path

    def service(self) -> CreditService:
        from oslo_config import cfg

        from ovh_credit_plugin.conf import register_opts

        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[str(self.config)])
        return CreditService.from_conf(conf)

    def checksum(self) -> str:
        """A digest of every row of every table: 'nothing was written' made checkable."""
        digest = hashlib.sha256()
        with sqlite3.connect(self.path) as conn:
            for line in conn.iterdump():
                digest.update(line.encode())
        return digest.hexdigest()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    path = tmp_path / "ledger.sqlite"
    url = f"sqlite:///{path}"
    vouchers = tmp_path / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = tmp_path / "ovh-credit.conf"
    config.write_text(
        "[cloud_credit]\n"
        f"connection = {url}\n"
        "payment_url_template = https://pay.example/orders/{order_id}\n"
        "[voucher_catalog]\n"
        "driver = file\n"
        f"file_path = {vouchers}\n"
    )
    engine = create_engine(url)
    migration.upgrade(engine)
    engine.dispose()
    return Ledger(path=path, url=url, config=config, vouchers=vouchers)


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
    def __init__(self, ledger: Ledger, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
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
def cli(ledger: Ledger, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(ledger, capsys, monkeypatch)
