"""Voucher activation edges found in review: interleavings of a first try and a resume,
the throttle's counting, what an operator sees and finishes.

Every test here failed on the code it was written against.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.service import CreditService
from tests.service.test_vouchers import (  # noqa: F401 (stub: a fixture)
    StubCatalog,
    redemptions,
    stub,
)
from tests.support.ledgers import BACKENDS, T0

on_every_backend = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def credits_of(service: CreditService, project: str) -> list[models.Credit]:
    return list(service.list_credits(project, at=T0))


# -- a first try's failure must not drop the intent a resume redeemed under -----------


@on_every_backend
@pytest.mark.parametrize("failure", ["outage", "revoked"])
def test_a_first_try_failing_at_its_get_keeps_the_intent_a_resume_redeemed_under(
    service: CreditService, stub: StubCatalog, failure: str,  # noqa: F811
) -> None:
    # Try A writes its intent (the project's currency, EUR, held by it) and
    # asks the GET. Meanwhile try B (a second click, another worker) finds the
    # intent pending and resumes it: it redeems the single-use code under the
    # intent's key, and its answer is lost. A's GET then fails (catalog down,
    # or the code was just revoked): A must not drop the intent, which is the
    # only trace of a redemption the catalog committed. Dropped, the project's
    # currency was released, an order in USD took it, and the voucher was lost:
    # redeemed at the catalog, no credit, nothing pending, and every later try
    # refused as "used up".
    code = "GPU-ONLY"
    depth = [0]

    def get(asked: str) -> models.Voucher:
        depth[0] += 1
        try:
            if depth[0] == 1:  # A's GET: B runs meanwhile
                with pytest.raises(base.CatalogUnavailable):
                    service.activate_voucher("p1", asked, at=T0)
                if failure == "outage":
                    raise base.CatalogUnavailable("no complete answer within the deadline")
                raise base.VoucherUnavailable("voucher revoked", status=410)
            return stub.inner.get(asked)
        finally:
            depth[0] -= 1

    def commit_then_lose(asked: str, **kwargs: Any) -> models.Redemption:
        stub.inner.redeem(asked, **kwargs)
        raise base.CatalogUnavailable("no complete answer within the deadline")

    stub.on_get = get
    stub.on_redeem = commit_then_lose
    with pytest.raises((base.CatalogUnavailable, exceptions.VoucherRefused)):
        service.activate_voucher("p1", code, at=T0)
    assert redemptions(service, code) == 1
    # The catalog redeemed the code for p1: the ledger must still know it.
    assert [(r["project_id"], r["code"]) for r in service.pending_activations()] == [
        ("p1", code)]
    # The intent keeps holding the voucher's currency: an order in another one waits.
    with pytest.raises(exceptions.CurrencyMismatch):
        service.create_order("p1", "10.00", currency="USD", at=T0)
    stub.on_get = stub.on_redeem = None
    credit = service.activate_voucher("p1", code, at=T0)
    assert credit.total == Decimal("20.00") and credit.currency == "EUR"
    assert [c.id for c in credits_of(service, "p1")] == [credit.id]
    assert service.pending_activations() == []


# -- the file catalog: the same key redeemed twice at once ------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_key_redeemed_by_a_concurrent_call_is_returned_not_refused_as_used_up(
    service: CreditService,
) -> None:
    # Two calls redeem a single-use code under the same key at once (a first
    # try and its resume, two workers): B looked the key up before A
    # committed, and claims the code's last place after. The key is redeemed
    # (by A): B must get A's redemption, not "used up". Refused, the resume
    # counted a failed try against the project and dropped the intent under
    # which A was about to grant.
    import threading

    from ovh_credit_plugin.ledger.catalog_redemptions import CatalogRedemptions

    ledger_a = CatalogRedemptions(service.database)
    ledger_b = CatalogRedemptions(service.database)
    key = base.idempotency_key("p1", "GPU-ONLY")
    b_looked, a_committed = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def redemption(ident: str) -> models.Redemption:
        return models.Redemption(id=ident, code="GPU-ONLY", project_id="p1", amount="20.00",
                                 currency="EUR", redeemed_at=T0)

    def run_a() -> None:
        def check() -> None:
            assert b_looked.wait(10)
        try:
            results["a"] = ledger_a.redeem(redemption("a"), idempotency_key=key, limit=1,
                                           check=check)
        finally:
            a_committed.set()

    def run_b() -> None:
        def check() -> None:
            b_looked.set()
            assert a_committed.wait(10)
        results["b"] = ledger_b.redeem(redemption("b"), idempotency_key=key, limit=1,
                                       check=check)

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results["a"] is not None and results["a"].id == "a"
    assert results["b"] is not None and results["b"].id == "a"
    assert redemptions(service, "GPU-ONLY") == 1


# -- a check of a code the project already activated -----------------------------------


def test_a_check_of_a_multi_use_code_the_project_activated_is_not_redeemable_for_it(
    service: CreditService,
) -> None:
    # WELCOME-2026 has no redemption limit: the catalog would redeem it for
    # another project. For this one, activating it again grants nothing new
    # (its credit comes back): the preview must not say "redeemable".
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    preview = service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    assert (preview.redeemable, preview.reason) == (
        False, "project p1 has already activated this voucher")
    again, created = service.activate_voucher_outcome("p1", "WELCOME-2026", at=T0)
    assert not created and again.id == credit.id
    # Another project may still take it; the operator's check says so too.
    assert service.check_voucher("WELCOME-2026", project_id="p2", at=T0).redeemable
    assert service.check_voucher("WELCOME-2026", at=T0).redeemable
