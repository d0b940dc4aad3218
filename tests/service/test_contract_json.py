"""Orders' and credits' ``json_ready()`` equal their contracts' own serialization.

The command line and the REST API answer with ``json_ready()``, built
directly, instead of pydantic's ``model_dump(mode="json")``: the schema
pydantic builds on a model's first dump cost every ``ovh-credit`` run
40-80 ms (issue 15, decision 3). Both must give the same JSON, for every
state an order or a credit can be in, zero-decimal currencies, sub-cent
balances, scoped vouchers, localized descriptions.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ovh_credit_plugin import descriptions, models
from ovh_credit_plugin.contracts import CreditResult, OrderResult
from ovh_credit_plugin.service import CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _same(model: models.Order | models.Credit) -> None:
    dumped = model.model_dump(mode="json")
    shown = model.json_ready()
    assert shown == dumped
    assert list(shown) == list(dumped)  # the contract's field order too


def test_orders_json_ready_is_their_dump(service: CreditService) -> None:
    pending = service.create_order("p-1", "25.5", at=T0)
    paid = service.pay_order(service.create_order("p-1", "10", at=T0).id, at=T0)
    cancelled = service.cancel_order(service.create_order("p-1", "12.34", at=T0).id, at=T0)
    yen = service.create_order("p-yen", "1000", currency="JPY", at=T0)
    expired = service.show_order(pending.id, at=T0 + dt.timedelta(days=400))
    assert {o.status for o in (pending, paid, cancelled, expired)} == {
        "pending", "paid", "cancelled", "expired"}
    assert paid.paid_at is not None and paid.credit_id is not None
    for order in (pending, paid, cancelled, yen, expired, *service.list_orders("p-1", at=T0)):
        _same(order)


def test_credits_json_ready_is_their_dump(service: CreditService) -> None:
    service.pay_order(service.create_order("p-1", "25.5", at=T0).id, at=T0)
    service.pay_order(service.create_order("p-1", "30", at=T0).id, at=T0)
    service.activate_voucher("p-1", "WELCOME-2026", at=T0)
    service.activate_voucher("p-1", "GPU-ONLY", at=T0)
    service.pay_order(service.create_order("p-yen", "1000", currency="JPY", at=T0).id, at=T0)
    voided = service.list_credits("p-1", at=T0)[-1]
    service.void_credit(voided.id, reason="charge-back", at=T0)
    credits = service.list_credits("p-1", at=T0)
    # A sub-cent balance, as settlement leaves on a credit.
    credits.append(credits[0].model_copy(update={"available": Decimal("0.000123"),
                                                 "used": Decimal("25.499877")}))
    credits.append(credits[0].model_copy(update={"valid_until": None}))
    later = service.list_credits("p-1", at=T0 + dt.timedelta(days=800))
    assert {c.status for c in credits + later} >= {"active", "voided", "expired"}
    assert any(c.products for c in credits)
    for credit in (*credits, *later, *service.list_credits("p-yen", at=T0)):
        _same(credit)
        _same(descriptions.localized(credit, "fr"))


def test_results_have_the_models_fields_in_order() -> None:
    assert OrderResult._fields == tuple(models.Order.model_fields)
    assert CreditResult._fields == tuple(models.Credit.model_fields)
    assert models.SettlementResult._fields == tuple(models.Settlement.model_fields)


def test_results_are_what_the_facade_gives_hosts_as_models(service: CreditService) -> None:
    # The command line prints results (no pydantic); hosts get the models of them.
    order = service.create_order_result("p-1", "25.5", at=T0)
    assert isinstance(order, OrderResult)
    assert order.model() == service.show_order(order.id, at=T0)
    assert order.json_ready() == order.model().model_dump(mode="json")
    service.pay_order(order.id, at=T0)
    service.activate_voucher("p-1", "WELCOME-2026", at=T0)
    results = service.list_credit_results("p-1", at=T0)
    assert [c.model() for c in results] == service.list_credits("p-1", at=T0)
    assert all(isinstance(c, CreditResult) for c in results)
    for credit in results:
        assert credit.json_ready() == credit.model().model_dump(mode="json")
        shown = descriptions.localized(credit, "fr")
        assert isinstance(shown, CreditResult)
        assert shown.json_ready() == descriptions.localized(credit.model(), "fr").json_ready()
    assert {descriptions.localized(c, "fr").description for c in results} != {
        c.description for c in results}  # the plugin's own descriptions were translated
