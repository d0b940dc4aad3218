"""The CloudKitty processor's log lines an on-call engineer reads (the service's are in
tests/service/test_logs_for_operators.py): here, where the plugin's options are taken
off CloudKitty's global ``cfg.CONF`` after the package (tests/integration/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin.service import CreditService
from tests.service.test_logs_for_operators import CODE, logged
from tests.support.ledgers import T0


def test_a_cloudkitty_period_rated_again_with_new_prices_says_its_debits_were_reversed(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    """Without it the log shows the period's first debit and, after a re-rating at
    zero, nothing: as if the first debit still stood."""
    pytest.importorskip("cloudkitty")
    from cloudkitty import dataframe

    from ovh_credit_plugin.hosts import cloudkitty as ck_host

    service.activate_voucher("scope-1", CODE, at=T0)
    start = T0 + dt.timedelta(days=1)

    def frame(price: str) -> Any:
        made = dataframe.DataFrame(start=start, end=start + dt.timedelta(hours=1))
        made.add_point(dataframe.DataPoint("u", 1, Decimal(price), {"id": "i"}, {}),
                       "instance")
        return made

    processor = ck_host.CloudCreditProcessor("scope-1")
    key, period = ck_host.period_key("scope-1", start, start + dt.timedelta(hours=1))
    caplog.set_level(logging.INFO, logger=ck_host.LOG.name)
    caplog.clear()
    for price, recorded in (("3", False), ("3", True), ("2", True), ("0", True)):
        processor._settle(frame(price), service, key, period, recorded=recorded,
                          currency="EUR")
    assert [text.split(": ", 1)[1] for _level, text in logged(caplog)] == [
        "3.000000 EUR of credit applied (settled)",
        "3.000000 EUR of credit applied (replayed)",
        "2.000000 EUR of credit applied (re-rated: its earlier debits reversed)",
        "0 EUR of credit applied (re-rated: its earlier debits reversed)",
    ]


def test_a_run_order_check_that_fails_is_one_warning_rating_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An ERROR with a traceback every 5 minutes from every worker read like rating
    failing; the check only warns, and rating goes on."""
    pytest.importorskip("cloudkitty")
    from ovh_credit_plugin.hosts import cloudkitty as ck_host

    def unreadable(module_name: str) -> list[tuple[str, int]]:
        raise RuntimeError("(pymysql.err.OperationalError) (2003, \"Can't connect\")")

    monkeypatch.setattr(ck_host, "modules_not_before", unreadable)
    caplog.set_level(logging.INFO, logger=ck_host.LOG.name)
    caplog.clear()
    ck_host.CloudCreditProcessor("scope-1")._warn_on_run_order()
    assert [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records] == [
        ("WARNING", "could not check the run order of the rating modules (RuntimeError: "
                    "(pymysql.err.OperationalError) (2003, \"Can't connect\")); rating goes "
                    "on, the check runs again in 5 minutes", False)]
