"""An order in a currency credit is not sold in: the customer's words, the operator's hint.

A customer (the REST API's detail, in their language) reads that cloud credit
is not sold in that currency, never the names of configuration options; the
operator reads which options sell it: a WARNING where the order is refused,
and the error line of ``ovh-credit order create``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.service import CreditService
from tests.support.cli import Cli
from tests.support.ledgers import T0, Ledger

HINT = ("to sell it, set [cloud_credit] purchase_min_amount and purchase_max_amount for GBP, "
        "e.g. EUR:5,JPY:500")
LOGGED = ("order refused for project p1: no purchase limits for GBP; set [cloud_credit] "
          "purchase_min_amount and purchase_max_amount for it, e.g. EUR:5,JPY:500")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("ovh_credit_plugin")]


def test_the_customer_reads_what_is_refused_and_the_log_how_to_sell_it(
        service: CreditService, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ovh_credit_plugin"), \
            pytest.raises(exceptions.PurchaseNotOffered) as refused:
        service.create_order("p1", "10", currency="GBP", at=T0)
    assert str(refused.value) == "cloud credit is not sold in GBP"
    assert (refused.value.currency, str(refused.value.operator_hint)) == ("GBP", HINT)
    # Once per refused request, naming the options and an example.
    assert _warnings(caplog) == [LOGGED]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ovh_credit_plugin"), \
            pytest.raises(exceptions.PurchaseNotOffered):
        service.create_order_once("p1", "10", currency="GBP", idempotency_key="k-1", at=T0)
    assert _warnings(caplog) == [LOGGED]


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode: a message stays an oslo_i18n Message until translated.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


@pytest.mark.usefixtures("lazy")
def test_the_api_answer_has_the_customers_words_only(service: CreditService) -> None:
    from ovh_credit_plugin.api import errors

    with pytest.raises(exceptions.PurchaseNotOffered) as refused:
        service.create_order("p1", "10", currency="GBP", at=T0)
    error = errors.from_exception(refused.value, throttle_window=600)
    answers = {language: errors.error_document(error, "req-1", language=language)
               for language in ("en", "fr")}
    assert (error.status, error.code) == (400, "invalid_request")
    assert answers["en"]["errors"][0]["detail"] == "cloud credit is not sold in GBP"
    assert answers["fr"]["errors"][0]["detail"] == "le crédit cloud n'est pas vendu en GBP"
    for answer in answers.values():
        assert "purchase_" not in json.dumps(answer) and "cloud_credit]" not in json.dumps(answer)
    # The hint is the operator's, in their language too (the operator CLI's).
    assert i18n.translate(refused.value.operator_hint, "fr") == (
        "pour le vendre, définissez [cloud_credit] purchase_min_amount et purchase_max_amount "
        "pour GBP, par exemple EUR:5,JPY:500")


def test_the_operator_cli_line_keeps_the_hint(cli: Cli, ledger: Ledger) -> None:
    refused = cli("order", "create", "p2", "10", "--currency", "GBP")
    assert refused.code == 1
    assert refused.stdout == ""
    assert refused.stderr == f"ovh-credit: cloud credit is not sold in GBP; {HINT}\n"

    french = subprocess.run(
        [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file", str(ledger.config),
         "order", "create", "p2", "10", "--currency", "GBP"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "LANGUAGE": "fr"})
    assert french.returncode == 1
    assert french.stderr == (
        "ovh-credit: le crédit cloud n'est pas vendu en GBP\u00a0; pour le vendre, définissez "
        "[cloud_credit] purchase_min_amount et purchase_max_amount pour GBP, par exemple "
        "EUR:5,JPY:500\n")
