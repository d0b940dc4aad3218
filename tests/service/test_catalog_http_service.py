"""The HTTP catalog driver through the service: what the ledger records after each answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import responses

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService
from tests.support.catalog_docs import (
    CODE,
    ENDPOINT,
    KEY,
    MALFORMED_VOUCHERS,
    PROJECT,
    REDEEM_URL,
    TOKEN,
    VOUCHER_URL,
    calls,
    make_catalog,
    make_conf,
    redemption_doc,
    voucher_doc,
)
from tests.support.ledgers import T0, Ledger


@pytest.fixture
def backend() -> str:
    # The driver is under test here; the service's database rules are tested
    # on every backend in test_vouchers.py.
    return "sqlite"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock



# -- through the service: nothing redeemed after a bad GET ------------------------------


@pytest.fixture
def http_service(ledger: Ledger) -> Iterator[CreditService]:
    database = Database(create_engine(ledger.url))
    service = CreditService(database=database, catalog=make_catalog())
    yield service
    report = service.audit()
    service.close()
    assert report.ok, report.violations


def _ledger_rows(service: CreditService) -> dict[str, int]:
    def work(conn: Any) -> dict[str, int]:
        import sqlalchemy as sa

        from ovh_credit_plugin.ledger import schema
        counts = {}
        for name, table in (("credits", schema.credits),
                            ("activations", schema.voucher_activations),
                            ("attempts", schema.voucher_attempts)):
            counts[name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        return counts

    return service.database.read(work)


@pytest.mark.parametrize("name", ["not json", "negative amount", "another code",
                                  "unknown currency", "amount as number"])
def test_no_post_after_a_malformed_get(
    mocked: responses.RequestsMock, http_service: CreditService, name: str
) -> None:
    body = MALFORMED_VOUCHERS[name]
    mocked.get(VOUCHER_URL, body=body if isinstance(body, bytes) else json.dumps(body))
    mocked.post(REDEEM_URL, json=redemption_doc(), status=201)
    with pytest.raises(base.CatalogProtocolError):
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert calls(mocked, "POST") == []
    # Not the customer's fault: no failed attempt held against the project.
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 0, "attempts": 0}


@pytest.mark.parametrize(("status", "document"), [
    (404, {"message": "no such voucher"}),
    (200, voucher_doc(status="revoked")),
    (200, voucher_doc(valid_until="2026-01-01T00:00:00Z")),
])
def test_no_post_after_a_refusing_get(
    mocked: responses.RequestsMock, http_service: CreditService, status: int,
    document: dict[str, Any],
) -> None:
    mocked.get(VOUCHER_URL, json=document, status=status)
    mocked.post(REDEEM_URL, json=redemption_doc(), status=201)
    with pytest.raises(exceptions.VoucherRefused) as caught:
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert str(caught.value) == exceptions.VoucherRefused.public_message
    assert calls(mocked, "POST") == []
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 0, "attempts": 1}


@pytest.mark.parametrize("document", [
    voucher_doc(status="exhausted"),
    voucher_doc(max_redemptions=1, redemptions=1),
])
def test_a_used_up_get_is_settled_by_the_post_under_the_intents_key(
    mocked: responses.RequestsMock, http_service: CreditService, document: dict[str, Any],
) -> None:
    # "Used up" may be this very intent's doing (another try of the code
    # redeemed under its key): the POST's answer decides, here a 409.
    mocked.get(VOUCHER_URL, json=document)
    mocked.post(REDEEM_URL, json={"message": "voucher exhausted"}, status=409)
    with pytest.raises(exceptions.VoucherRefused) as caught:
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert str(caught.value) == exceptions.VoucherRefused.public_message
    [post] = calls(mocked, "POST")
    assert json.loads(post.request.body)["idempotency_key"] == KEY
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 0, "attempts": 1}


def test_no_post_after_an_auth_error(
    mocked: responses.RequestsMock, http_service: CreditService
) -> None:
    mocked.get(VOUCHER_URL, json={"message": "bad token"}, status=403)
    with pytest.raises(base.CatalogAuthError):
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert calls(mocked, "POST") == []
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 0, "attempts": 0}


@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_error_on_the_post_leaves_the_activation_pending(
    mocked: responses.RequestsMock, http_service: CreditService, status: int
) -> None:
    # docs/voucher-catalog.md, "Faults": a refused POST may follow a retried
    # one that timed out after the catalog redeemed; pending is the safe side.
    mocked.get(VOUCHER_URL, json=voucher_doc())
    mocked.post(REDEEM_URL, json={"message": "read-only token"}, status=status)
    with pytest.raises(base.CatalogAuthError):
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 1, "attempts": 0}
    assert [p["code"] for p in http_service.pending_activations()] == [CODE]
    # The token fixed, running the activation again finishes it.
    mocked.replace(responses.POST, REDEEM_URL, json=redemption_doc(), status=201)
    assert http_service.activate_voucher(PROJECT, CODE, at=T0).total == Decimal("50.00")
    assert http_service.pending_activations() == []


def test_malformed_redemption_leaves_the_intent_pending(
    mocked: responses.RequestsMock, http_service: CreditService
) -> None:
    # The catalog may have committed: nothing is granted, the operator sees it.
    mocked.get(VOUCHER_URL, json=voucher_doc())
    mocked.post(REDEEM_URL, body=b"{oops", status=201)
    with pytest.raises(base.CatalogProtocolError):
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert _ledger_rows(http_service) == {"credits": 0, "activations": 1, "attempts": 0}
    assert [p["project_id"] for p in http_service.pending_activations()] == [PROJECT]
    # Once the catalog answers properly, the same activation finishes. Its
    # GET asks only for the currency: even a code the catalog no longer
    # lists does not stop the POST, which replays under the intent's key.
    mocked.replace(responses.GET, VOUCHER_URL, json={"message": "no such voucher"},
                   status=404)
    mocked.replace(responses.POST, REDEEM_URL, json=redemption_doc(), status=200)
    credit = http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert credit.total == Decimal("50.00")
    assert [json.loads(c.request.body)["idempotency_key"] for c in calls(mocked, "POST")
            ] == [KEY, KEY]
    assert http_service.pending_activations() == []


def test_redemption_in_another_currency_than_the_voucher_grants_nothing(
    mocked: responses.RequestsMock, http_service: CreditService
) -> None:
    mocked.get(VOUCHER_URL, json=voucher_doc())
    mocked.post(REDEEM_URL, json=redemption_doc(currency="USD"), status=201)
    with pytest.raises(base.CatalogProtocolError, match="USD"):
        http_service.activate_voucher(PROJECT, CODE, at=T0)
    assert _ledger_rows(http_service)["credits"] == 0


# -- logs: codes masked, token never --------------------------------------------------------


def test_logs_mask_codes_and_never_show_the_token(
    mocked: responses.RequestsMock, http_service: CreditService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Per logger: the CLI (run in-process by other tests) lowers ours to ERROR.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ovh_credit_plugin")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    mocked.get(VOUCHER_URL, status=503, json={})
    mocked.get(VOUCHER_URL, json=voucher_doc())
    mocked.post(REDEEM_URL, json=redemption_doc(), status=201)
    http_service.activate_voucher(PROJECT, CODE, at=T0)
    mocked.get(f"{ENDPOINT}/v1/vouchers/UNKNOWN-CODE-1", status=404, json={})
    with pytest.raises(exceptions.VoucherRefused):
        http_service.activate_voucher(PROJECT, "unknown-code-1", at=T0)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "WEL…6" in text
    assert "UNK…1" in text
    assert CODE not in text
    assert "UNKNOWN-CODE-1" not in text
    assert TOKEN not in text


@pytest.mark.parametrize(("status", "body", "error"), [
    (401, {"json": {"message": f"unknown X-Auth-Token {TOKEN}"}}, base.CatalogAuthError),
    (403, {"body": f"<h1>Forbidden</h1> token={TOKEN}", "content_type": "text/html"},
     base.CatalogAuthError),
    (503, {"json": {"message": f"backend rejected {TOKEN}", "echo": [{TOKEN: TOKEN}]}},
     base.CatalogUnavailable),
    (418, {"json": {"message": f"no tea for {TOKEN}"}}, base.CatalogProtocolError),
])
def test_a_token_echoed_by_the_catalog_is_hidden_from_the_error(
    mocked: responses.RequestsMock, status: int, body: dict[str, Any],
    error: type[base.CatalogError],
) -> None:
    # docs/voucher-catalog.md: auth_token is never in an error message, even
    # when a catalog (or a proxy in front of it) quotes it back.
    mocked.get(VOUCHER_URL, status=status, headers={"X-Request-Id": f"req {TOKEN}"}, **body)
    with pytest.raises(error) as caught:
        make_catalog(retries=0).get(CODE)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.response)
    assert caught.value.request_id == "req ***"
    assert "***" in str(caught.value.response)


def test_a_token_echoed_in_a_broken_answer_is_hidden_from_the_error(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(VOUCHER_URL, json=voucher_doc(amount=TOKEN, description=f"for {TOKEN}"))
    with pytest.raises(base.CatalogProtocolError) as caught:
        make_catalog().get(CODE)
    assert TOKEN not in str(caught.value)
    assert caught.value.response["description"] == "for ***"  # type: ignore[index]


def test_urllib3_retry_warnings_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    make_catalog()  # installs the filter
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (%r) after connection broken by '%r': %s", "Retry(total=2)", "err",
        f"/v1/vouchers/{CODE}/redemptions",
    )
    assert caplog.records[-1].getMessage().endswith("/v1/vouchers/WEL…6/redemptions")


def test_the_http_driver_is_registered_for_stevedore(ledger: Ledger) -> None:
    from ovh_credit_plugin.service import load_catalog

    conf = make_conf(driver="http")
    driver = load_catalog(conf, database=Database(create_engine(ledger.url)))
    assert isinstance(driver, HttpVoucherCatalog)
    driver.close()
