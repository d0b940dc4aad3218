"""A resumed activation (``Vouchers._resume``) against the other tries of its code, driven
step by step: the catalog stub runs the other try at the exact point (inside this
try's lookup or redemption), or the ledger is left as a crashed try leaves it.

What is asserted is what the customer and the operator see: one credit at most,
the intent kept or dropped, the failed tries counted, what each try answers.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.service import CreditService
from tests.service.test_vouchers import (  # noqa: F401 (backend, stub: fixtures)
    PUBLIC,
    StubCatalog,
    backend,
    crash_before_the_get,
    crash_between_redemption_and_grant,
    failed_attempts,
    on_every_backend,
    redemptions,
    stub,
)
from tests.support.ledgers import T0, Ledger, ServerPool
from tests.support.locks import race

LATER = T0 + dt.timedelta(minutes=5)


def lagging_replica(code: str) -> models.Voucher:
    """A catalog's lookup answered by a replica that does not know the code yet."""
    raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)


def commit_then_lose(catalog: StubCatalog) -> Callable[..., models.Redemption]:
    """A redemption the catalog commits, whose answer is lost."""
    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        catalog.inner.redeem(code, **kwargs)  # the catalog commits...
        raise base.CatalogUnavailable("no complete answer within the 10 s deadline")
    return redeem


def events(service: CreditService) -> list[str]:
    """The events of p1's tries: a try that died holding its reservation stays "running"."""
    return [r["event"] for r in service.voucher_attempts("p1", at=LATER)]


# -- the intent dropped by its first try while a resume looked the code up --------------


@on_every_backend
def test_a_resume_whose_lookup_is_refused_after_the_first_try_dropped_the_intent_sends_nothing(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # Try A writes its intent and asks the catalog; try B (a second click) finds
    # the intent pending and resumes it. A's lookup is refused (unknown code):
    # A drops its intent, never sent, and releases the currency it fixed. Then
    # B's lookup is refused too, and B finds no intent: nothing was ever sent
    # under the key, so nothing is redeemed. B is refused as a failed try of
    # its own, at its own time, without asking the catalog to redeem.
    code = "NO-SUCH-CODE"
    a_asking, b_asking, a_done = threading.Event(), threading.Event(), threading.Event()

    def get(asked: str) -> models.Voucher:
        if threading.current_thread().name == "first try":
            a_asking.set()
            assert b_asking.wait(20)
        else:
            b_asking.set()
            assert a_done.wait(20)
        return stub.inner.get(asked)

    stub.on_get = get
    outcome: dict[str, BaseException] = {}

    def first_try() -> None:
        try:
            service.activate_voucher("p1", code, at=T0)
        except BaseException as error:
            outcome["a"] = error
        finally:
            a_done.set()

    thread = threading.Thread(target=first_try, name="first try")
    thread.start()
    try:
        assert a_asking.wait(20)
        with pytest.raises(exceptions.VoucherRefused) as refused:
            service.activate_voucher("p1", code, at=LATER)
    finally:
        b_asking.set()
        thread.join(30)
    assert isinstance(outcome.get("a"), exceptions.VoucherRefused), outcome
    assert str(refused.value) == PUBLIC
    assert "unknown voucher" in refused.value.reason
    assert stub.redeems == 0
    assert service.pending_activations() == []
    assert service.project_currency("p1") is None
    attempts = service.voucher_attempts("p1", at=LATER)
    assert [(r["event"], r["created_at"]) for r in attempts] == [
        ("failed", T0), ("failed", LATER)]
    for attempt in attempts:
        assert attempt["reason"].startswith(base.mask_code(code) + ": unknown voucher")


# -- the intent granted by another try while a resume looked the code up ----------------


@on_every_backend
@pytest.mark.parametrize("lookup", ["answered", "refused"])
def test_a_resume_answers_the_credit_another_try_granted_during_its_lookup(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, lookup: str,
) -> None:
    # A try died after the catalog redeemed the code: its intent is pending.
    # Try B resumes it; during B's lookup, try C (another worker) resumes it
    # too and grants. B then finds the activation granted: its redemption
    # replays under the same key and B answers C's credit, created by C.
    # Whether B's lookup was answered or refused (a replica that lags) makes
    # no difference: no failed try, one credit, one redemption.
    crash_between_redemption_and_grant(service, monkeypatch)
    other = ledger.service()
    granted: list[models.Credit] = []

    def other_try_first(code: str) -> models.Voucher:
        if not granted:
            credit, created = other.activate_voucher_outcome("p1", code, at=T0)
            assert created
            granted.append(credit)
        if lookup == "refused":
            return lagging_replica(code)
        return stub.inner.get(code)

    stub.on_get = other_try_first
    try:
        credit, created = service.activate_voucher_outcome("p1", "WELCOME-2026", at=LATER)
    finally:
        other.close()
    assert (credit, created) == (granted[0], False)
    assert credit.total == Decimal("50.00")
    assert [c.id for c in service.list_credits("p1", at=LATER)] == [credit.id]
    assert redemptions(service, "WELCOME-2026") == 1
    assert service.pending_activations() == []
    assert events(service) == ["running"]  # the try that died; the resumes reserve nothing


# -- what a resume leaves of the intent ---------------------------------------------------


def test_a_resume_that_fails_again_leaves_the_intent_as_first_recorded(
    service: CreditService, stub: StubCatalog, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    # The operator's list of pending activations says since when each one is
    # pending: a resume in the project's currency that fails again (its answer
    # lost too) does not make the activation look new.
    crash_between_redemption_and_grant(service, monkeypatch)
    stub.on_redeem = commit_then_lose(stub)
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", "WELCOME-2026", at=LATER)
    assert [(p["project_id"], p["code"], p["created_at"])
            for p in service.pending_activations()] == [("p1", "WELCOME-2026", T0)]
    stub.on_redeem = None
    credit = service.activate_voucher("p1", "WELCOME-2026", at=LATER)
    assert credit.total == Decimal("50.00") and credit.valid_from == T0
    assert redemptions(service, "WELCOME-2026") == 1
    assert service.pending_activations() == []


@on_every_backend
def test_a_resume_in_the_vouchers_currency_drops_an_intent_a_refused_lookup_sent(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # A try of a JPY voucher for a new project died before its lookup: its
    # intent holds EUR (the default). Resume B's lookup was refused (a lagging
    # replica), so B sent the key without moving the project; the catalog
    # redeemed, B's answer was lost. Resume C's lookup tells JPY: C must move
    # the project to JPY, dropping the intent B marked as sent and writing it
    # again, or the grant of the redeemed code meets the intent's own EUR.
    crash_before_the_get(service, stub, "YEN-1000")
    stub.on_get = lagging_replica
    stub.on_redeem = commit_then_lose(stub)
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", "YEN-1000", at=T0)
    assert redemptions(service, "YEN-1000") == 1
    assert [p["code"] for p in service.pending_activations()] == ["YEN-1000"]
    assert service.project_currency("p1") == "EUR"
    stub.on_get = stub.on_redeem = None
    credit, created = service.activate_voucher_outcome("p1", "YEN-1000", at=LATER)
    assert created and (credit.currency, credit.total) == ("JPY", Decimal("1000"))
    assert service.project_currency("p1") == "JPY"
    assert [c.id for c in service.list_credits("p1", at=LATER)] == [credit.id]
    assert redemptions(service, "YEN-1000") == 1
    assert service.pending_activations() == []
    assert events(service) == ["running"]


def test_a_resumed_redemption_in_another_currency_than_the_lookup_is_the_catalogs_error(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # The lookup says EUR, the redemption comes back in JPY: a broken catalog,
    # said as such (not "your project bills in EUR"), and nothing is granted;
    # the intent stays pending, and a replay that answers right grants once.
    crash_before_the_get(service, stub, "WELCOME-2026")

    def in_yen(code: str, **kwargs: Any) -> models.Redemption:
        return stub.inner.redeem(code, **kwargs).model_copy(update={"currency": "JPY"})

    stub.on_redeem = in_yen
    with pytest.raises(base.CatalogProtocolError, match="in JPY, but the voucher is in EUR"):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert service.list_credits("p1", at=T0) == []
    assert [p["code"] for p in service.pending_activations()] == ["WELCOME-2026"]
    assert events(service) == ["running"]
    stub.on_redeem = None
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert (credit.currency, credit.total) == ("EUR", Decimal("50.00"))
    assert redemptions(service, "WELCOME-2026") == 1


# -- a first try moving the project while a resume had its intent -------------------------


@on_every_backend
def test_a_first_try_moving_the_project_keeps_redeeming_an_intent_a_resume_sent(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # Try A of a JPY voucher for a new project writes its intent in EUR (the
    # default) and asks the catalog. Meanwhile resume B's lookup is refused (a
    # lagging replica): B sends the key as it is, the catalog redeems, B's
    # answer is lost. A's lookup then says JPY: A moves the project to JPY (the
    # intent B sent goes with it, written again in JPY) and redeems under the
    # same key: the catalog's redemption is A's, granted once, in JPY.
    def get(code: str) -> models.Voucher:
        if stub.gets == 1:  # A's lookup: B runs meanwhile
            answer = stub.inner.get(code)
            with pytest.raises(base.CatalogUnavailable):
                service.activate_voucher("p1", code, at=T0)
            return answer
        return lagging_replica(code)

    lost = commit_then_lose(stub)

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        if stub.redeems == 1:  # B's
            return lost(code, **kwargs)
        return stub.inner.redeem(code, **kwargs)

    stub.on_get, stub.on_redeem = get, redeem
    credit, created = service.activate_voucher_outcome("p1", "YEN-1000", at=T0)
    assert created and (credit.currency, credit.total) == ("JPY", Decimal("1000"))
    assert stub.redeems == 2 and redemptions(service, "YEN-1000") == 1
    assert service.project_currency("p1") == "JPY"
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert service.pending_activations() == []
    assert events(service) == ["succeeded"]


@on_every_backend
def test_a_first_try_whose_intent_a_refused_resume_dropped_lets_the_catalog_decide(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
) -> None:
    # p1 once ordered in JPY (cancelled: nothing holds JPY). Try A of the
    # single-use EUR code writes its intent (holding JPY) and asks the catalog,
    # which finds the code usable. Before that answer arrives, p2 uses the code
    # up, and resume B of p1's intent is refused at its lookup (an HTTP catalog
    # answers a used-up code with 409) and at its redemption: B drops the
    # intent. A then needs the project in EUR and finds no intent: it writes it
    # again and asks the catalog to redeem, which refuses. Both of p1's tries
    # are refused as tries; p2 keeps the only credit.
    order = service.create_order("p1", "10", currency="JPY", at=T0)
    service.cancel_order(order.id, at=T0)
    other = ledger.service()
    answers: list[BaseException] = []

    def get(code: str) -> models.Voucher:
        if stub.gets == 1:  # A's lookup, answered before p2 used the code up
            answer = stub.inner.get(code)
            other.activate_voucher("p2", code, at=T0)
            with pytest.raises(exceptions.VoucherRefused) as refused:
                service.activate_voucher("p1", code, at=T0)
            answers.append(refused.value)
            return answer
        raise base.VoucherAlreadyRedeemed(f"voucher {base.mask_code(code)} is used up",
                                          status=409)

    stub.on_get = get
    try:
        with pytest.raises(exceptions.VoucherRefused) as refused:
            service.activate_voucher("p1", "GPU-ONLY", at=T0)
    finally:
        other.close()
    assert [str(e) for e in (*answers, refused.value)] == [PUBLIC, PUBLIC]
    assert "used up" in refused.value.reason
    assert stub.redeems == 2 and redemptions(service, "GPU-ONLY") == 1
    assert service.list_credits("p1", at=T0) == []
    assert [c.total for c in service.list_credits("p2", at=T0)] == [Decimal("20.00")]
    assert service.pending_activations() == []
    assert failed_attempts(service) == 2


# -- a check of a code whose activation is pending, or granted ---------------------------


def test_a_check_tells_a_pending_activation_from_a_granted_one(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # Pending (a try died before its lookup): activating the code finishes it,
    # so the check says what the catalog says, redeemable. Granted: the
    # voucher, not redeemable for this project. Neither counts as a try.
    crash_before_the_get(service, stub, "WELCOME-2026")
    preview = service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    assert (preview.redeemable, preview.reason) == (True, "redeemable")
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    preview = service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    assert (preview.redeemable, preview.reason) == (
        False, "project p1 has already activated this voucher")
    assert (preview.voucher.code, preview.voucher.amount) == ("WELCOME-2026", credit.total)
    assert events(service) == ["running"]


# -- a resume whose lookup is refused sends the key in no currency ----------------------


def test_a_resume_whose_lookup_is_refused_grants_what_the_catalog_redeemed(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # A try of a JPY voucher for a new project died before its lookup (intent
    # in EUR). The resume's lookup is refused (a lagging replica) and it sends
    # the key; the catalog redeems 1000 JPY for p1. Nothing but the intent
    # holds EUR: the redeemed code is granted, in JPY (it was answered
    # "project p1 bills in EUR, not JPY" and left pending).
    crash_before_the_get(service, stub, "YEN-1000")
    stub.on_get = lagging_replica
    credit, created = service.activate_voucher_outcome("p1", "YEN-1000", at=T0)
    assert created and (credit.currency, credit.total) == ("JPY", Decimal("1000"))


@pytest.mark.xfail(strict=True, reason=(
    "bug: a resume whose lookup is refused redeems a voucher its project cannot take "
    "(an order holds the project's currency): redeemed at the catalog, never grantable"))
def test_a_resume_whose_lookup_is_refused_redeems_nothing_the_project_cannot_take(
    service: CreditService, stub: StubCatalog,  # noqa: F811
) -> None:
    # As above, but the project's first order (EUR) came after the crash. With
    # its lookup answered, the resume is refused before anything is redeemed
    # (test_an_order_after_a_crash_before_the_get_makes_the_resumed_voucher_a_mismatch);
    # refused, it sends the key and the catalog redeems a JPY voucher for an
    # EUR project: left pending, every resume answered "voucher YEN…0 was
    # redeemed in JPY, but project p1 bills in EUR" for as long as the order
    # holds EUR, and for good once it is paid: the code is used, no credit
    # will ever come of it (tests/service/test_voucher_currency_edited.py).
    crash_before_the_get(service, stub, "YEN-1000")
    service.create_order("p1", "10", at=T0)
    stub.on_get = lagging_replica
    with pytest.raises((exceptions.CurrencyMismatch, exceptions.VoucherRefused)):
        service.activate_voucher("p1", "YEN-1000", at=T0)
    assert redemptions(service, "YEN-1000") == 0


def race_a_resume_with_a_held_first_try(
    service: CreditService, ledger: Ledger, server_pool: ServerPool, code: str, *,
    started: threading.Event, may_fail: threading.Event, holds: Callable[[str], bool],
) -> tuple[Any, Any]:
    """Try A of ``code`` for p1 runs in a thread ("first try") until its catalog call
    sets ``started`` and waits for ``may_fail``; resume B then activates the same
    code and holds the lock ``holds`` names (tests.support.locks.race) while A is let
    fail. (B's outcome, A's): each an (credit, created) or the exception raised."""
    outcome: dict[str, Any] = {}

    def first_try() -> None:
        try:
            outcome["a"] = service.activate_voucher_outcome("p1", code, at=T0)
        except BaseException as error:
            outcome["a"] = error

    first = threading.Thread(target=first_try, name="first try")
    first.start()
    assert started.wait(30)

    def fail_first_try() -> Any:
        may_fail.set()
        first.join(60)
        return outcome["a"]

    engine = service.database.engine
    try:
        return race(
            ledger.backend, server_pool,
            holder=(engine, lambda: service.activate_voucher_outcome("p1", code, at=T0)),
            waiter=(engine, fail_first_try), holds=holds)
    finally:
        may_fail.set()
        first.join(60)


# -- the claim's lock (PostgreSQL, MariaDB: SQLite writers never race) --------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_first_try_failing_at_its_lookup_waits_for_the_resume_claiming_its_intent(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    server_pool: ServerPool,
) -> None:
    # Try A wrote its intent and waits for the catalog; resume B looked the
    # code up and claims the intent (marks it as sent, then redeems). A's
    # lookup then fails (an outage): A drops its intent unless a resume sent
    # it. A must wait for B's claim, holding the intent's row, and then find
    # it marked: dropped between B's read and B's mark, the project's currency
    # was released under a redemption B was about to ask for.
    a_asking, a_may_fail = threading.Event(), threading.Event()
    b_looked: list[bool] = []

    def get(code: str) -> models.Voucher:
        if threading.current_thread().name == "first try":
            a_asking.set()
            assert a_may_fail.wait(30)
            raise base.CatalogUnavailable("no complete answer within the deadline")
        answer = stub.inner.get(code)
        b_looked.append(True)
        return answer

    stub.on_get = get
    claim = re.compile(r"^SELECT .*FROM cloud_credit_voucher_activations WHERE ")
    resumed, failed = race_a_resume_with_a_held_first_try(
        service, ledger, server_pool, "WELCOME-2026", started=a_asking, may_fail=a_may_fail,
        holds=lambda statement: bool(b_looked) and claim.search(statement) is not None)
    assert isinstance(failed, base.CatalogUnavailable), (resumed, failed)
    assert isinstance(resumed, tuple), (resumed, failed)
    credit, created = resumed
    assert created and credit.total == Decimal("50.00")
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert service.pending_activations() == []
