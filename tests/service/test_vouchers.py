"""Voucher activation in the service, with the ``file`` catalog (and stubs of it).

Activation, one activation per project and code, single-use codes,
throttling of failed activations, one public message for unknown, used and
expired codes, crash-safe activation (pending intents), ``check``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import contracts, exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog import file as file_catalog
from ovh_credit_plugin.catalog.file import FileVoucherCatalog
from ovh_credit_plugin.ledger import credits, projects, schema
from ovh_credit_plugin.service import CreditService
from tests.support.cli import Cli
from tests.support.clock import TEST_NOW
from tests.support.ledgers import BACKENDS, T0, VOUCHERS, Ledger, ServerPool
from tests.support.locks import LockWaits

PUBLIC = exceptions.VoucherRefused.public_message
# The rules that lean on the database (unique activations, the throttle's
# reservations, locks on resume) run on every backend; the rest on SQLite.
on_every_backend = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def count(service: CreditService, table: sa.Table, *where: Any) -> int:
    return int(service.database.read(
        lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()
    ))


def failed_attempts(service: CreditService, project: str = "p1") -> int:
    table = schema.voucher_attempts
    return count(service, table, table.c.project_id == project, table.c.succeeded.is_(False))


def redemptions(service: CreditService, code: str) -> int:
    table = schema.catalog_redemptions
    return count(service, table, table.c.code == code)


class StubCatalog(base.VoucherCatalog):
    """The file catalog, with ``get``/``redeem`` replaceable per test."""

    def __init__(self, inner: base.VoucherCatalog) -> None:
        self.inner = inner
        self.on_get: Callable[[str], models.Voucher] | None = None
        self.on_redeem: Callable[..., models.Redemption] | None = None
        self.gets = 0
        self.redeems = 0

    def get(self, code: str) -> models.Voucher:
        self.gets += 1
        if self.on_get is not None:
            return self.on_get(code)
        return self.inner.get(code)

    def redeem(self, code: str, **kwargs: Any) -> models.Redemption:
        self.redeems += 1
        if self.on_redeem is not None:
            return self.on_redeem(code, **kwargs)
        return self.inner.redeem(code, **kwargs)

    def answer_ahead(self, project_id: str, code: str) -> None:
        """Fetch the GET's and the POST's answers now: the ``file`` catalog's redemption
        is a write to the ledger database, which would blur a count of the activation's."""
        voucher = self.inner.get(code)
        redemption = self.inner.redeem(code, project_id=project_id, at=T0,
                                       idempotency_key=base.idempotency_key(project_id, code))
        self.on_get = lambda code: voucher
        self.on_redeem = lambda code, **kwargs: redemption


@pytest.fixture
def stub(service: CreditService) -> Iterator[StubCatalog]:
    stub = StubCatalog(service.catalog)
    original = service.catalog
    service.catalog = stub
    yield stub
    service.catalog = original


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command line's mode: messages written at once, in the process's language
    (English here), whatever an in-process REST API left the mode at."""
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", False)


def throttled_service(service: CreditService, *, limit: int = 3, window: int = 600) -> None:
    service.settings = replace(service.settings, voucher_max_failed_attempts=limit,
                               voucher_attempt_window=window)


# -- activation ------------------------------------------------------------------------


def test_activation_grants_the_voucher_once(service: CreditService) -> None:
    credit = service.activate_voucher("p1", "  welcome-2026 ", at=T0)
    assert credit.kind == "voucher"
    assert credit.source == "WELCOME-2026"
    assert credit.total == Decimal("50.00")
    assert credit.available == Decimal("50.00")
    assert credit.currency == "EUR"
    assert credit.description == "Welcome voucher"
    assert credit.valid_from == T0
    assert credit.valid_until == T0 + dt.timedelta(days=90)
    assert redemptions(service, "WELCOME-2026") == 1
    assert service.pending_activations() == []
    assert failed_attempts(service) == 0


def test_valid_until_and_products_come_from_the_catalog(service: CreditService) -> None:
    credit = service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert credit.valid_until == dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    assert credit.products == ["gpu"]


@on_every_backend
def test_a_project_activates_a_code_once(service: CreditService) -> None:
    first = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    # Again: the same credit back, not a second one, and no failed attempt.
    again, created = service.activate_voucher_outcome("p1", "welcome-2026", at=T0)
    assert (again, created) == (first, False)
    assert failed_attempts(service) == 0
    # Another project may use a multi-use code.
    other = service.activate_voucher("p2", "WELCOME-2026", at=T0)
    assert other.id != first.id
    assert redemptions(service, "WELCOME-2026") == 2
    assert [c.id for c in service.list_credits("p1", at=T0)] == [first.id]


def test_activating_an_activated_code_again_never_locks_the_project_out(
    service: CreditService, stub: StubCatalog
) -> None:
    """It used to count as a failed try: five of them locked vouchers out for an hour."""
    throttled_service(service, limit=3)
    first = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    gets = stub.gets
    for _ in range(10):
        assert service.activate_voucher_outcome("p1", "WELCOME-2026", at=T0) == (first, False)
    assert stub.gets == gets  # read back from the ledger: the catalog is not asked
    assert failed_attempts(service) == 0
    other, created = service.activate_voucher_outcome("p1", "GPU-ONLY", at=T0)
    assert created and other.id != first.id


def test_a_throttled_project_still_reads_back_a_code_it_activated(
    service: CreditService,
) -> None:
    throttled_service(service, limit=2)
    first = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    for code in ("NOPE-0001", "NOPE-0002"):
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p1", code, at=T0)
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert service.activate_voucher("p1", "WELCOME-2026", at=T0) == first
    assert failed_attempts(service) == 2


@on_every_backend
def test_single_use_code_gives_one_credit(service: CreditService) -> None:
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p2", "GPU-ONLY", at=T0)
    assert str(caught.value) == PUBLIC
    assert "used up" in caught.value.reason
    assert service.list_credits("p2", at=T0) == []
    assert redemptions(service, "GPU-ONLY") == 1


def test_currency_mismatch_is_refused_before_redeeming(service: CreditService) -> None:
    service.create_order("p1", "10", currency="USD", at=T0)
    with pytest.raises(exceptions.CurrencyMismatch) as refused:
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert str(refused.value) == "this voucher is in EUR but project p1 bills in USD"
    assert redemptions(service, "WELCOME-2026") == 0
    assert service.pending_activations() == []
    assert failed_attempts(service) == 0  # a mistake, not a probe


@on_every_backend
def test_a_voucher_in_another_currency_takes_a_project_whose_currency_nothing_holds(
    service: CreditService,
) -> None:
    # Only a cancelled EUR order: nothing holds EUR any more, so a JPY voucher
    # releases it (as a JPY order would) instead of being refused.
    order = service.create_order("p1", "10", at=T0)
    service.cancel_order(order.id, at=T0)
    credit = service.activate_voucher("p1", "YEN-1000", at=T0)
    assert (credit.currency, credit.total) == ("JPY", Decimal("1000"))
    assert service.project_currency("p1") == "JPY"


def test_the_intent_fixes_the_currency_so_a_redeemed_code_is_always_granted(
    service: CreditService, stub: StubCatalog, ledger: Ledger
) -> None:
    # Another worker's first order for the project lands between the intent
    # and the grant: it is the order that is refused, never the grant of a
    # code the catalog has already redeemed.
    refused: list[Exception] = []

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        redemption = stub.inner.redeem(code, **kwargs)
        other = ledger.service()
        try:
            other.create_order("p1", "10", currency="USD", at=T0)
        except exceptions.CurrencyMismatch as error:
            refused.append(error)
        finally:
            other.close()
        return redemption

    stub.on_redeem = redeem
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert credit.currency == "EUR" and credit.total == Decimal("50.00")
    assert len(refused) == 1
    assert service.pending_activations() == []
    assert service.list_orders("p1") == []


@on_every_backend
def test_a_refused_redemption_leaves_no_currency_behind(
    service: CreditService, stub: StubCatalog
) -> None:
    # The GET said yes to a JPY voucher (the intent fixed the new project's
    # currency), then the catalog refused the POST: nothing was granted, so
    # the project's first order still gets the default currency.
    voucher = stub.inner.get("WELCOME-2026").model_copy(
        update={"currency": "JPY", "amount": Decimal(5000)})

    def used_up(code: str, **kwargs: Any) -> models.Redemption:
        raise base.VoucherAlreadyRedeemed("voucher WEL…6 is used up", status=409)

    stub.on_get = lambda code: voucher
    stub.on_redeem = used_up
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert service.project_currency("p1") is None
    assert service.create_order("p1", "10", at=T0).currency == "EUR"
    # A project that holds something keeps its currency through a refusal.
    service.create_order("p3", "10", currency="JPY", at=T0)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p3", "WELCOME-2026", at=T0)
    assert service.project_currency("p3") == "JPY"


@on_every_backend
@pytest.mark.parametrize("writer", ["with its reservation", "moving the currency or granting"])
def test_releasing_a_currency_waits_for_an_intent_being_written(
    service: CreditService, backend: str, server_pool: ServerPool, writer: str
) -> None:
    # Activation A was refused at the POST and releases the project's currency
    # while activation B of another code, for the same project, is writing its
    # intent (it found the row, so it inserts none): the release waits for B
    # and then keeps the row, or B's grant would meet an order in another
    # currency made meanwhile, after the catalog redeemed B's code. A new try
    # writes its intent with its reservation (record_first_intent); a try that
    # moves the project to the voucher's currency, or a grant whose intent a
    # failure dropped, writes it with record_intent.
    from ovh_credit_plugin.service import vouchers

    key_b = base.idempotency_key("p1", "WELCOME-2026")
    service.database.write(lambda conn: projects.ensure(conn, "p1", "EUR", at=T0))
    conn_b = service.database.engine.connect()
    writing = conn_b.begin()
    if service.database.dialect == "sqlite":
        conn_b.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: B holds the write lock
    if writer == "with its reservation":
        vouchers.record_first_intent(conn_b, project_id="p1", code="WELCOME-2026", key=key_b,
                                     default="USD", at=T0)
    else:
        vouchers.record_intent(conn_b, project_id="p1", code="WELCOME-2026", key=key_b,
                               currency="EUR", at=T0)
    waits = LockWaits(backend, server_pool)

    def began(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name == "releasing":
            waits.began.set()

    sa.event.listen(service.database.engine, "before_cursor_execute", began)
    releasing = threading.Thread(target=service.vouchers.release_currency, args=("p1",),
                                 name="releasing")
    try:
        releasing.start()
        # Until the server says the release waits on B's lock (or it finished: then
        # it did not wait, and what follows shows it).
        waits.until(lambda: not releasing.is_alive())
        writing.commit()
    finally:
        sa.event.remove(service.database.engine, "before_cursor_execute", began)
        waits.close()
    conn_b.close()
    releasing.join(30)
    assert not releasing.is_alive()
    assert service.project_currency("p1") == "EUR"
    with pytest.raises(exceptions.CurrencyMismatch):
        service.create_order("p1", "10", currency="USD", at=T0)


def test_invalid_project_or_code_is_refused_offline(
    service: CreditService, stub: StubCatalog
) -> None:
    with pytest.raises(exceptions.InvalidVoucherCode):
        service.activate_voucher("p1", "A;B-C", at=T0)
    with pytest.raises(exceptions.InvalidInput):
        service.activate_voucher("", "WELCOME-2026", at=T0)
    assert stub.gets == stub.redeems == 0



@on_every_backend
def test_a_success_is_two_write_transactions(
    service: CreditService, stub: StubCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reservation with the intent, then the grant (which closes the
    # reservation): each commit is an fsync, so a third one is a regression
    # (issue 15, decision 1). SQLite counts the tries
    # inside the reserving transaction; the servers read after it. The file
    # catalog keeps its redemptions in the ledger database: its answers are
    # fetched before counting.
    stub.answer_ahead("p1", "WELCOME-2026")
    calls: list[str] = []
    write, read = service.database.write, service.database.read

    def counted(kind: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(kind)
            return call(*args, **kwargs)
        return run

    monkeypatch.setattr(service.database, "write", counted("write", write))
    monkeypatch.setattr(service.database, "read", counted("read", read))
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    expected_reads = 0 if service.database.dialect == "sqlite" else 1
    assert calls.count("write") == 2
    assert calls.count("read") == expected_reads
    table = schema.voucher_attempts
    assert count(service, table, table.c.project_id == "p1", table.c.succeeded.is_(True)) == 1
    assert failed_attempts(service) == 0


def test_a_throttled_try_writes_nothing_on_sqlite(service: CreditService, ledger: Ledger) -> None:
    # Counted inside the transaction that would reserve: nothing to undo.
    throttled_service(service, limit=1)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    wal = ledger.path.with_name(ledger.path.name + "-wal")
    size = wal.stat().st_size
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert wal.stat().st_size == size  # no commit reached the log
    table = schema.voucher_attempts
    assert count(service, table) == 1

# -- one public message ------------------------------------------------------------------


def test_unknown_used_and_expired_codes_look_the_same_to_the_customer(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
    service.activate_voucher("p9", "GPU-ONLY", at=T0)  # single use: now used
    after_end = dt.datetime(2027, 6, 1, tzinfo=dt.timezone.utc)
    cases = {
        "unknown": ("NO-SUCH-CODE", T0),
        "used": ("GPU-ONLY", T0),
        "revoked": ("REVOKED-1", T0),
        "expired": ("GPU-ONLY", after_end),
    }
    errors = {}
    for label, (code, at) in cases.items():
        with pytest.raises(exceptions.VoucherRefused) as caught:
            service.activate_voucher("p2", code, at=at)
        errors[label] = caught.value
    assert {str(e) for e in errors.values()} == {PUBLIC}
    assert {type(e) for e in errors.values()} == {exceptions.VoucherRefused}
    assert "unknown voucher" in errors["unknown"].reason
    assert "used up" in errors["used"].reason
    assert "revoked" in errors["revoked"].reason
    assert "expired" in errors["expired"].reason
    logged = "\n".join(r.getMessage() for r in caplog.records)
    # Operators get the precise reason, with the code masked.
    for words in ("unknown voucher NO-…E", "GP… is used up", "revoked", "expired"):
        assert words in logged
    assert "NO-SUCH-CODE" not in logged


@pytest.mark.usefixtures("eager")
def test_a_voucher_is_not_activated_before_it_is_valid(
    service: CreditService, stub: StubCatalog
) -> None:
    starts = T0 + dt.timedelta(days=60)
    voucher = stub.inner.get("WELCOME-2026").model_copy(update={"valid_from": starts})
    stub.on_get = lambda code: voucher
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert str(caught.value) == PUBLIC
    assert "not valid before Apr 1, 2026, 10:00:00\u00a0AM\u00a0UTC" in caught.value.reason
    assert stub.redeems == 0 and redemptions(service, "WELCOME-2026") == 0
    assert service.activate_voucher("p1", "WELCOME-2026", at=starts).valid_from == starts


def test_validity_days_count_from_a_later_start_the_catalog_sets(
    service: CreditService, stub: StubCatalog
) -> None:
    # 90 days from activation would end before the credit starts: a burnt code.
    starts = T0 + dt.timedelta(days=120)

    def later(code: str, **kwargs: Any) -> models.Redemption:
        return stub.inner.redeem(code, **kwargs).model_copy(update={"valid_from": starts})

    stub.on_redeem = later
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert credit.valid_from == starts
    assert credit.valid_until == starts + dt.timedelta(days=90)


def test_a_voucher_credit_starts_at_activation_not_at_an_earlier_catalog_start(
    service: CreditService, stub: StubCatalog
) -> None:
    # The catalog's voucher was valid for months; the credit pays only for
    # what comes after the customer activated it.
    def earlier(code: str, **kwargs: Any) -> models.Redemption:
        return stub.inner.redeem(code, **kwargs).model_copy(
            update={"valid_from": T0 - dt.timedelta(days=100)})

    stub.on_redeem = earlier
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert credit.valid_from == T0
    assert credit.valid_until == T0 + dt.timedelta(days=90)


@pytest.mark.parametrize("model", [models.Voucher, models.Redemption])
def test_a_catalog_period_that_ends_before_it_starts_is_refused(model: type[Any]) -> None:
    document = {"id": "r1", "code": "WELCOME-2026", "project_id": "p1", "amount": "5",
                "currency": "EUR", "status": "active", "redeemed_at": T0.isoformat(),
                "valid_from": T0.isoformat(), "valid_until": T0.isoformat()}
    with pytest.raises(ValueError, match="valid_until must be later than valid_from"):
        model.model_validate(document)


def test_expired_voucher_is_refused_with_the_public_message(service: CreditService) -> None:
    after_end = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p1", "GPU-ONLY", at=after_end)
    assert str(caught.value) == PUBLIC
    assert "expired" in caught.value.reason
    assert redemptions(service, "GPU-ONLY") == 0


def test_cli_shows_one_line_for_a_refusal(cli: Cli) -> None:
    result = cli("voucher", "activate", "p1", "NO-SUCH-CODE")
    assert result.code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert PUBLIC in lines[0]


# -- throttling ---------------------------------------------------------------------------


@on_every_backend
def test_failed_activations_are_throttled_per_project(
    service: CreditService, stub: StubCatalog
) -> None:
    throttled_service(service, limit=3, window=600)
    for n in range(3):
        with pytest.raises(exceptions.VoucherRefused) as caught:
            service.activate_voucher("p1", f"WRONG-{n}", at=T0 + dt.timedelta(seconds=n))
        assert not isinstance(caught.value, exceptions.TooManyAttempts)
    gets = stub.gets
    # Even a valid code is refused now, without asking the catalog.
    with pytest.raises(exceptions.TooManyAttempts, match="too many"):
        service.activate_voucher("p1", "WELCOME-2026", at=T0 + dt.timedelta(seconds=10))
    assert stub.gets == gets
    assert failed_attempts(service) == 3  # being throttled does not extend the penalty
    # Off SQLite the intent was written with the reservation, before the
    # count: a throttled try takes it back, with the currency it fixed.
    assert service.pending_activations() == []
    assert service.project_currency("p1") is None
    # Another project is not affected.
    service.activate_voucher("p2", "WELCOME-2026", at=T0 + dt.timedelta(seconds=10))
    # Once the window has passed, p1 may try again.
    later = T0 + dt.timedelta(seconds=601)
    assert service.activate_voucher("p1", "WELCOME-2026", at=later).total == Decimal("50.00")


def test_successes_and_catalog_outages_do_not_count_as_failures(
    service: CreditService, stub: StubCatalog
) -> None:
    throttled_service(service, limit=1)
    service.activate_voucher("p1", "WELCOME-2026", at=T0)

    def down(code: str) -> models.Voucher:
        raise base.CatalogUnavailable("voucher catalog unavailable: connection refused")

    stub.on_get = down
    for _ in range(3):
        with pytest.raises(base.CatalogUnavailable):
            service.activate_voucher("p1", "GPU-ONLY", at=T0)
    # A new project's intent, written before the GET, goes with the
    # default currency it fixed: nothing was asked of the catalog.
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p9", "GPU-ONLY", at=T0)
    assert service.project_currency("p9") is None
    assert service.pending_activations() == []
    stub.on_get = None
    assert failed_attempts(service) == 0
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    table = schema.voucher_attempts
    assert count(service, table, table.c.succeeded.is_(True)) == 2


@on_every_backend
def test_running_attempts_count_against_the_limit(
    service: CreditService, stub: StubCatalog
) -> None:
    # A try in flight holds its reservation: concurrent tries cannot all pass
    # the check before any failure is written.
    throttled_service(service, limit=2)
    inner: list[BaseException] = []

    def reentrant(code: str) -> models.Voucher:
        # While this try is running, others for the same project start.
        stub.on_get = None
        try:
            service.activate_voucher("p1", "NO-SUCH-2", at=T0)
        except exceptions.VoucherRefused as error:
            inner.append(error)
        try:
            service.activate_voucher("p1", "NO-SUCH-3", at=T0)
        except exceptions.VoucherRefused as error:
            inner.append(error)
        return stub.inner.get(code)

    stub.on_get = reentrant
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert [type(e) for e in inner] == [exceptions.VoucherRefused, exceptions.TooManyAttempts]


def test_resuming_a_pending_activation_is_not_throttled(
    service: CreditService, stub: StubCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_between_redemption_and_grant(service, monkeypatch)
    throttled_service(service, limit=2)
    for n in range(2):
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p1", f"WRONG-{n}", at=T0)
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "GPU-ONLY", at=T0)
    # The operator finishes the half-done activation all the same.
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert credit.total == Decimal("50.00")
    assert service.pending_activations() == []


@pytest.mark.usefixtures("eager")
def test_a_throttled_try_says_when_the_project_may_try_again(service: CreditService) -> None:
    throttled_service(service, limit=2, window=600)
    for n in range(3):  # the third one at the limit is refused: two counted
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p1", f"WRONG-{n}", at=T0 + dt.timedelta(seconds=10 * n))
    with pytest.raises(exceptions.TooManyAttempts) as caught:
        service.activate_voucher("p1", "WELCOME-2026", at=T0 + dt.timedelta(seconds=30))
    # One of the two counted tries must leave the window: the oldest, at T0.
    # T0 + 600 s, as English writes a moment.
    assert str(caught.value) == ("too many failed voucher attempts on this project: try again "
                                 "after Jan 31, 2026, 10:10:00\u00a0AM\u00a0UTC")
    assert caught.value.retry_after == 570
    service.activate_voucher("p1", "WELCOME-2026", at=T0 + dt.timedelta(seconds=600))


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sqlite"], indirect=True)
def test_a_try_refused_while_a_place_frees_up_may_try_again_at_once(
        service: CreditService, monkeypatch: pytest.MonkeyPatch) -> None:
    # Off SQLite a try reserves, then counts: at the limit it drops its
    # reservation and is refused. When the other running try ends well in
    # between, a place is free: the refused one is told to try again in one
    # second (it was told "later", which the API made a whole window).
    from ovh_credit_plugin.service.voucher_throttle import Throttle

    throttled_service(service, limit=1, window=3600)
    attempts = schema.voucher_attempts.c
    drop = Throttle.drop
    refused: list[exceptions.TooManyAttempts] = []

    def drop_while_the_other_try_ends_well(throttle: Throttle, attempt: str) -> None:
        drop(throttle, attempt)
        service.database.write(lambda conn: conn.execute(
            schema.voucher_attempts.update()
            .where(attempts.attempt_key != attempt, attempts.reason == "in progress")
            .values(succeeded=True, reason="activated")))

    get = service.catalog.get

    def get_while_another_try_collides(code: str) -> Any:
        if code == "WELCOME-2026" and not refused:  # this try's place is held meanwhile
            monkeypatch.setattr(Throttle, "drop", drop_while_the_other_try_ends_well)
            try:
                service.activate_voucher("p1", "GPU-ONLY", at=T0)
            except exceptions.TooManyAttempts as error:
                refused.append(error)
            finally:
                monkeypatch.setattr(Throttle, "drop", drop)
        return get(code)

    monkeypatch.setattr(service.catalog, "get", get_while_another_try_collides)
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    [error] = refused
    assert (str(error), error.retry_after) == (
        "too many failed voucher attempts on this project: try again after "
        "Jan 31, 2026, 10:00:01\u00a0AM\u00a0UTC", 1)
    assert service.activate_voucher("p1", "GPU-ONLY", at=T0).kind == "voucher"


# -- voucher check, for a project ----------------------------------------------------------


@on_every_backend
def test_a_throttled_project_cannot_probe_codes_with_check(
    service: CreditService, stub: StubCatalog
) -> None:
    throttled_service(service, limit=2)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    # A failed check counts like a failed activation: an unknown code...
    with pytest.raises(base.VoucherNotFound):
        service.check_voucher("WRONG-2", project_id="p1", at=T0)
    assert failed_attempts(service) == 2
    gets = stub.gets
    # ...and the project is now refused, checks as activations, without a catalog call.
    with pytest.raises(exceptions.TooManyAttempts, match="try again after"):
        service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    with pytest.raises(exceptions.TooManyAttempts, match="try again after"):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert stub.gets == gets
    assert failed_attempts(service) == 2
    # Another project, and an operator's check (no project), are not held back.
    assert service.check_voucher("WELCOME-2026", project_id="p2", at=T0).redeemable
    assert service.check_voucher("WELCOME-2026", at=T0).redeemable


def test_a_check_of_a_used_code_counts_and_of_a_good_one_does_not(
    service: CreditService,
) -> None:
    throttled_service(service, limit=1)
    service.activate_voucher("p2", "GPU-ONLY", at=T0)  # single use: now used up
    assert service.check_voucher("WELCOME-2026", project_id="p1", at=T0).redeemable
    assert failed_attempts(service, "p1") == 0
    used = service.check_voucher("GPU-ONLY", project_id="p1", at=T0)
    assert used.redeemable is False
    assert failed_attempts(service, "p1") == 1
    with pytest.raises(exceptions.TooManyAttempts):
        service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    # The good check left nothing behind: only the failed one is recorded.
    table = schema.voucher_attempts
    assert count(service, table, table.c.project_id == "p1") == 1


def test_a_check_tells_a_project_whose_currency_is_held_it_cannot_take_the_voucher(
    service: CreditService,
) -> None:
    # p1 bills in EUR, held by a pending order: a yen voucher would be refused
    # at activation (a currency mismatch, not a failed try), so a check says so.
    throttled_service(service, limit=1)
    order = service.create_order("p1", "10", at=T0)
    preview = service.check_voucher("YEN-1000", project_id="p1", at=T0)
    assert (preview.voucher.amount, preview.voucher.currency) == (Decimal(1000), "JPY")
    assert (preview.redeemable, preview.reason) == (
        False, "this voucher is in JPY but project p1 bills in EUR")
    with pytest.raises(exceptions.CurrencyMismatch, match=preview.reason):
        service.activate_voucher("p1", "YEN-1000", at=T0)
    assert failed_attempts(service, "p1") == 0
    # Once nothing holds the euro (the order cancelled), the project moves to the yen.
    service.cancel_order(order.id, at=T0)
    assert service.check_voucher("YEN-1000", project_id="p1", at=T0).redeemable
    assert service.activate_voucher("p1", "YEN-1000", at=T0).currency == "JPY"


def test_checking_a_code_the_project_activated_is_neither_throttled_nor_counted(
    service: CreditService,
) -> None:
    throttled_service(service, limit=1)
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    # Throttled, yet its own code still reads back (used up: by itself).
    own = service.check_voucher("GPU-ONLY", project_id="p1", at=T0)
    assert own.redeemable is False
    assert failed_attempts(service) == 1


def test_a_catalog_outage_during_a_check_is_not_counted(
    service: CreditService, stub: StubCatalog
) -> None:
    throttled_service(service, limit=1)

    def down(code: str) -> models.Voucher:
        raise base.CatalogUnavailable("voucher catalog unavailable: connection refused")

    stub.on_get = down
    for _ in range(3):
        with pytest.raises(base.CatalogUnavailable):
            service.check_voucher("WELCOME-2026", project_id="p1", at=T0)
    assert count(service, schema.voucher_attempts) == 0


def test_a_check_for_a_project_is_a_change_never_dated_in_the_future(
    service: CreditService,
) -> None:
    future = TEST_NOW + dt.timedelta(days=1)
    with pytest.raises(exceptions.InvalidInput, match="in the future"):
        service.check_voucher("WELCOME-2026", project_id="p1", at=future)
    assert count(service, schema.voucher_attempts) == 0
    # An operator's check only reads: any time.
    assert service.check_voucher("WELCOME-2026", at=future).redeemable


def test_cli_voucher_check_for_a_throttled_project(cli: Cli) -> None:
    for n in range(5):  # voucher_max_failed_attempts' default
        assert cli("voucher", "check", f"NO-SUCH-{n}", "--project", "p1").code == 1
    result = cli("voucher", "check", "WELCOME-2026", "--project", "p1")
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "ovh-credit: too many failed voucher attempts on this project: try again after ")
    assert len(result.stderr.splitlines()) == 1
    assert cli("voucher", "activate", "p1", "WELCOME-2026").stderr == result.stderr
    assert cli.ok("voucher", "check", "WELCOME-2026")["redeemable"] is True


# -- unblock ----------------------------------------------------------------------------------


def block(service: CreditService, project: str = "p1", *, tries: int = 2) -> None:
    for n in range(tries):
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher(project, f"WRONG-{n}", at=T0)
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher(project, "WELCOME-2026", at=T0)


@on_every_backend
def test_an_unblocked_project_tries_again_and_the_limit_counts_only_later_tries(
    service: CreditService,
) -> None:
    throttled_service(service, limit=2)
    block(service)
    block(service, "p2")
    done = service.unblock_vouchers("p1", reason="ticket 42: customer mistyped", operator="ops",
                                    at=T0)
    assert (done.unblocked, done.counted, done.limit, done.cleared) == (True, 2, 2, 2)
    assert (done.reason, done.operator, done.created_at) == ("ticket 42: customer mistyped",
                                                              "ops", T0)
    # The tries stay (the audit trail); they no longer count.
    assert failed_attempts(service) == 2
    # p1 may try again at once, within the same window; p2 is still blocked.
    with pytest.raises(exceptions.VoucherRefused) as again:
        service.activate_voucher("p1", "WRONG-9", at=T0)
    assert not isinstance(again.value, exceptions.TooManyAttempts)
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p2", "WELCOME-2026", at=T0)
    # The limit applies again, to the tries made after the unblock only: one
    # more failure is allowed, the next try is refused.
    with pytest.raises(exceptions.VoucherRefused) as second:
        service.activate_voucher("p1", "WRONG-10", at=T0)
    assert not isinstance(second.value, exceptions.TooManyAttempts)
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    history = service.voucher_attempts("p1", at=T0)
    assert [(r["event"], r["counted"]) for r in history] == [
        ("failed", False), ("failed", False), ("unblock", False),
        ("failed", True), ("failed", True),
    ]
    assert [r["unblock_id"] for r in history[:3]] == [done.id] * 3
    assert (history[2]["operator"], history[2]["cleared"]) == ("ops", 2)


def test_an_unblocked_project_can_activate_a_good_code(service: CreditService) -> None:
    throttled_service(service, limit=2)
    block(service)
    service.unblock_vouchers("p1", reason="verified by phone", operator="ops", at=T0)
    assert service.activate_voucher("p1", "WELCOME-2026", at=T0).total == Decimal("50.00")


def test_unblocking_a_project_that_is_not_blocked_changes_nothing(
    service: CreditService, ledger: Ledger
) -> None:
    throttled_service(service, limit=2)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    before = ledger.checksum()
    done = service.unblock_vouchers("p1", reason="just in case", operator="ops", at=T0)
    assert (done.unblocked, done.counted, done.limit, done.id) == (False, 1, 2, None)
    assert ledger.checksum() == before


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_unblock_needs_a_reason(service: CreditService, ledger: Ledger, reason: str) -> None:
    throttled_service(service, limit=1)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    before = ledger.checksum()
    with pytest.raises(exceptions.InvalidInput, match="needs a reason"):
        service.unblock_vouchers("p1", reason=reason, operator="ops", at=T0)
    assert ledger.checksum() == before


def test_cli_voucher_unblock_and_attempts(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    for n in range(5):  # voucher_max_failed_attempts' default
        assert cli("voucher", "activate", "p1", f"NO-SUCH-{n}").code == 1
    assert "too many" in cli("voucher", "activate", "p1", "WELCOME-2026").stderr
    done = cli.ok("voucher", "unblock", "p1", "--reason", "ticket 42")
    assert {k: done[k] for k in ("project_id", "unblocked", "counted", "limit", "cleared",
                                 "operator", "reason", "created_at")} == {
        "project_id": "p1", "unblocked": True, "counted": 5, "limit": 5, "cleared": 5,
        "operator": "alice", "reason": "ticket 42",
        "created_at": contracts.isoformat(TEST_NOW)}
    assert cli.ok("voucher", "activate", "p1", "WELCOME-2026")["total"] == "50.00"
    # Again: not blocked any more; said, exit status 0, nothing recorded.
    again = cli("voucher", "unblock", "p1", "--reason", "ticket 42")
    assert again.code == 0
    assert again.json()["unblocked"] is False
    assert again.stderr == ("ovh-credit: project p1 is not blocked (0 failed or running "
                            "voucher attempts counted, limit 5): nothing done\n")
    rows = cli.ok("voucher", "attempts", "p1")
    assert [(r["event"], r["counted"]) for r in rows] == (
        [("failed", False)] * 5 + [("unblock", False), ("succeeded", False)])
    assert rows[5]["operator"] == "alice" and rows[5]["reason"] == "ticket 42"
    assert rows[5]["unblock_id"] == done["id"] == rows[0]["unblock_id"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["voucher", "unblock", "p1"], 2, "the following arguments are required: --reason"),
    (["voucher", "unblock", "p1", "--reason", " "], 2, "needs a reason"),
    (["voucher", "unblock", "bad project", "--reason", "x"], 1, "invalid project id"),
])
def test_cli_voucher_unblock_refusals(cli: Cli, args: list[str], code: int,
                                      message: str) -> None:
    result = cli(*args)
    assert (result.code, result.stdout) == (code, "")
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


# -- crash-safe activation ------------------------------------------------------------------


def crash_between_redemption_and_grant(
    service: CreditService, monkeypatch: pytest.MonkeyPatch, code: str = "WELCOME-2026"
) -> None:
    """Activate ``code`` for p1, dying after the catalog redeemed it."""
    real_grant = credits.grant

    def dying(*args: Any, **kwargs: Any) -> NoReturn:
        raise SystemExit("killed")

    monkeypatch.setattr(credits, "grant", dying)
    with pytest.raises(SystemExit):
        service.activate_voucher("p1", code, at=T0)
    monkeypatch.setattr(credits, "grant", real_grant)


@on_every_backend
def test_crash_after_redemption_is_recovered_once(
    service: CreditService, monkeypatch: pytest.MonkeyPatch, stub: StubCatalog
) -> None:
    crash_between_redemption_and_grant(service, monkeypatch)
    assert redemptions(service, "WELCOME-2026") == 1
    assert service.list_credits("p1", at=T0) == []
    pending = service.pending_activations()
    assert [(p["project_id"], p["code"]) for p in pending] == [("p1", "WELCOME-2026")]

    redeems = stub.redeems
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0 + dt.timedelta(minutes=5))
    assert credit.total == Decimal("50.00")
    assert stub.redeems == redeems + 1  # resumed: the POST replays
    assert redemptions(service, "WELCOME-2026") == 1  # same key, same redemption
    assert len(service.list_credits("p1", at=T0)) == 1
    assert service.pending_activations() == []
    assert service.activate_voucher("p1", "WELCOME-2026", at=T0) == credit


@on_every_backend
def test_a_single_use_code_redeemed_before_a_crash_is_granted_when_resumed(
    service: CreditService, monkeypatch: pytest.MonkeyPatch, stub: StubCatalog
) -> None:
    # The resumed try's GET says the code is used up (by this very intent):
    # the redemption under the intent's key, not the GET, decides.
    crash_between_redemption_and_grant(service, monkeypatch, "GPU-ONLY")
    assert not service.check_voucher("GPU-ONLY", at=T0).redeemable
    credit = service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert credit.total == Decimal("20.00")
    assert redemptions(service, "GPU-ONLY") == 1
    assert service.pending_activations() == []
    # The crashed try still counts as running (until the window ends); the
    # resumed one reserved nothing and failed nothing.
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["running"]


def crash_before_the_get(service: CreditService, stub: StubCatalog, code: str) -> None:
    """Activate ``code`` for p1, dying once its intent is committed, before the GET."""
    def dying(code: str) -> models.Voucher:
        raise SystemExit("killed")

    stub.on_get = dying
    with pytest.raises(SystemExit):
        service.activate_voucher("p1", code, at=T0)
    stub.on_get = None


@on_every_backend
def test_a_crash_before_the_catalog_was_asked_is_resumed_in_the_vouchers_currency(
    service: CreditService, stub: StubCatalog
) -> None:
    # The intent is written before the GET, holding the new project's default
    # currency (EUR). A crash before the GET, then the resumed activation of
    # a JPY voucher: the project moves to JPY before the catalog redeems.
    crash_before_the_get(service, stub, "YEN-1000")
    assert [p["code"] for p in service.pending_activations()] == ["YEN-1000"]
    assert service.project_currency("p1") == "EUR"
    credit = service.activate_voucher("p1", "YEN-1000", at=T0)
    assert (credit.currency, credit.total) == ("JPY", Decimal("1000"))
    assert service.project_currency("p1") == "JPY"
    assert service.pending_activations() == []


@on_every_backend
def test_an_order_after_a_crash_before_the_get_makes_the_resumed_voucher_a_mismatch(
    service: CreditService, stub: StubCatalog
) -> None:
    # The intent holds EUR (the default) when the process dies before the
    # GET; the project's first order is then in EUR. The resumed activation
    # of a JPY voucher is refused before anything is redeemed: a POST under
    # this key only ever follows a GET in the currency the project holds.
    crash_before_the_get(service, stub, "YEN-1000")
    service.create_order("p1", "10", at=T0)
    with pytest.raises(exceptions.CurrencyMismatch):
        service.activate_voucher("p1", "YEN-1000", at=T0)
    assert stub.redeems == 0 and redemptions(service, "YEN-1000") == 0
    assert service.project_currency("p1") == "EUR"
    assert service.pending_activations() == []  # nothing left that could be finished
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["running"]


def test_a_voucher_in_another_currency_than_a_new_projects_default_takes_a_third_write(
    service: CreditService, stub: StubCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intent fixed EUR before the GET told JPY: the project moves to JPY
    # in a transaction of its own, committed before the catalog redeems.
    # (The answers are fetched first: the file catalog writes its own.)
    stub.answer_ahead("p1", "YEN-1000")
    writes: list[str] = []
    write = service.database.write

    def counted(work: Callable[..., Any], **kwargs: Any) -> Any:
        writes.append(f"redeemed={stub.redeems}")
        return write(work, **kwargs)

    monkeypatch.setattr(service.database, "write", counted)
    credit = service.activate_voucher("p1", "YEN-1000", at=T0)
    assert credit.currency == "JPY"
    assert writes == ["redeemed=0", "redeemed=0", "redeemed=1"]


@on_every_backend
def test_a_used_up_code_in_another_currency_is_refused_as_used_up(
    service: CreditService, stub: StubCatalog
) -> None:
    # Used up, and in EUR for a project that bills in JPY: no redemption under
    # this try's key can exist (one needs the project in the voucher's
    # currency first), so the customer is told what an unknown or used code
    # tells, the failed try counts, and the catalog is not asked to redeem.
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    service.activate_voucher("p2", "YEN-1000", at=T0)
    redeems = stub.redeems
    with pytest.raises(exceptions.VoucherRefused) as refused:
        service.activate_voucher("p2", "GPU-ONLY", at=T0)
    assert str(refused.value) == PUBLIC
    assert stub.redeems == redeems
    assert failed_attempts(service, "p2") == 1
    [tried] = [r for r in service.voucher_attempts("p2", at=T0) if r["event"] == "failed"]
    assert tried["reason"].startswith(base.mask_code("GPU-ONLY") + ": ")
    assert service.pending_activations() == []
    assert service.project_currency("p2") == "JPY"
    # A new project's intent held the default currency (EUR): the same answer,
    # and the currency goes with the intent.
    stub.on_get = lambda code: stub.inner.get(code).model_copy(update={"currency": "JPY"})
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p3", "GPU-ONLY", at=T0)
    assert stub.redeems == redeems
    assert service.project_currency("p3") is None


@on_every_backend
def test_a_try_that_moved_the_project_during_this_ones_get_is_answered_not_refused(
    service: CreditService, stub: StubCatalog, ledger: Ledger
) -> None:
    # This try's intent holds the new project's default currency (EUR). During
    # its GET, a second try of the same JPY code finds the intent, moves the
    # project to JPY, redeems and grants. The GET then says "used up", in JPY:
    # the project now holds JPY, so the redemption decides, and it is ours.
    other = ledger.service()
    granted: list[models.Credit] = []

    def other_try_first(code: str) -> models.Voucher:
        if not granted:
            credit, created = other.activate_voucher_outcome("p1", code, at=T0)
            assert created
            granted.append(credit)
        return stub.inner.get(code).model_copy(update={"status": "exhausted"})

    stub.on_get = other_try_first
    try:
        credit, created = service.activate_voucher_outcome("p1", "YEN-1000", at=T0)
    finally:
        other.close()
    assert not created and credit == granted[0] and credit.currency == "JPY"
    assert redemptions(service, "YEN-1000") == 1
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["succeeded"]


def test_a_used_up_code_is_refused_by_the_catalogs_redemption(
    service: CreditService, stub: StubCatalog
) -> None:
    # The GET's "used up" is confirmed by the POST (a 409 for a new key):
    # one failed try, and the intent goes with the currency it fixed.
    service.activate_voucher("p2", "GPU-ONLY", at=T0)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert stub.redeems == 2 and redemptions(service, "GPU-ONLY") == 1
    assert failed_attempts(service) == 1
    assert service.pending_activations() == []
    assert service.project_currency("p1") is None


def test_lost_answer_keeps_the_intent_and_a_rerun_grants_once(
    service: CreditService, stub: StubCatalog
) -> None:
    def commit_then_lose(code: str, **kwargs: Any) -> models.Redemption:
        stub.inner.redeem(code, **kwargs)  # the catalog commits...
        raise base.CatalogUnavailable("no complete answer within the 10 s deadline")

    stub.on_redeem = commit_then_lose
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert len(service.pending_activations()) == 1
    assert failed_attempts(service) == 0
    stub.on_redeem = None
    credit = service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert credit.total == Decimal("20.00")
    assert redemptions(service, "GPU-ONLY") == 1


@on_every_backend
def test_refusal_on_redeem_drops_the_intent(service: CreditService, stub: StubCatalog) -> None:
    # The code was fine when checked, then used up by someone else.
    def exhausted(code: str, **kwargs: Any) -> models.Redemption:
        raise base.VoucherAlreadyRedeemed("voucher GP… is used up", status=409)

    stub.on_redeem = exhausted
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p1", "GPU-ONLY", at=T0)
    assert str(caught.value) == PUBLIC
    assert service.pending_activations() == []
    assert failed_attempts(service) == 1
    assert service.list_credits("p1", at=T0) == []


def test_redemption_for_another_project_grants_nothing(
    service: CreditService, stub: StubCatalog
) -> None:
    def wrong(code: str, **kwargs: Any) -> models.Redemption:
        redemption = stub.inner.redeem(code, **kwargs)
        return redemption.model_copy(update={"project_id": "someone-else"})

    stub.on_redeem = wrong
    with pytest.raises(base.CatalogProtocolError, match="another project"):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert service.list_credits("p1", at=T0) == []
    assert len(service.pending_activations()) == 1


@pytest.mark.parametrize(("code", "masked"), [
    ("ABCD", "A…"),
    ("ABCDEFG", "AB…"),
    ("REVOKED-1", "RE…1"),
    ("WELCOME-2026", "WEL…6"),
    ("ABCDEFGHIJKLMNOPQ", "ABCD…Q"),
    ("ABCDEFGHIJKLMNOPQR", "ABCD…QR"),
    ("A" * 30 + "B" * 34, "AAAA…BB"),
])
def test_a_masked_code_shows_a_third_of_it_at_most(code: str, masked: str) -> None:
    assert base.mask_code(code) == masked
    assert len(masked) - 1 <= len(code) // 3


def test_cli_lists_pending_activations_masked(
    cli: Cli, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ledger.service()
    try:
        crash_between_redemption_and_grant(service, monkeypatch)
    finally:
        service.close()
    rows = cli.ok("voucher", "pending")
    assert [(r["project_id"], r["code"]) for r in rows] == [("p1", "WEL…6")]
    rows = cli.ok("voucher", "pending", "--show-codes")
    assert [(r["project_id"], r["code"]) for r in rows] == [("p1", "WELCOME-2026")]
    credit = cli.ok("voucher", "activate", "p1", rows[0]["code"], "--at", "2026-02-15T00:00:00Z")
    assert credit["total"] == "50.00"
    # validity_days (90) counts from the catalog's redemption (T0), not from the late rerun.
    assert credit["valid_until"] == contracts.isoformat(T0 + dt.timedelta(days=90))
    assert cli.ok("voucher", "pending") == []


# -- check -----------------------------------------------------------------------------------


def test_check_shows_the_voucher_without_redeeming(service: CreditService) -> None:
    preview = service.check_voucher(" gpu-only ", at=T0)
    assert preview.redeemable is True
    assert preview.voucher.amount == Decimal("20.00")
    assert preview.voucher.products == ["gpu"]
    assert redemptions(service, "GPU-ONLY") == 0
    assert count(service, schema.voucher_activations) == 0


def test_check_of_used_revoked_and_unknown_codes(service: CreditService) -> None:
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    used = service.check_voucher("GPU-ONLY", at=T0)
    assert (used.redeemable, "used up" in used.reason) == (False, True)
    revoked = service.check_voucher("REVOKED-1", at=T0)
    assert (revoked.redeemable, "revoked" in revoked.reason) == (False, True)
    with pytest.raises(base.VoucherNotFound):
        service.check_voucher("NO-SUCH-CODE", at=T0)


def test_check_with_a_broken_answer_is_an_error(service: CreditService, stub: StubCatalog) -> None:
    stub.on_get = lambda code: stub.inner.get("GPU-ONLY")
    with pytest.raises(base.CatalogProtocolError):
        service.check_voucher("WELCOME-2026", at=T0)


def test_cli_voucher_check(cli: Cli) -> None:
    shown = cli.ok("voucher", "check", "welcome-2026")
    assert shown["code"] == "WELCOME-2026"
    assert shown["amount"] == "50.00"
    assert shown["redeemable"] is True
    assert cli.ok("credit", "list", "p1") == []
    result = cli("voucher", "check", "NO-SUCH-CODE")
    assert result.code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "unknown voucher NO-…E" in result.stderr


def test_file_catalog_is_the_default_driver(service: CreditService) -> None:
    assert isinstance(service.catalog, FileVoucherCatalog)


# -- the file catalog ----------------------------------------------------------------------


def write_vouchers(ledger: Ledger, *extra: dict[str, Any]) -> None:
    document = json.loads(json.dumps(VOUCHERS))
    document["vouchers"].extend(extra)
    ledger.vouchers.write_text(json.dumps(document))


def test_a_malformed_code_in_the_voucher_file_is_the_files_fault(ledger: Ledger) -> None:
    # An operator's typo (a blank inside a code) must not tell every
    # customer that *their* code is malformed.
    write_vouchers(ledger, {"code": "SPRING SALE", "amount": "5.00", "currency": "EUR",
                            "status": "active", "products": []})
    service = ledger.service()
    try:
        with pytest.raises(base.CatalogProtocolError) as caught:
            service.activate_voucher("p1", "WELCOME-2026", at=T0)
        assert not isinstance(caught.value, exceptions.InvalidInput)
        index = len(VOUCHERS["vouchers"])
        assert str(caught.value) == (
            f"voucher #{index} of {str(ledger.vouchers)!r} has an invalid code: "
            "codes are 4 to 64 letters, digits or dashes"
        )
        assert failed_attempts(service) == 0  # not the customer's doing
    finally:
        service.close()


@pytest.mark.parametrize(("entry", "message"), [
    ({"amount": "five"}, "is invalid: amount 'five' is not a decimal number at amount"),
    ({"valid_from": "2026-03-01T00:00:00Z", "valid_until": "2026-02-01T00:00:00Z"},
     "is invalid: valid_until must be later than valid_from"),
])
def test_an_invalid_voucher_in_the_file_is_named_with_what_is_wrong(
    ledger: Ledger, entry: dict[str, Any], message: str
) -> None:
    write_vouchers(ledger, {"code": "SPRING-SALE", "amount": "5.00", "currency": "EUR",
                            "status": "active", "products": [], **entry})
    service = ledger.service()
    try:
        with pytest.raises(base.CatalogProtocolError) as caught:
            service.check_voucher("WELCOME-2026")
        assert str(caught.value).endswith(message), str(caught.value)
    finally:
        service.close()


def test_a_code_twice_in_the_voucher_file_is_the_files_fault(ledger: Ledger) -> None:
    # Which of the two the operator meant (amount, validity) is a guess.
    write_vouchers(ledger, {"code": "welcome-2026", "amount": "500.00", "currency": "EUR",
                            "status": "active", "products": []})
    service = ledger.service()
    try:
        with pytest.raises(base.CatalogProtocolError, match="repeats the code"):
            service.activate_voucher("p1", "WELCOME-2026", at=T0)
        assert service.list_credits("p1", at=T0) == []
        assert failed_attempts(service) == 0
    finally:
        service.close()


def edit_vouchers(ledger: Ledger, code: str, *, replace: bool = False, **changes: Any) -> None:
    """Change one voucher of the file: in place, or by renaming a new file over it."""
    document = json.loads(ledger.vouchers.read_text())
    for voucher in document["vouchers"]:
        if voucher["code"] == code:
            voucher.update(changes)
    if replace:
        new = ledger.vouchers.with_suffix(".new")
        new.write_text(json.dumps(document))
        os.replace(new, ledger.vouchers)
    else:
        ledger.vouchers.write_text(json.dumps(document))


def test_revoking_a_voucher_in_the_file_takes_effect_in_a_running_host(
    service: CreditService, ledger: Ledger
) -> None:
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    # The code leaked: the operator revokes it, the host keeps running.
    edit_vouchers(ledger, "WELCOME-2026", status="revoked")
    preview = service.check_voucher("WELCOME-2026", at=T0)
    assert (preview.redeemable, "revoked" in preview.reason) == (False, True)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p2", "WELCOME-2026", at=T0)


def test_a_voucher_file_replaced_by_one_of_the_same_size_is_read_again(
    service: CreditService, ledger: Ledger
) -> None:
    assert service.check_voucher("GPU-ONLY", at=T0).voucher.amount == Decimal("20.00")
    edit_vouchers(ledger, "GPU-ONLY", replace=True, amount="25.00")
    assert service.check_voucher("GPU-ONLY", at=T0).voucher.amount == Decimal("25.00")


def test_an_unchanged_voucher_file_is_parsed_once(
    service: CreditService, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = file_catalog._read

    def read(path: Path) -> dict[str, models.Voucher]:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(file_catalog, "_read", read)
    for _ in range(3):
        service.check_voucher("GPU-ONLY", at=T0)
    assert len(reads) == 1


def test_a_voucher_file_broken_while_running_is_an_error_not_stale_vouchers(
    service: CreditService, ledger: Ledger
) -> None:
    assert service.check_voucher("WELCOME-2026", at=T0).redeemable
    good = ledger.vouchers.read_text()
    ledger.vouchers.write_text(good[: len(good) // 2])  # an edit saved half-way
    for _ in range(2):  # on every call until fixed, not once
        with pytest.raises(base.CatalogProtocolError, match="is not readable JSON"):
            service.check_voucher("WELCOME-2026", at=T0)
    ledger.vouchers.unlink()
    with pytest.raises(base.CatalogUnavailable, match="does not exist"):
        service.check_voucher("WELCOME-2026", at=T0)
    ledger.vouchers.write_text(good)
    assert service.check_voucher("WELCOME-2026", at=T0).redeemable


# -- what happens to the intent while the catalog redeems -----------------------------


def test_an_intent_dropped_during_the_redemption_is_recorded_anew_and_granted_once(
    service: CreditService, stub: StubCatalog
) -> None:
    # Another try's failure dropped this try's intent while the catalog was
    # redeeming the code for it: the grant writes the intent again, and grants.
    table = schema.voucher_activations

    def drop_then_redeem(code: str, **kwargs: Any) -> models.Redemption:
        with service.database.engine.begin() as conn:
            assert conn.execute(table.delete().where(table.c.project_id == "p1")).rowcount == 1
        return stub.inner.redeem(code, **kwargs)

    stub.on_redeem = drop_then_redeem
    credit, created = service.activate_voucher_outcome("p1", "WELCOME-2026", at=T0)
    assert created and credit.total == Decimal("50.00")
    with service.database.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.project_id, table.c.code,
                                      table.c.idempotency_key, table.c.status,
                                      table.c.credit_id, table.c.created_at)).all()
    assert [tuple(r) for r in rows] == [
        ("p1", "WELCOME-2026", base.idempotency_key("p1", "WELCOME-2026"), "granted",
         credit.id, T0)]
    assert service.project_currency("p1") == "EUR"
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["succeeded"]
    # The grant keeps the catalog's id of the redemption it was paid by.
    redeemed = schema.catalog_redemptions
    with service.database.engine.connect() as conn:
        kept = conn.execute(sa.select(table.c.redemption_id)).scalar_one()
        made = conn.execute(sa.select(redeemed.c.id)).scalar_one()
    assert kept == made


@on_every_backend
@pytest.mark.parametrize(("step", "code"), [("redeem", "WELCOME-2026"), ("get", "GPU-ONLY")])
def test_a_code_granted_by_another_try_during_this_ones_is_answered_not_granted_twice(
    service: CreditService, stub: StubCatalog, ledger: Ledger, step: str, code: str
) -> None:
    # While the catalog answers this try (its GET or its POST), a second try
    # of the same project and code (another worker) finds its intent,
    # replays the redemption under the same key and grants: this try
    # answers that credit. At the GET, the single-use code then looks used
    # up: this try's POST, under the same key, still gets the redemption,
    # and no failed try is counted against the project.
    other = ledger.service()
    granted: list[models.Credit] = []

    def other_try_first(code: str, **kwargs: Any) -> Any:
        if not granted:
            credit, created = other.activate_voucher_outcome("p1", code, at=T0)
            assert created
            granted.append(credit)
        return getattr(stub.inner, step)(code, **kwargs)

    setattr(stub, f"on_{step}", other_try_first)
    try:
        credit, created = service.activate_voucher_outcome("p1", code, at=T0)
    finally:
        other.close()
    assert not created and credit == granted[0]
    assert [c.id for c in service.list_credits("p1", at=T0)] == [credit.id]
    assert redemptions(service, code) == 1
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["succeeded"]


def test_a_refusal_at_the_redemption_is_a_failed_try_with_the_code_masked(
    service: CreditService, stub: StubCatalog
) -> None:
    def used_up(code: str, **kwargs: Any) -> models.Redemption:
        raise base.VoucherAlreadyRedeemed("voucher is used up", status=409)

    stub.on_redeem = used_up
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    [attempt] = service.voucher_attempts("p1", at=T0)
    assert (attempt["event"], attempt["created_at"]) == ("failed", T0)
    assert attempt["reason"].startswith(base.mask_code("WELCOME-2026"))
    assert "WELCOME-2026" not in attempt["reason"]


def test_every_try_is_listed_when_asked_not_only_the_windows(service: CreditService) -> None:
    throttled_service(service, window=600)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    later = T0 + dt.timedelta(hours=1)
    assert service.voucher_attempts("p1", at=later) == []
    [old] = service.voucher_attempts("p1", everything=True, at=later)
    assert (old["event"], old["created_at"], old["counted"]) == ("failed", T0, False)


def test_the_try_under_way_lists_as_running_and_a_try_stops_counting_at_the_window(
    service: CreditService, stub: StubCatalog
) -> None:
    throttled_service(service, window=600)
    seen: list[list[tuple[str, bool]]] = []

    def look_then_redeem(code: str, **kwargs: Any) -> models.Redemption:
        seen.append([(r["event"], r["counted"])
                     for r in service.voucher_attempts("p1", at=T0)])
        return stub.inner.redeem(code, **kwargs)

    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=T0)
    stub.on_redeem = look_then_redeem
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    # During the catalog exchange, the try is listed as running (and counts).
    assert seen == [[("failed", True), ("running", True)]]
    window = dt.timedelta(seconds=600)
    assert [(r["event"], r["counted"]) for r in service.voucher_attempts(
        "p1", at=T0 + window - dt.timedelta(microseconds=1))] == [
        ("failed", True), ("succeeded", False)]
    # A try counts for exactly the window: not at its end.
    assert [(r["event"], r["counted"]) for r in service.voucher_attempts(
        "p1", at=T0 + window, everything=True)] == [("failed", False), ("succeeded", False)]


def test_a_resumed_activation_refused_at_the_redemption_is_a_failed_try_of_its_own_time(
    service: CreditService, stub: StubCatalog
) -> None:
    # The first try's answer was lost before the catalog redeemed anything:
    # its intent stays pending. Resumed later, the code has been used up
    # meanwhile: the resumed try is refused, recorded as a failed try at the
    # time it was made, and the intent goes, with the currency it fixed.
    def lost(code: str, **kwargs: Any) -> models.Redemption:
        raise base.CatalogUnavailable("no complete answer within the 10 s deadline")

    def used_up(code: str, **kwargs: Any) -> models.Redemption:
        raise base.VoucherAlreadyRedeemed("voucher is used up", status=409)

    stub.on_redeem = lost
    with pytest.raises(base.CatalogUnavailable):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert len(service.pending_activations()) == 1
    assert service.voucher_attempts("p1", at=T0) == []  # an outage is not the customer's

    later = T0 + dt.timedelta(minutes=5)
    stub.on_redeem = used_up
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p1", "WELCOME-2026", at=later)
    assert str(caught.value) == PUBLIC
    [attempt] = service.voucher_attempts("p1", at=later)
    assert (attempt["event"], attempt["created_at"]) == ("failed", later)
    assert attempt["reason"].startswith(base.mask_code("WELCOME-2026"))
    assert service.pending_activations() == []
    assert service.list_credits("p1", at=later) == []
    assert service.project_currency("p1") is None


@pytest.mark.parametrize("gone", ["released during the redemption", "never recorded"])
def test_a_grant_fixes_the_projects_currency_when_nothing_recorded_it(
    service: CreditService, stub: StubCatalog, gone: str
) -> None:
    # The grant finds the project without a recorded currency either way:
    # - released during the redemption: another try's refusal dropped this
    #   try's intent and, the project then holding nothing, released its
    #   currency (the project's row goes);
    # - never recorded: an intent left pending by a version from before
    #   intents fixed the project's currency (the schema is the same), resumed.
    # The redeemed code is granted all the same, and fixes the currency then.
    activations_table = schema.voucher_activations
    later = T0 + dt.timedelta(minutes=5)

    def release_then_redeem(code: str, **kwargs: Any) -> models.Redemption:
        with service.database.engine.begin() as conn:
            conn.execute(activations_table.delete()
                         .where(activations_table.c.project_id == "p1"))
            projects.forget_if_empty(conn, "p1")
        assert service.project_currency("p1") is None
        return stub.inner.redeem(code, **kwargs)

    def lost(code: str, **kwargs: Any) -> models.Redemption:
        raise base.CatalogUnavailable("no complete answer within the 10 s deadline")

    if gone == "never recorded":
        stub.on_redeem = lost
        with pytest.raises(base.CatalogUnavailable):
            service.activate_voucher("p1", "WELCOME-2026", at=T0)
        with service.database.engine.begin() as conn:
            conn.execute(schema.projects.delete())
        stub.on_redeem = None
    else:
        stub.on_redeem = release_then_redeem
    credit, created = service.activate_voucher_outcome("p1", "WELCOME-2026", at=later)
    assert created and credit.total == Decimal("50.00")
    assert [c.id for c in service.list_credits("p1", at=later)] == [credit.id]
    assert service.pending_activations() == []
    table = schema.projects
    with service.database.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.currency, table.c.created_at)).all()
    assert [tuple(r) for r in rows] == [("p1", "EUR", later)]


@pytest.mark.parametrize(("reason", "operator", "message"), [
    ("", "ops", "unblocking a project needs a reason"),
    ("  ", "ops", "unblocking a project needs a reason"),
    ("ticket 42", None, "unblocking a project needs the operator's name"),
    ("ticket 42", "", "unblocking a project needs the operator's name"),
])
def test_an_unblock_without_a_reason_or_an_operator_is_refused_in_full(
    service: CreditService, reason: Any, operator: Any, message: str
) -> None:
    # Who ended a throttle and why is the unblock's record: without either,
    # the operator is told which is missing, and nothing is unblocked.
    throttled_service(service, limit=2)
    block(service)
    with pytest.raises(exceptions.InvalidInput) as refused:
        service.unblock_vouchers("p1", reason=reason, operator=operator, at=T0)
    assert str(refused.value) == message
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "WELCOME-2026", at=T0)


@pytest.mark.usefixtures("eager")
def test_a_throttled_try_says_when_the_project_may_try_again_or_later_when_unknown() -> None:
    from ovh_credit_plugin.service.voucher_throttle import throttled

    at = dt.datetime(2035, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    known = throttled(at, 90)
    assert (str(known), known.retry_after) == (
        "too many failed voucher attempts on this project: try again after "
        "Jan 1, 2035, 12:01:30\u00a0PM\u00a0UTC", 90)
    # Tries freed between the count and the computation (a race): no time to give.
    unknown = throttled(at, None)
    assert (str(unknown), unknown.retry_after) == (
        "too many failed voucher attempts on this project: try again later", None)


def test_a_failed_check_lists_as_a_failed_try_with_the_masked_code_and_why(
    service: CreditService,
) -> None:
    # What an operator reads in `voucher attempts` before unblocking a project:
    # each failed check as a failed try (not one still running), when it was
    # made, the code masked, and why it failed.
    throttled_service(service, limit=5)
    service.activate_voucher("p2", "GPU-ONLY", at=T0)  # single use: now used up
    with pytest.raises(base.VoucherNotFound) as unknown:
        service.check_voucher("WRONG-2", project_id="p1", at=T0)
    later = T0 + dt.timedelta(seconds=1)
    used = service.check_voucher("GPU-ONLY", project_id="p1", at=later)
    assert used.redeemable is False
    history = service.voucher_attempts("p1", at=later)
    assert [(r["event"], r["created_at"], r["counted"]) for r in history] == [
        ("failed", T0, True), ("failed", later, True)]
    assert [r["reason"] for r in history] == [
        f"{base.mask_code('WRONG-2')}: checked: {unknown.value}",
        f"{base.mask_code('GPU-ONLY')}: checked: {used.reason}"]
    assert "WRONG-2" not in history[0]["reason"] and "GPU-ONLY" not in history[1]["reason"]
    # The used code's preview still says what it was worth; a good code's says so.
    assert used.voucher is not None and used.voucher.amount > 0
    good = service.check_voucher("WELCOME-2026", project_id="p1", at=later)
    assert (good.redeemable, good.reason) == (True, "redeemable")


def test_a_refused_activation_lists_as_a_failed_try_with_the_masked_code_and_why(
    service: CreditService, stub: StubCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    # The same record as a failed check, for both refusals of an activation:
    # the catalog's GET (an unknown code) and its POST (a code used up between
    # the two). The customer saw one message; the operator reads which.
    throttled_service(service, limit=5)
    with pytest.raises(exceptions.VoucherRefused) as unknown:
        service.activate_voucher("p1", "WRONG-3", at=T0)

    def used_up(code: str, **kwargs: Any) -> models.Redemption:
        raise base.VoucherAlreadyRedeemed("voucher WEL…6 is used up", status=409)

    stub.on_redeem = used_up
    later = T0 + dt.timedelta(seconds=1)
    with pytest.raises(exceptions.VoucherRefused) as used:
        service.activate_voucher("p1", "WELCOME-2026", at=later)
    assert str(unknown.value) == str(used.value) == "this voucher code cannot be activated"
    history = service.voucher_attempts("p1", at=later)
    assert [(r["event"], r["created_at"], r["counted"]) for r in history] == [
        ("failed", T0, True), ("failed", later, True)]
    wrong, welcome = base.mask_code("WRONG-3"), base.mask_code("WELCOME-2026")
    assert [r["reason"] for r in history] == [
        f"{wrong}: unknown voucher {wrong}", f"{welcome}: voucher WEL…6 is used up"]
    assert "WRONG-3" not in history[0]["reason"]
    # The log says which project, for the on-call engineer who has only it.
    assert [r.getMessage() for r in caplog.records if "refused for project" in r.getMessage()] == [
        f"voucher {wrong} refused for project p1: unknown voucher {wrong}",
        f"voucher {welcome} refused for project p1: voucher WEL…6 is used up"]
