"""The ``http`` catalog driver against a real HTTP(S) catalog on loopback.

Every fault ends in exactly one credit, or in a clear error with no credit
and no burnt voucher (a redemption the catalog committed is either granted
or left as a pending activation that the next run finishes).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trustme
from oslo_config import cfg

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService
from tests.support.catalog_server import CatalogServer, Fault, free_port, running
from tests.support.cli import Cli
from tests.support.ledgers import Ledger, write_config

TOKEN = "catalog-token-0123456789"
CODE = "WELCOME-2026"
SINGLE = "SINGLE-USE-1"
VOUCHERS = [
    {"code": CODE, "amount": "50.00", "currency": "EUR", "validity_days": 90,
     "description": "Welcome voucher"},
    {"code": SINGLE, "amount": "20.00", "currency": "EUR", "max_redemptions": 1,
     "valid_until": "2099-01-01T00:00:00Z", "products": ["gpu"], "description": "GPU trial"},
]
PUBLIC = exceptions.VoucherRefused.public_message


@pytest.fixture
def backend() -> str:
    # The network is under test here; the database rules run on every
    # backend in tests/service/test_vouchers.py.
    return "sqlite"


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as catalog:
        yield catalog


def conf_for(endpoint: str, **options: Any) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[])
    options.setdefault("auth_token", TOKEN)
    options.setdefault("timeout", 5.0)
    options.setdefault("retries", 3)
    conf.set_override("endpoint", endpoint, group="voucher_catalog")
    for name, value in options.items():
        conf.set_override(name, value, group="voucher_catalog")
    return conf


def driver_for(endpoint: str, **options: Any) -> HttpVoucherCatalog:
    return HttpVoucherCatalog(conf=conf_for(endpoint, **options), backoff_factor=0.01)


ServiceFactory = Callable[..., CreditService]


@pytest.fixture
def make_service(ledger: Ledger) -> Iterator[ServiceFactory]:
    made: list[CreditService] = []

    def make(endpoint: str, **options: Any) -> CreditService:
        service = CreditService(database=Database(create_engine(ledger.url)),
                                catalog=driver_for(endpoint, **options))
        made.append(service)
        return service

    yield make
    for service in made:
        report = service.audit()
        service.close()
        assert report.ok, report.violations


def rows(service: CreditService) -> dict[str, int]:
    def work(conn: sa.Connection) -> dict[str, int]:
        counts = {}
        for name, table in (("credits", schema.credits),
                            ("pending", schema.voucher_activations),
                            ("failed", schema.voucher_attempts)):
            query = sa.select(sa.func.count()).select_from(table)
            if name == "pending":
                query = query.where(table.c.status == "pending")
            if name == "failed":
                query = query.where(table.c.succeeded.is_(False))
            counts[name] = int(conn.execute(query).scalar_one())
        return counts

    return service.database.read(work)


NOTHING = {"credits": 0, "pending": 0, "failed": 0}


# -- the happy path ------------------------------------------------------------------


def test_activation_over_http(server: CatalogServer, make_service: ServiceFactory) -> None:
    service = make_service(server.url)
    credit = service.activate_voucher("p1", " welcome-2026", at=None)
    assert credit.total == Decimal("50.00")
    assert credit.source == CODE
    assert len(server.redemptions_of(CODE)) == 1
    assert {r.headers.get("X-Auth-Token") for r in server.calls()} == {TOKEN}
    assert [r.method for r in server.calls()] == ["GET", "POST"]
    assert rows(service) == {"credits": 1, "pending": 0, "failed": 0}


def test_cli_check_then_activate_over_http(
    server: CatalogServer, cli: Cli, ledger: Ledger
) -> None:
    ledger.config.write_text(
        "[cloud_credit]\n"
        f"connection = {ledger.url}\n"
        "[voucher_catalog]\n"
        "driver = http\n"
        f"endpoint = {server.url}\n"
        f"auth_token = {TOKEN}\n"
        "timeout = 5\n"
    )
    shown = cli.ok("voucher", "check", "single-use-1")
    assert (shown["code"], shown["amount"], shown["redeemable"]) == (SINGLE, "20.00", True)
    assert server.calls("POST") == []  # check never redeems
    credit = cli.ok("voucher", "activate", "p1", SINGLE)
    assert credit["total"] == "20.00"
    assert credit["products"] == ["gpu"]
    shown = cli.ok("voucher", "check", SINGLE)
    assert shown["redeemable"] is False
    assert shown["status"] == "exhausted"
    refused = cli("voucher", "activate", "p2", SINGLE)
    assert refused.code != 0
    assert refused.stderr.strip().splitlines() == [f"ovh-credit: {PUBLIC}"]
    assert len(server.redemptions_of(SINGLE)) == 1


# -- the deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["drip", "drip_headers"])
def test_slow_drip_answer_is_cut_at_the_deadline(
    server: CatalogServer, make_service: ServiceFactory, kind: str
) -> None:
    # 0.05 s per byte: each read gets a byte well within any read timeout,
    # so only the total deadline can stop it.
    server.inject(Fault(kind, method="GET", interval=0.05, times=10))
    service = make_service(server.url, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(base.CatalogUnavailable, match="within the 1 s deadline") as caught:
        service.activate_voucher("p1", CODE)
    elapsed = time.monotonic() - started
    # The deadline, plus the ledger's own work on a busy machine; without the
    # deadline the drip would last over ten seconds. The upper bound sits between
    # the two, far from both: a loaded CI machine must not fail a correct run.
    assert 0.9 <= elapsed < 5, elapsed
    assert CODE not in str(caught.value)
    assert server.calls("POST") == []
    assert rows(service) == NOTHING


def test_stalled_catalog_is_given_up_at_the_deadline(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("stall", method="GET", seconds=20.0, times=10))
    service = make_service(server.url, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(base.CatalogUnavailable, match="deadline"):
        service.activate_voucher("p1", CODE)
    # 1 s with the deadline, 20 s or more without: the bound sits far from both.
    assert time.monotonic() - started < 8
    # Half the deadline per attempt: the stall was retried once within it.
    assert len(server.calls("GET")) == 2
    assert rows(service) == NOTHING


def test_slow_drip_redemption_is_recovered_by_the_next_run(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    # The catalog commits, then drips its answer past the deadline.
    server.inject(Fault("drip", method="POST", interval=0.05))
    service = make_service(server.url, timeout=1.0)
    with pytest.raises(base.CatalogUnavailable, match="deadline"):
        service.activate_voucher("p1", CODE)
    assert len(server.redemptions_of(CODE)) == 1
    assert rows(service) == {"credits": 0, "pending": 1, "failed": 0}
    assert [p["code"] for p in service.pending_activations()] == [CODE]

    credit = service.activate_voucher("p1", CODE)
    assert credit.total == Decimal("50.00")
    assert len(server.redemptions_of(CODE)) == 1
    keys = {r.body["idempotency_key"] for r in server.calls("POST")}
    assert keys == {base.idempotency_key("p1", CODE)}
    assert rows(service) == {"credits": 1, "pending": 0, "failed": 0}


def test_one_deadline_covers_the_whole_activation(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    # A slow GET (just under its 2 s per attempt) leaves the POST only what
    # remains of the activation's 4 s budget: 4 s in all, where a deadline per
    # call would give 1.9 + 4 = 5.9 s. The bound sits a second from each.
    server.inject(Fault("stall", method="GET", seconds=1.9))
    server.inject(Fault("drip", method="POST", interval=0.05))
    service = make_service(server.url, timeout=4.0)
    started = time.monotonic()
    with pytest.raises(base.CatalogUnavailable, match="within the 4 s deadline"):
        service.activate_voucher("p1", CODE)
    elapsed = time.monotonic() - started
    assert 3.9 <= elapsed < 4.9, elapsed
    # The catalog committed before dripping: the next run finishes the job.
    assert service.activate_voucher("p1", CODE).total == Decimal("50.00")
    assert len(server.redemptions_of(CODE)) == 1


def test_an_expired_deadline_spares_a_connection_back_in_the_pool(
    server: CatalogServer,
) -> None:
    # One driver is shared by a host's worker threads. Activation A's GET
    # gives its connection back to the pool; B then takes it for a call
    # answered within B's own budget. A's deadline passing meanwhile must not
    # shut down what is now B's connection.
    catalog = driver_for(server.url, timeout=2.0, retries=0)
    outcome: dict[str, object] = {}
    a_got = threading.Event()

    def activation_a() -> None:
        with catalog.deadline():
            catalog.get(CODE)
            a_got.set()
            time.sleep(2.5)  # still running (a slow ledger...) when its 2 s pass

    def call_b() -> None:
        a_got.wait(5)
        time.sleep(1.5)
        # 0.8 s to answer, under B's 1 s per attempt; A's deadline falls inside.
        server.inject(Fault("stall", method="GET", seconds=0.8))
        try:
            outcome["b"] = catalog.get(CODE).code
        except base.CatalogError as error:
            outcome["b"] = error

    threads = [threading.Thread(target=activation_a), threading.Thread(target=call_b)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        catalog.close()
    assert outcome["b"] == CODE


# -- broken answers ------------------------------------------------------------------------


def test_truncated_answer_is_retried(server: CatalogServer, make_service: ServiceFactory) -> None:
    server.inject(Fault("truncate", method="GET"))
    server.inject(Fault("truncate", method="POST"))
    service = make_service(server.url)
    credit = service.activate_voucher("p1", CODE)
    assert credit.total == Decimal("50.00")
    assert len(server.calls("GET")) == 2
    assert len(server.calls("POST")) == 2  # the second got the committed redemption back
    assert len(server.redemptions_of(CODE)) == 1
    assert rows(service) == {"credits": 1, "pending": 0, "failed": 0}


def test_always_truncated_answer_is_a_clear_error(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("truncate", method="GET", times=100))
    service = make_service(server.url, retries=2)
    with pytest.raises(base.CatalogUnavailable, match="IncompleteRead"):
        service.activate_voucher("p1", CODE)
    assert len(server.calls("GET")) == 3
    assert server.calls("POST") == []
    assert rows(service) == NOTHING


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"code": "WELCOME-2026"}',
                                  b'{"code": "WELCOME-2026", "amount": -1}'])
def test_malformed_answer_means_no_redemption(
    server: CatalogServer, make_service: ServiceFactory, body: bytes
) -> None:
    server.inject(Fault("body", method="GET", body=body))
    service = make_service(server.url)
    with pytest.raises(base.CatalogProtocolError):
        service.activate_voucher("p1", CODE)
    assert server.calls("POST") == []
    assert server.redemptions_of(CODE) == []
    assert rows(service) == NOTHING


# -- the network -------------------------------------------------------------------------------


def test_connection_refused_is_a_clear_error(make_service: ServiceFactory) -> None:
    service = make_service(f"http://127.0.0.1:{free_port()}", retries=2)
    started = time.monotonic()
    with pytest.raises(base.CatalogUnavailable, match="cannot connect") as caught:
        service.activate_voucher("p1", CODE)
    assert time.monotonic() - started < 2
    assert "Connection refused" in str(caught.value)
    assert rows(service) == NOTHING


def test_retry_after_of_six_hours_is_capped(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("status", method="GET", status=429, times=2,
                        headers={"Retry-After": "21600"}))
    service = make_service(server.url, max_retry_after=0.2)
    started = time.monotonic()
    credit = service.activate_voucher("p1", CODE)
    elapsed = time.monotonic() - started
    assert credit.total == Decimal("50.00")
    assert 0.4 <= elapsed < 10, elapsed  # two capped waits, not six hours
    assert len(server.calls("GET")) == 3


def test_retry_after_beyond_the_deadline_fails_fast(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("status", method="GET", status=503, times=5,
                        headers={"Retry-After": "21600"}))
    service = make_service(server.url, timeout=2.0)  # max_retry_after 30 > deadline
    started = time.monotonic()
    with pytest.raises(base.CatalogUnavailable, match="HTTP 503"):
        service.activate_voucher("p1", CODE)
    # No wait at all: waiting would take the 30 s cap or six hours.
    assert time.monotonic() - started < 10
    assert len(server.calls("GET")) == 1
    assert rows(service) == NOTHING


def test_post_after_503_is_retried_with_the_same_key(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("status", method="POST", status=503))
    server.inject(Fault("status", method="POST", status=502))
    service = make_service(server.url)
    service.activate_voucher("p1", CODE)
    posts = server.calls("POST")
    assert len(posts) == 3
    assert len({p.body["idempotency_key"] for p in posts}) == 1
    assert len(server.redemptions_of(CODE)) == 1


# -- the reply lost after the catalog committed -------------------------------------------------


def test_lost_reply_after_commit_gives_one_redemption_and_one_credit(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("drop", method="POST"))
    service = make_service(server.url)
    credit = service.activate_voucher("p1", SINGLE)
    assert credit.total == Decimal("20.00")
    assert len(server.calls("POST")) == 2
    assert len(server.redemptions_of(SINGLE)) == 1
    assert rows(service) == {"credits": 1, "pending": 0, "failed": 0}


def test_every_reply_lost_leaves_a_pending_activation_then_one_credit(
    server: CatalogServer, make_service: ServiceFactory
) -> None:
    server.inject(Fault("drop", method="POST", times=3))
    service = make_service(server.url, retries=2)
    with pytest.raises(base.CatalogUnavailable) as caught:
        service.activate_voucher("p1", SINGLE)
    assert "connection" in str(caught.value).lower() or "Remote" in str(caught.value)
    assert len(server.redemptions_of(SINGLE)) == 1  # committed on the first POST
    assert rows(service) == {"credits": 0, "pending": 1, "failed": 0}

    # Another project cannot take the single-use voucher meanwhile...
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p2", SINGLE)
    # ...and the next run of the same activation gets the redemption back.
    credit = service.activate_voucher("p1", SINGLE)
    assert credit.total == Decimal("20.00")
    assert len(server.redemptions_of(SINGLE)) == 1
    assert rows(service) == {"credits": 1, "pending": 0, "failed": 1}


# -- credentials -------------------------------------------------------------------------------


def test_wrong_token_is_a_clear_error(server: CatalogServer, make_service: ServiceFactory,
                                      cli: Cli, ledger: Ledger) -> None:
    service = make_service(server.url, auth_token="wrong-token-value")
    with pytest.raises(base.CatalogAuthError) as caught:
        service.activate_voucher("p1", CODE)
    message = str(caught.value)
    assert "refused our credentials (HTTP 401" in message
    assert "auth_token" in message
    assert "wrong-token-value" not in message
    assert server.calls("POST") == []
    assert rows(service) == NOTHING

    ledger.config.write_text(
        "[cloud_credit]\n"
        f"connection = {ledger.url}\n"
        "[voucher_catalog]\n"
        "driver = http\n"
        f"endpoint = {server.url}\n"
        "auth_token = wrong-token-value\n"
    )
    result = cli("voucher", "activate", "p1", CODE)
    assert result.code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused our credentials" in lines[0]
    assert "wrong-token-value" not in result.stderr
    assert "Traceback" not in result.stderr


# -- TLS ---------------------------------------------------------------------------------------


def tls_context(ca: trustme.CA, *, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    return context


def test_self_signed_tls_is_refused_unless_ca_file_trusts_it(
    ca: trustme.CA, ca_file: str, make_service: ServiceFactory
) -> None:
    with running(vouchers=VOUCHERS, token=TOKEN, ssl_context=tls_context(ca)) as server:
        untrusting = make_service(server.url)
        started = time.monotonic()
        with pytest.raises(base.CatalogTLSError) as caught:
            untrusting.activate_voucher("p1", CODE)
        assert time.monotonic() - started < 1  # not retried: it would fail the same way
        assert "ca_file" in str(caught.value)
        assert "certificate verify failed" in str(caught.value)
        assert server.calls() == []  # the token never left
        assert rows(untrusting) == NOTHING

        trusting = make_service(server.url, ca_file=ca_file)
        assert trusting.activate_voucher("p1", CODE).total == Decimal("50.00")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_accepts_any_certificate(
    ca: trustme.CA, make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="ovh_credit_plugin")
    with running(vouchers=VOUCHERS, token=TOKEN, ssl_context=tls_context(ca)) as server:
        service = make_service(server.url, verify=False)
        service.activate_voucher("p1", CODE)
    assert "verify = false" in caplog.text


def test_client_certificate(ca: trustme.CA, ca_file: str, tmp_path: Path,
                            make_service: ServiceFactory) -> None:
    client_ca = trustme.CA()
    client = client_ca.issue_cert("billing-worker@example.test")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    context = tls_context(ca, client_ca=client_ca)
    with running(vouchers=VOUCHERS, token=TOKEN, ssl_context=context) as server:
        anonymous = make_service(server.url, ca_file=ca_file, retries=1)
        with pytest.raises(base.CatalogUnavailable):
            anonymous.activate_voucher("p1", CODE)
        assert server.calls("POST") == []
        known = make_service(server.url, ca_file=ca_file, cert_file=str(cert_file),
                             key_file=str(key_file))
        assert known.activate_voucher("p1", CODE).total == Decimal("50.00")


@pytest.mark.parametrize(("language", "expected"), [
    ("fr", "ovh-credit: le catalogue des vouchers à l'adresse {where} est indisponible\u00a0: "
           "connexion impossible ("),
    ("en", "ovh-credit: voucher catalog at {where} unavailable: cannot connect ("),
])
def test_the_cli_says_the_catalog_is_down_in_the_language_of_the_locale(
    ledger: Ledger, tmp_path: Path, language: str, expected: str
) -> None:
    # docs/translations.md: every error line the CLI prints is translated, the
    # http catalog's as the file catalog's (its errors were English f-strings).
    # A process of its own, on the compiled catalog (a functional test: the
    # mutation run's copy of the package has none).
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        where = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        config = write_config(tmp_path / "http.conf", ledger.url, ledger.vouchers)
        config.write_text(config.read_text().replace("driver = file", "driver = http")
                          + f"endpoint = {where}\nretries = 0\ntimeout = 10\n")
        done = subprocess.run(
            [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file", str(config),
             "voucher", "activate", "p1", CODE],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "LANGUAGE": language},
        )
    assert done.returncode != 0
    # What follows is the system's text ("[Errno 111] Connexion refusée"), as it says it.
    assert done.stderr.startswith(expected.format(where=where)), done.stderr
