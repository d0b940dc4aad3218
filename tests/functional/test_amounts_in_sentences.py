"""Amounts inside translated sentences, written as the reader's language writes numbers.

A French reader gets ``1 234,50 EUR`` (decimal comma; the group separator and
the space before the currency are both U+00A0, as the dashboard panel writes
them), an English one ``1,234.50 EUR`` (U+00A0 before the currency): through
the real REST API (Accept-Language, lazy messages rendered when the answer is
written) and the real ``ovh-credit`` process (its locale). Each amount keeps
exactly its own decimal places (KWD 3, JPY 0); JSON amounts and log lines keep
the machine form (``1234.50``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest
import requests

from ovh_credit_plugin import models
from tests.support.api import call, standalone
from tests.support.ledgers import Ledger

NBSP = "\u00a0"
T0 = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
PAYER = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # Writing an amount is the reader's business, not the database's.
    return str(request.param)


def member(project: str, language: str | None = None) -> dict[str, str]:
    headers = {"X-Project-Id": project, "X-User-Id": f"user-{project}",
               "X-Roles": "member,reader"}
    return {**headers, "Accept-Language": language} if language else headers


def detail(response: requests.Response) -> str:
    return str(response.json()["errors"][0]["detail"])


# -- the REST API ------------------------------------------------------------------------

# The test ledgers sell every currency from 5 to 100000 (tests/support/ledgers.py).
OUT_OF_BOUNDS = [
    ("EUR", "4.99",
     f"un achat de crédit cloud est compris entre 5,00 et 100{NBSP}000,00{NBSP}EUR HT",
     f"a credit purchase is between 5.00 and 100,000.00{NBSP}EUR excluding tax"),
    ("KWD", "4.999",
     f"un achat de crédit cloud est compris entre 5,000 et 100{NBSP}000,000{NBSP}KWD HT",
     f"a credit purchase is between 5.000 and 100,000.000{NBSP}KWD excluding tax"),
    ("JPY", "100001",
     f"un achat de crédit cloud est compris entre 5 et 100{NBSP}000{NBSP}JPY HT",
     f"a credit purchase is between 5 and 100,000{NBSP}JPY excluding tax"),
]


def test_an_order_out_of_bounds_writes_its_bounds_as_the_reader_does(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        for currency, amount, french, english in OUT_OF_BOUNDS:
            project = f"buyer-{currency.lower()}"
            body = {"amount": amount, "currency": currency}
            asked_in_french = call("POST", f"{url}/v1/orders", headers=member(project, "fr"),
                                   json_body=body)
            assert asked_in_french.status_code == 400, asked_in_french.text
            assert asked_in_french.headers["Content-Language"] == "fr"
            assert detail(asked_in_french) == french
            # fr-CH falls back to the French catalog: its numbers are the catalog's too.
            swiss = call("POST", f"{url}/v1/orders", headers=member(project, "fr-CH"),
                         json_body=body)
            assert detail(swiss) == french
            asked_in_english = call("POST", f"{url}/v1/orders",
                                    headers=member(project, "en"), json_body=body)
            assert detail(asked_in_english) == english
            # No Accept-Language, or one without a catalog: English, numbers included.
            for headers in (member(project), member(project, "de")):
                assert detail(call("POST", f"{url}/v1/orders", headers=headers,
                                   json_body=body)) == english


def test_a_payment_that_does_not_match_its_order_in_both_languages(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    with standalone(ledger) as url:
        made = call("POST", f"{url}/v1/orders", headers=member("big", "fr"),
                    json_body={"amount": "12345.50", "currency": "EUR"})
        assert made.status_code == 201, made.text
        order = made.json()
        # JSON amounts keep the machine form, whatever language the answer is in.
        assert order["amount"] == "12345.50"
        caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
        answers = {}
        for language in ("fr", "en"):
            refused = call("POST", f"{url}/v1/orders/{order['id']}/payment",
                           headers={**PAYER, "Accept-Language": language},
                           json_body={"amount": "12000", "currency": "EUR"})
            assert refused.status_code == 400, refused.text
            answers[language] = detail(refused)
        assert answers == {
            # The amount paid keeps its own places (none sent); the order's, the currency's.
            "fr": (f"le paiement de 12{NBSP}000 ne correspond pas au bon de commande "
                   f"{order['id']} (12{NBSP}345,50{NBSP}EUR HT)"),
            "en": (f"payment of 12,000 does not match order {order['id']} "
                   f"(12,345.50{NBSP}EUR excluding tax)"),
        }
        # The operator's log line quotes the refusal in the machine form.
        refusals = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("payment confirmation")]
        assert len(refusals) == 2
        for logged in refusals:
            assert (f"no credit granted: payment of 12000 does not match order {order['id']} "
                    "(12345.50 EUR excluding tax); reconcile") in logged
        for language in ("fr", "en"):
            listed = call("GET", f"{url}/v1/orders", headers=member("big", language)).json()
            assert [o["amount"] for o in listed["orders"]] == ["12345.50"]
            shown = call("GET", f"{url}/v1/orders/{order['id']}",
                         headers=member("big", language)).json()
            assert shown["amount"] == "12345.50"


# -- the ovh-credit process --------------------------------------------------------------

def ovh_credit(ledger: Ledger, language: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env["LANGUAGE"] = language
    return subprocess.run(
        [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file",
         str(ledger.config), *args],
        capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize(("language", "expected"), [
    ("fr", f"ovh-credit: un achat de crédit cloud est compris entre 5,000 et "
           f"100{NBSP}000,000{NBSP}KWD HT"),
    ("fr_FR.UTF-8", f"ovh-credit: un achat de crédit cloud est compris entre 5,000 et "
                    f"100{NBSP}000,000{NBSP}KWD HT"),
    ("en", f"ovh-credit: a credit purchase is between 5.000 and 100,000.000{NBSP}KWD "
           "excluding tax"),
])
def test_the_cli_writes_the_bounds_in_the_language_of_its_locale(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "order", "create", "kw", "100000.001",
                      "--currency", "KWD")
    assert done.returncode != 0
    assert done.stderr.strip() == expected


def seeded(ledger: Ledger) -> tuple[str, int]:
    """p1: 12345.67 EUR of purchased credit, then an invoice of 1234.5 settled with it."""
    service = ledger.service()
    try:
        order = service.create_order("p1", "12345.67", at=T0)
        credit = service.pay_order(order.id, at=T0).credit_id
        assert credit is not None
        invoice = models.Invoice.model_validate({
            "id": "INV-1", "project_id": "p1", "currency": "EUR",
            "issued_at": "2026-03-01T00:00:00Z",
            "lines": [{"id": "l1", "product": "compute", "amount": "1234.5"}]})
        service.settle_invoice(invoice)
    finally:
        service.close()
    return order.id, credit


def table(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    # The table's borders and padding aside (a sentence may wrap in its cell).
    return " ".join(part for line in done.stdout.splitlines()
                    for part in line.replace("|", " ").split(" ") if part)


def test_settlement_show_explains_in_the_readers_numbers(ledger: Ledger) -> None:
    _order, credit = seeded(ledger)
    french = table(ovh_credit(ledger, "fr", "settlement", "show", "invoice/p1/INV-1",
                              "-f", "table"))
    assert f"ligne l1{NBSP}: 1{NBSP}234,50{NBSP}EUR du crédit {credit} (crédit acheté)" \
        in french
    english = table(ovh_credit(ledger, "en", "settlement", "show", "invoice/p1/INV-1",
                               "-f", "table"))
    assert f"line l1: 1,234.50{NBSP}EUR from credit {credit} (purchased)" in english
    # The machine-readable forms are not sentences: JSON amounts as the contract has them.
    shown: dict[str, Any] = json.loads(ovh_credit(ledger, "fr", "settlement", "show",
                                                  "invoice/p1/INV-1", "-f", "json").stdout)
    assert (shown["total"], shown["credit_applied"]) == ("1234.50", "1234.50")
    assert [a["amount"] for a in shown["allocations"]] == ["1234.50"]
