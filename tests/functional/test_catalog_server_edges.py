"""Edge cases of the ``http`` catalog driver against a real catalog on loopback.

The driver alone (no ledger): what goes on the wire, how many times, and
which error comes out.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from oslo_config import cfg

from ovh_credit_plugin import models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
from ovh_credit_plugin.conf import register_opts
from tests.support.catalog_server import CatalogServer, Fault, running
from tests.support.ledgers import T0, Ledger

TOKEN = "catalog-token-0123456789"
CODE = "WELCOME-2026"
VOUCHERS = [
    {"code": CODE, "amount": "50.00", "currency": "EUR", "validity_days": 90,
     "description": "Welcome voucher"},
]


@pytest.fixture
def backend() -> str:
    # The drivers are under test here; the database rules run on every
    # backend in tests/service/test_vouchers.py.
    return "sqlite"


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as catalog:
        yield catalog


def driver_for(endpoint: str, **options: Any) -> HttpVoucherCatalog:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[])
    options.setdefault("auth_token", TOKEN)
    options.setdefault("timeout", 5.0)
    options.setdefault("retries", 3)
    conf.set_override("endpoint", endpoint, group="voucher_catalog")
    for name, value in options.items():
        conf.set_override(name, value, group="voucher_catalog")
    return HttpVoucherCatalog(conf=conf, backoff_factor=0.01)


# -- retries: one budget per call ------------------------------------------------------------


def flapping(server: CatalogServer, method: str, *, rounds: int, statuses: int) -> None:
    """A catalog in trouble: each round an answer broken off, then ``statuses`` 503s."""
    for _ in range(rounds):
        server.inject(Fault("truncate", method=method))
        for _ in range(statuses):
            server.inject(Fault("status", method=method, status=503))


@pytest.mark.parametrize("retries", [1, 3])
def test_broken_bodies_and_retried_statuses_share_the_retry_budget(
    server: CatalogServer, retries: int
) -> None:
    # "retries: Retries after the first attempt, for 429, 500, 502, 503, 504,
    # connection errors, read errors and broken-off answers": one budget, not
    # a fresh one for urllib3 after every broken-off answer ((retries + 1)²
    # calls on a catalog already in trouble).
    flapping(server, "GET", rounds=retries + 1, statuses=retries)
    catalog = driver_for(server.url, retries=retries)
    try:
        with pytest.raises(base.CatalogUnavailable) as caught:
            catalog.get(CODE)
    finally:
        catalog.close()
    assert len(server.calls("GET")) == retries + 1
    assert f"after {retries + 1} attempt(s)" in str(caught.value) or (
        "IncompleteRead" in str(caught.value))


def test_a_flapping_redemption_is_retried_within_the_budget_with_one_key(
    server: CatalogServer,
) -> None:
    flapping(server, "POST", rounds=4, statuses=3)
    catalog = driver_for(server.url, retries=3)
    key = base.idempotency_key("p1", CODE)
    try:
        with pytest.raises(base.CatalogUnavailable):
            catalog.redeem(CODE, project_id="p1", idempotency_key=key)
    finally:
        catalog.close()
    posts = server.calls("POST")
    assert len(posts) == 4
    assert {p.body["idempotency_key"] for p in posts} == {key}
    assert len(server.redemptions_of(CODE)) == 1  # the first, truncated, answer committed


def test_the_budget_left_still_recovers_a_broken_off_answer(server: CatalogServer) -> None:
    # A 503 then a broken-off answer: two retries of three, the third attempt answers.
    server.inject(Fault("status", method="GET", status=503))
    server.inject(Fault("truncate", method="GET"))
    catalog = driver_for(server.url, retries=2)
    try:
        assert catalog.get(CODE).code == CODE
    finally:
        catalog.close()
    assert len(server.calls("GET")) == 3


# -- TLS files that go away while the host runs ----------------------------------------------


def tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_a_ca_file_gone_while_running_is_a_tls_error_not_a_crash(
    ca: trustme.CA, tmp_path: Path
) -> None:
    # Checked when the driver is built; a file removed later (a certificate
    # rotation that deletes before it writes) must still end in a catalog
    # error naming the TLS options, not in a bare OSError (an internal error
    # for the REST API, a pending activation nobody is told about).
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with running(vouchers=VOUCHERS, token=TOKEN, ssl_context=tls_context(ca)) as server:
        catalog = driver_for(server.url, ca_file=str(ca_file))
        try:
            assert catalog.get(CODE).code == CODE
            moved = tmp_path / "ca.pem.old"
            shutil.move(str(ca_file), str(moved))
            with pytest.raises(base.CatalogTLSError) as caught:
                catalog.get(CODE)
            assert "ca_file" in str(caught.value)
            assert TOKEN not in str(caught.value)
            shutil.move(str(moved), str(ca_file))
            assert catalog.get(CODE).code == CODE  # fixed: works again, no restart
        finally:
            catalog.close()


# -- the file catalog: a replay after the operator took the code out ---------------------------


class _AnswerLostOnce(base.VoucherCatalog):
    """The file catalog, whose first redemption commits and then "loses" its answer."""

    def __init__(self, inner: base.VoucherCatalog) -> None:
        self.inner = inner
        self.lost = False

    def get(self, code: str) -> models.Voucher:
        return self.inner.get(code)

    def redeem(self, code: str, **kwargs: Any) -> models.Redemption:
        redemption = self.inner.redeem(code, **kwargs)
        if not self.lost:
            self.lost = True
            raise base.CatalogUnavailable("the answer was lost")
        return redemption


def test_a_pending_file_activation_is_finished_after_the_code_left_the_file(
    ledger: Ledger,
) -> None:
    # The catalog (the ledger's redemption table) recorded the redemption, the
    # grant did not happen; meanwhile the operator removed the code from the
    # file. Running the activation again must grant it once: the voucher was
    # redeemed for this project, nothing may be lost.
    service = ledger.service()
    try:
        service.catalog = _AnswerLostOnce(service.catalog)
        with pytest.raises(base.CatalogUnavailable):
            service.activate_voucher("p1", "GPU-ONLY", at=T0)
        assert [p["code"] for p in service.pending_activations()] == ["GPU-ONLY"]

        document = json.loads(ledger.vouchers.read_text())
        document["vouchers"] = [v for v in document["vouchers"] if v["code"] != "GPU-ONLY"]
        new = ledger.vouchers.with_suffix(".new")
        new.write_text(json.dumps(document))
        os.replace(new, ledger.vouchers)

        credit = service.activate_voucher("p1", "GPU-ONLY", at=T0)
        assert credit.total == 20
        assert service.pending_activations() == []
        assert len(service.list_credits("p1", at=T0)) == 1
        assert service.audit().ok
    finally:
        service.close()


def test_a_certificate_for_another_host_is_not_blamed_on_the_ca_file(
    ca: trustme.CA, tmp_path: Path
) -> None:
    # ca_file is right (the CA did sign the certificate); the certificate
    # names another host. Telling the operator to "set ca_file to the CA that
    # signed the catalog's certificate" sends them the wrong way.
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("catalog.example").configure_cert(context)
    with running(vouchers=VOUCHERS, token=TOKEN, ssl_context=context) as server:
        catalog = driver_for(server.url, ca_file=str(ca_file))
        try:
            with pytest.raises(base.CatalogTLSError) as caught:
                catalog.get(CODE)
        finally:
            catalog.close()
        assert server.calls() == []  # the token never left
    message = str(caught.value)
    assert "mismatch" in message
    assert "set [voucher_catalog] ca_file" not in message
    assert "[voucher_catalog] endpoint" in message
