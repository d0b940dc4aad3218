"""The cloud_credit processor as a CloudKitty operator meets it: situations found in
review that left a scope unrated for good, each run through the real orchestrator."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.conftest import (
    HAVE_CLOUDKITTY,
    REQUIRE_CLOUDKITTY,
    SCOPE,
    CloudKitty,
)

if not HAVE_CLOUDKITTY and not REQUIRE_CLOUDKITTY:
    pytest.skip("cloudkitty is not installed", allow_module_level=True)

from ovh_credit_plugin import money
from tests.integration.test_cloudkitty import HOST_LOGGER, day_before

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

D = Decimal


def leva_credit(ledger: Any, cloudkitty: CloudKitty, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCOPE's 100.50 BGN of credit, bought while the installed ``iso4217`` still listed
    the lev (Bulgaria took the euro in 2026; ``iso4217`` 1.15 dropped BGN)."""
    today = money.currency_places
    with monkeypatch.context() as older:
        older.setattr(money, "currency_places", lambda code: 2 if code == "BGN" else today(code))
        before = ledger.service(default_currency="BGN", purchase_min_amount="BGN:5",
                                purchase_max_amount="BGN:1000")
        try:
            order = before.create_order(SCOPE, "100.50", currency="BGN",
                                        at=day_before(cloudkitty))
            before.pay_order(order.id, at=day_before(cloudkitty))
        finally:
            before.close()


def test_a_project_whose_credit_is_in_a_withdrawn_currency_is_rated_not_frozen(
    cloudkitty: CloudKitty, ledger: Any,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # A charge in a currency ISO 4217 no longer lists is refused (no new money in
    # it), and CloudKitty's prices are no leva: that credit cannot pay them. The
    # processor raised InvalidCurrency for every period of the scope, so
    # CloudKitty rated none of them, ever (each loop: "Error processing scope").
    leva_credit(ledger, cloudkitty, monkeypatch)
    before = ledger.checksum()
    caplog.set_level(logging.INFO, logger=HOST_LOGGER)
    cloudkitty.worker().run()
    assert cloudkitty.last_processed() == cloudkitty.p2
    assert cloudkitty.total() == D("8")  # list price: no credit applied
    assert ledger.checksum() == before  # the leva credit kept, nothing recorded
    # One line per period, naming the scope and why, for the on-call engineer.
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == HOST_LOGGER]
    assert [level for level, _ in logged] == ["WARNING", "WARNING"]
    assert all(message.startswith(f"scope {SCOPE}, period ") and "BGN" in message
               and "list price" in message for _, message in logged)
