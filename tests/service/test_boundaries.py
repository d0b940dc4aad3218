"""The money rules at their boundaries, stated from DESIGN.md and the docs, not from the code.

Each rule is written down here as the documents give it, and checked at the
instant it changes its answer and at the instant just before:

- **eligibility** (DESIGN.md 2.8): a credit may pay a charge settled at ``t``
  when ``valid_from <= t < valid_until``: it pays at ``valid_from`` and one
  microsecond before ``valid_until``, not one microsecond before
  ``valid_from`` nor at ``valid_until``;
- **expiry** (2.9): once ``t`` has reached ``valid_until`` the credit can pay
  nothing, so the expiry job run at ``t`` records what is left as lost, and a
  customer reads it as expired; one microsecond earlier the credit is live and
  the job leaves it alone;
- **a voucher's own end** (2.5): a code is refused once the catalog's
  ``valid_until`` has been reached, and granted one microsecond before;
- **the voucher throttle** (docs/operations.md, "The voucher throttle"): a
  failed try counts against its project for ``voucher_attempt_window``
  seconds: ``window - 1 s`` after it the project is still refused, and the
  refusal says to come back in 1 s; exactly ``window`` after it, it no longer
  counts. The same with another window length.

Those comparisons run in SQL as well as in Python: every backend.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.service import CreditService, add_months

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
TICK = dt.timedelta(microseconds=1)
SECOND = dt.timedelta(seconds=1)


def bought(service: CreditService, project: str, amount: str, *, at: dt.datetime
           ) -> models.Credit:
    order = service.create_order(project, amount, at=at)
    paid = service.pay_order(order.id, at=at)
    assert paid.credit_id is not None
    return service.show_credit(paid.credit_id, at=at)[0]


def invoice(project: str, invoice_id: str, amount: str, at: dt.datetime) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": "EUR", "issued_at": at,
        "lines": [{"id": "1", "product": "compute", "amount": amount}],
    })


# -- eligibility: valid_from <= t < valid_until -------------------------------------------


def test_a_credit_pays_from_its_start_until_one_microsecond_before_its_end(
    service: CreditService,
) -> None:
    credit = bought(service, "p1", "100", at=T0)
    # Purchased credit: 13 calendar months from payment (DESIGN.md 2.4).
    assert credit.valid_from == T0
    assert credit.valid_until == add_months(T0, 13) == dt.datetime(2027, 2, 28, 10, 0,
                                                                    tzinfo=UTC)
    end = credit.valid_until
    cases = [("before-start", T0 - TICK, "0"), ("at-start", T0, "10"),
             ("before-end", end - TICK, "10"), ("at-end", end, "0")]
    for invoice_id, at, applied in cases:
        settled = service.settle_invoice(invoice("p1", invoice_id, "10", at), at=end)
        assert (settled.credit_applied, settled.amount_due) == (
            Decimal(applied), Decimal(10) - Decimal(applied)), invoice_id
    assert service.show_credit(credit.id, at=T0)[0].used == Decimal(20)


# -- expiry at valid_until -------------------------------------------------------------


def test_the_expiry_job_takes_a_credit_at_its_end_not_one_microsecond_before(
    service: CreditService,
) -> None:
    credit = bought(service, "p1", "100", at=T0)
    service.settle_invoice(invoice("p1", "I1", "30", T0 + dt.timedelta(days=1)),
                           at=T0 + dt.timedelta(days=1))
    end = credit.valid_until
    assert end is not None

    before = service.expire(at=end - TICK)
    assert (before.credits_expired, before.amount_expired) == (0, {})
    live = service.show_credit(credit.id, at=end - TICK)[0]
    assert (live.status, live.available, live.expired) == ("active", Decimal(70), Decimal(0))

    # What a customer reads at the end does not wait for the job...
    shown = service.show_credit(credit.id, at=end)[0]
    assert (shown.status, shown.available, shown.expired) == ("expired", Decimal(0),
                                                              Decimal(70))
    # ... and the job run at the end records exactly that.
    at_end = service.expire(at=end)
    assert (at_end.credits_expired, at_end.amount_expired) == (1, {"EUR": Decimal(70)})
    credit_after, entries = service.show_credit(credit.id, at=end)
    assert credit_after == shown
    assert [(e.type, e.amount) for e in entries] == [
        ("grant", Decimal(100)), ("debit", Decimal(30)), ("expiry", Decimal(70))]


def test_a_voucher_is_refused_at_its_catalog_end_and_granted_just_before(
    service: CreditService,
) -> None:
    # GPU-ONLY: valid_until 2027-01-01T00:00:00Z in the tests' catalog.
    end = dt.datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(exceptions.VoucherRefused) as caught:
        service.activate_voucher("p1", "GPU-ONLY", at=end)
    assert "expired" in caught.value.reason
    credit = service.activate_voucher("p1", "GPU-ONLY", at=end - TICK)
    assert (credit.valid_from, credit.valid_until) == (end - TICK, end)
    assert credit.status == "active"
    # Valid for one microsecond: it pays a charge then, and nothing at its end.
    paid = service.settle_invoice(
        invoice("p1", "G1", "5", end - TICK).model_copy(
            update={"lines": [models.InvoiceLine(id="1", product="gpu", amount=Decimal(5))]}),
        at=end)
    assert paid.credit_applied == Decimal(5)
    unpaid = service.settle_invoice(
        invoice("p1", "G2", "5", end).model_copy(
            update={"lines": [models.InvoiceLine(id="1", product="gpu", amount=Decimal(5))]}),
        at=end)
    assert unpaid.credit_applied == Decimal(0)


# -- the voucher throttle's window ----------------------------------------------------------


@pytest.mark.parametrize("window", [600, 45])
def test_a_failed_try_counts_for_exactly_the_window(
    service: CreditService, window: int
) -> None:
    service.settings = replace(service.settings, voucher_max_failed_attempts=2,
                               voucher_attempt_window=window)
    span = dt.timedelta(seconds=window)

    def activate(code: str, at: dt.datetime) -> models.Credit:
        return service.activate_voucher("p1", code, at=at)

    for n, at in enumerate((T0, T0 + SECOND)):
        with pytest.raises(exceptions.VoucherRefused) as refused:
            activate(f"WRONG-{n}", at)
        assert not isinstance(refused.value, exceptions.TooManyAttempts)

    # window - 1 s after the first failure: both still count, come back in 1 s.
    with pytest.raises(exceptions.TooManyAttempts) as throttled:
        activate("WELCOME-2026", T0 + span - SECOND)
    assert throttled.value.retry_after == 1
    counted = [row["counted"] for row in service.voucher_attempts("p1", at=T0 + span - SECOND)]
    assert counted == [True, True]

    # Exactly window after it: the first no longer counts; one more try gets through
    # to the catalog (and fails there).
    at_window = T0 + span
    assert [row["counted"] for row in service.voucher_attempts("p1", at=at_window)] == [True]
    with pytest.raises(exceptions.VoucherRefused) as refused:
        activate("WRONG-2", at_window)
    assert not isinstance(refused.value, exceptions.TooManyAttempts)
    # The second and third failures count now: refused for 1 s, until the second leaves.
    with pytest.raises(exceptions.TooManyAttempts) as throttled:
        activate("WELCOME-2026", at_window)
    assert throttled.value.retry_after == 1
    assert activate("WELCOME-2026", T0 + SECOND + span).total == Decimal("50.00")
