"""A first try whose POST failed marks its intent as sent (``Vouchers._keep_sent``): that
mark against the other tries of the code, and the replays that trust the redemption.

The other try runs at the exact point, inside this try's redemption (the catalog stub's
hook), or, where row locks matter, in a thread paused inside its transaction
(PostgreSQL, MariaDB). What is asserted is what the customer and the operator see: one
credit at most, the intent kept while the catalog may have redeemed under its key, the
failed tries counted, what each try answers and logs.
"""

from __future__ import annotations

import logging
import re
import threading
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.service import CreditService
from tests.service.test_voucher_currency_edited import (
    CODE,
    LATER,
    MASKED,
    edited_to_usd,
    holds_eur,
    in_usd,
    p1_credits,
)
from tests.service.test_voucher_resume_interleavings import (
    events,
    race_a_resume_with_a_held_first_try,
)
from tests.service.test_vouchers import (  # noqa: F401 (backend, stub: fixtures)
    StubCatalog,
    backend,
    on_every_backend,
    redemptions,
    stub,
)
from tests.support.ledgers import T0, Ledger, ServerPool

KEY = base.idempotency_key("p1", CODE)


def redemption_id(catalog: StubCatalog) -> str:
    """The id of the catalog's redemption under p1's key (a replay of it)."""
    return catalog.inner.redeem(CODE, project_id="p1", idempotency_key=KEY, at=T0).id


# -- a resume moving the project while the first try's POST runs --------------------------


@on_every_backend
def test_a_first_try_grants_its_redemption_after_a_resume_moved_the_project_away(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # Try A looks the EUR voucher up; its POST reaches the catalog, which
    # redeems in EUR. The operator then moves the voucher to USD, and try B (a
    # second click) resumes the intent: its lookup says USD, and nothing but
    # the intent holds EUR, so B moves p1 to USD and sends the key; the replay
    # answers EUR, B's lookup said USD: B fails, the intent marked as sent.
    # A's answer then arrives: EUR, as A's lookup said. Nothing holds USD but
    # this very intent: A grants EUR (the project moving back), instead of
    # telling the customer the activation stays pending until support
    # resolves it, when any try would grant it.
    b_failed: list[BaseException] = []

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        redemption = stub.inner.redeem(code, **kwargs)
        if stub.redeems == 1:  # A's POST: the catalog redeemed, then B runs
            edited_to_usd(stub)
            with pytest.raises(base.CatalogProtocolError) as failed:
                service.activate_voucher("p1", code, at=T0)
            b_failed.append(failed.value)
            assert service.project_currency("p1") == "USD"
        return redemption

    stub.on_redeem = redeem
    credit, created = service.activate_voucher_outcome("p1", CODE, at=T0)
    assert "in EUR, but the voucher is in USD" in str(b_failed[0])
    assert created and (credit.currency, credit.total) == ("EUR", Decimal("50.00"))
    assert service.project_currency("p1") == "EUR"
    assert service.pending_activations() == []
    assert redemptions(service, CODE) == 1
    assert events(service) == ["succeeded"]


@on_every_backend
def test_a_first_try_whose_redemption_the_moved_project_cannot_take_says_so_truly(
    service: CreditService, stub: StubCatalog,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As above, and p1 pays a USD order before A's answer arrives: a credit
    # holds USD now, the EUR redemption cannot be granted. A's customer is
    # told so, the log names the redemption at ERROR, the intent stays
    # pending (as both say), and A's try is not held against the project.
    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        redemption = stub.inner.redeem(code, **kwargs)
        if stub.redeems == 1:
            edited_to_usd(stub)
            with pytest.raises(base.CatalogProtocolError):
                service.activate_voucher("p1", code, at=T0)
            order = service.create_order("p1", "10", currency="USD", at=T0)
            service.pay_order(order.id, at=T0)
        return redemption

    stub.on_redeem = redeem
    with caplog.at_level(logging.ERROR, logger="ovh_credit_plugin"), \
            pytest.raises(exceptions.CurrencyMismatch) as refused:
        service.activate_voucher("p1", CODE, at=T0)
    assert str(refused.value) == (
        f"voucher {MASKED} was redeemed in EUR, but project p1 bills in USD: it stays "
        "pending until support resolves it")
    [logged] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.startswith(
        f"voucher {MASKED}: the catalog redeemed it ({redemption_id(stub)}) for project p1 "
        "in EUR, but the project bills in USD: its activation stays pending")
    assert [p["code"] for p in service.pending_activations()] == [CODE]
    assert p1_credits(service) == [("purchased", "USD", Decimal("10.00"))]
    assert events(service) == []  # A's reservation dropped; B reserved nothing
    assert redemptions(service, CODE) == 1


# -- a resume dropping the intent while the first try's POST runs -------------------------


@on_every_backend
@pytest.mark.parametrize("answer", ["in another currency", "lost"])
def test_an_intent_a_resume_dropped_during_the_post_is_kept_for_the_redemption(
    service: CreditService, stub: StubCatalog, answer: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    # p1 holds EUR (a credit). Try A looks the EUR voucher up and sends its
    # POST; the operator moves the voucher to USD before the POST arrives,
    # and try B (a second click) resumes the intent meanwhile: its lookup
    # says USD, p1 cannot take it, and B, which cannot know that A's POST is
    # on its way, drops the intent as one never sent. The catalog then
    # redeems in USD; A's answer says so (an error: A's lookup said EUR), or
    # is lost. The code is used at the catalog: A writes its intent again,
    # marked as sent, so that the next try replays the key and the log names
    # the redemption (it used to leave nothing on our side, and a WARNING
    # saying the activation was left pending).
    holds_eur(service)

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        if stub.redeems == 1:  # A's POST, on its way
            edited_to_usd(stub)
            with pytest.raises(exceptions.CurrencyMismatch,
                               match="this voucher is in USD but project p1 bills in EUR"):
                service.activate_voucher("p1", code, at=T0)
            assert service.pending_activations() == []
            redemption: models.Redemption = in_usd(stub.inner.redeem(code, **kwargs))
            if answer == "lost":
                raise base.CatalogUnavailable("no complete answer within the 10 s deadline")
            return redemption
        replayed: models.Redemption = in_usd(stub.inner.redeem(code, **kwargs))
        return replayed

    stub.on_redeem = redeem
    failure = base.CatalogProtocolError if answer != "lost" else base.CatalogUnavailable
    with pytest.raises(failure):
        service.activate_voucher("p1", CODE, at=T0)
    assert redemptions(service, CODE) == 1
    assert [(p["code"], p["created_at"]) for p in service.pending_activations()] == [
        (CODE, T0)]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ovh_credit_plugin"), \
            pytest.raises(exceptions.CurrencyMismatch) as refused:
        service.activate_voucher("p1", CODE, at=LATER)
    assert str(refused.value) == (
        f"voucher {MASKED} was redeemed in USD, but project p1 bills in EUR: it stays "
        "pending until support resolves it")
    [logged] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"({redemption_id(stub)})" in logged
    assert [p["code"] for p in service.pending_activations()] == [CODE]
    assert redemptions(service, CODE) == 1
    assert p1_credits(service) == [("purchased", "EUR", Decimal("10.00"))]
    assert events(service) == []  # neither A (its POST failed) nor B nor C counted


@on_every_backend
def test_an_intent_a_resume_dropped_is_written_again_for_a_new_project_and_granted(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # As above with a JPY voucher for a new project and its lookup refused at
    # B (a lagging replica): B sends the key and the catalog refuses it (the
    # replica again): B drops the intent, now marked, and the project's
    # currency with it. A's POST then redeems and its answer is lost. A writes
    # the intent again: the next try replays the key and grants once.
    def get(code: str) -> models.Voucher:
        if stub.gets == 1:
            return stub.inner.get(code)
        raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        if stub.redeems == 1:  # A's POST: B first
            with pytest.raises(exceptions.VoucherRefused):
                service.activate_voucher("p1", code, at=T0)
            assert service.pending_activations() == []
            assert service.project_currency("p1") is None
            stub.inner.redeem(code, **kwargs)
            raise base.CatalogUnavailable("no complete answer within the 10 s deadline")
        if stub.redeems == 2:  # B's, on a replica that does not know the code
            raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)
        return stub.inner.redeem(code, **kwargs)

    stub.on_get, stub.on_redeem = get, redeem
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", "YEN-1000", at=T0)
    assert [p["code"] for p in service.pending_activations()] == ["YEN-1000"]
    assert service.project_currency("p1") == "JPY"
    stub.on_get = None
    credit, created = service.activate_voucher_outcome("p1", "YEN-1000", at=LATER)
    assert created and (credit.currency, credit.total) == ("JPY", Decimal("1000"))
    assert service.pending_activations() == []
    assert redemptions(service, "YEN-1000") == 1
    assert [r["event"] for r in service.voucher_attempts("p1", at=LATER)] == ["failed"]  # B's


# -- what the mark leaves alone ------------------------------------------------------------


@on_every_backend
def test_a_first_try_whose_answer_is_lost_after_a_resume_granted_grants_nothing_more(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # A's POST redeems; before its answer (lost) arrives, B resumes the intent
    # and grants. A's mark finds the activation granted: nothing is written
    # again, A's try is not counted, and every later try reads the one credit.
    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        redemption = stub.inner.redeem(code, **kwargs)
        if stub.redeems == 1:
            service.activate_voucher("p1", code, at=T0)
            raise base.CatalogUnavailable("no complete answer within the 10 s deadline")
        return redemption

    stub.on_redeem = redeem
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", CODE, at=T0)
    assert service.pending_activations() == []
    [credit] = service.list_credits("p1", at=T0)
    assert service.activate_voucher_outcome("p1", CODE, at=LATER) == (credit, False)
    assert redemptions(service, CODE) == 1
    assert events(service) == []


@on_every_backend
def test_a_catalog_down_at_the_post_then_an_edit_redeems_on_the_replay(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # The price of trusting the replay: A's POST never reached the catalog
    # (down), and the operator then moves the voucher to USD, which p1 (a
    # credit in EUR) cannot take. Nothing tells an unsent POST from a lost
    # answer: the next try replays the key, and the catalog redeems the code
    # now, in USD. It stays pending, said as such (the previous code refused
    # it before redeeming, and dropped the intent: a lost answer's
    # redemption was lost with it).
    holds_eur(service)

    def down(code: str, **kwargs: Any) -> models.Redemption:
        raise base.CatalogUnavailable("connection refused")

    stub.on_redeem = down
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", CODE, at=T0)
    assert redemptions(service, CODE) == 0
    edited_to_usd(stub)
    stub.on_redeem = lambda code, **kwargs: in_usd(stub.inner.redeem(code, **kwargs))
    with pytest.raises(exceptions.CurrencyMismatch, match="was redeemed in USD"):
        service.activate_voucher("p1", CODE, at=LATER)
    assert redemptions(service, CODE) == 1
    assert [p["code"] for p in service.pending_activations()] == [CODE]
    assert p1_credits(service) == [("purchased", "EUR", Decimal("10.00"))]


def test_a_catalog_that_redeems_in_another_currency_than_it_looks_up_is_trusted_on_replay(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # A broken catalog: its lookup always says EUR, its redemption always USD.
    # The first try refuses the answer (the catalog's error), and keeps the
    # intent; the replay cannot tell this from a voucher moved to USD after
    # the lookup and back: it grants what the redemption says, in USD, p1
    # moving to USD (nothing else held EUR). One credit, the catalog's.
    stub.on_redeem = lambda code, **kwargs: in_usd(stub.inner.redeem(code, **kwargs))
    with pytest.raises(base.CatalogProtocolError, match="in USD, but the voucher is in EUR"):
        service.activate_voucher("p1", CODE, at=T0)
    credit, created = service.activate_voucher_outcome("p1", CODE, at=LATER)
    assert created and (credit.currency, credit.total) == ("USD", Decimal("50.00"))
    assert service.project_currency("p1") == "USD"
    assert redemptions(service, CODE) == 1


# -- the mark's lock (PostgreSQL, MariaDB: SQLite writers never race) ----------------------


LOCKED_ACTIVATION = re.compile(
    r"^SELECT .*FROM cloud_credit_voucher_activations WHERE .*FOR UPDATE$")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("resume", ["claim", "grant"])
def test_the_mark_of_a_failed_post_waits_for_a_resume_holding_the_intent(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    server_pool: ServerPool, caplog: pytest.LogCaptureFixture, resume: str,
) -> None:
    # Try A's POST is on its way; resume B locks the intent's row, in its claim
    # (before its POST) or its grant (after it). A's POST then fails (an
    # outage): A's mark (the row, then A's reservation) waits for B's
    # transaction, which goes on to lock the project's row, and nothing
    # deadlocks (no transaction retried). B grants once; A's try is not held
    # against the project.
    a_sending, a_may_fail = threading.Event(), threading.Event()
    b_ready: list[bool] = []

    def get(code: str) -> models.Voucher:
        answer = stub.inner.get(code)
        if threading.current_thread().name == "holder" and resume == "claim":
            b_ready.append(True)
        return answer

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        if threading.current_thread().name == "first try":
            a_sending.set()
            assert a_may_fail.wait(30)
            raise base.CatalogUnavailable("no complete answer within the 10 s deadline")
        redemption = stub.inner.redeem(code, **kwargs)
        b_ready.append(True)
        return redemption

    stub.on_get, stub.on_redeem = get, redeem
    caplog.set_level(logging.WARNING)
    resumed, failed = race_a_resume_with_a_held_first_try(
        service, ledger, server_pool, CODE, started=a_sending, may_fail=a_may_fail,
        holds=lambda statement: bool(b_ready) and bool(LOCKED_ACTIVATION.search(statement)))
    retried = [r.getMessage() for r in caplog.records
               if r.name == "ovh_credit_plugin.ledger.database"]
    assert retried == [], retried
    assert isinstance(failed, base.CatalogUnavailable), (resumed, failed)
    assert isinstance(resumed, tuple), (resumed, failed)
    credit, created = resumed
    assert created and credit.total == Decimal("50.00")
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert service.pending_activations() == []
    assert redemptions(service, CODE) == 1
    assert events(service) == []


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("lookup", ["unavailable", "refused"])
def test_a_first_try_dropping_its_intent_waits_for_a_resume_claiming_it(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    server_pool: ServerPool, caplog: pytest.LogCaptureFixture, lookup: str,
) -> None:
    # The same pair as the mark's, for the drop that came before it: try A's
    # lookup fails (an outage: _abandon) or is refused (an unknown code:
    # _refuse, a failed try) while resume B's claim holds the intent's row.
    # A's drop (of an intent no try sent) waits for the claim, finds the
    # intent marked and leaves it; nothing deadlocks, B grants once.
    a_asking, a_may_fail = threading.Event(), threading.Event()
    b_looked: list[bool] = []

    def get(code: str) -> models.Voucher:
        if threading.current_thread().name == "first try":
            a_asking.set()
            assert a_may_fail.wait(30)
            if lookup == "refused":
                raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}",
                                           status=404)
            raise base.CatalogUnavailable("no complete answer within the deadline")
        answer = stub.inner.get(code)
        b_looked.append(True)
        return answer

    stub.on_get = get
    caplog.set_level(logging.WARNING)
    resumed, failed = race_a_resume_with_a_held_first_try(
        service, ledger, server_pool, CODE, started=a_asking, may_fail=a_may_fail,
        holds=lambda statement: bool(b_looked) and bool(
            LOCKED_ACTIVATION.search(statement)))
    retried = [r.getMessage() for r in caplog.records
               if r.name == "ovh_credit_plugin.ledger.database"]
    assert retried == [], retried
    expected = exceptions.VoucherRefused if lookup == "refused" else base.CatalogUnavailable
    assert isinstance(failed, expected), (resumed, failed)
    assert isinstance(resumed, tuple), (resumed, failed)
    credit, created = resumed
    assert created and credit.total == Decimal("50.00")
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert service.pending_activations() == []
    assert events(service) == (["failed"] if lookup == "refused" else [])
