"""When a throttled project may try again: rounded up once, from the moment the throttle
lets the next try in.

The moment said in the refusal is that moment rounded up to the whole second,
and ``retry_after`` (the REST API's Retry-After header) the wait until it rounded
up to whole seconds: neither is earlier than the throttle, and neither adds a
second to the other's rounding (the moment used to be ``at + Retry-After``, itself
rounded up: up to a second later than needed).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.api import errors
from ovh_credit_plugin.service import CreditService
from tests.service.test_vouchers import eager, throttled_service  # noqa: F401 (eager: fixture)
from tests.support.ledgers import BACKENDS, T0


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def throttled_after_one_failure(service: CreditService, *, failed: float,
                                tried: float) -> exceptions.TooManyAttempts:
    """One failed try allowed in 600 s: a wrong code at ``failed`` s after T0, then the
    refusal of a good one at ``tried`` s."""
    throttled_service(service, limit=1, window=600)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=at(failed))
    with pytest.raises(exceptions.TooManyAttempts) as throttled:
        service.activate_voucher("p1", "WELCOME-2026", at=at(tried))
    return throttled.value


# The throttle's rule reads the database (SQLite counts in the reserving transaction,
# PostgreSQL and MariaDB after committing the reservation): each way says when.
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_throttled_try_is_told_the_first_whole_second_it_may_try_again(
        service: CreditService) -> None:
    # The failure leaves the window at T0 + 600.6 s: 500.1 s after this try.
    error = throttled_after_one_failure(service, failed=0.6, tried=100.5)
    # The first whole second at or after T0 + 600.6 s: 10:10:01, not 10:10:02
    # (at + 501 s = 10:10:01.5, rounded up again).
    assert str(error) == ("too many failed voucher attempts on this project: try again "
                          "after Jan 31, 2026, 10:10:01\u00a0AM\u00a0UTC")
    # Whole seconds, never fewer than the wait: 500.1 s is 501.
    assert error.retry_after == 501
    assert errors.from_exception(error, throttle_window=600).headers == {"Retry-After": "501"}
    # Neither is earlier than the throttle: just before the failure leaves the window
    # the project is still refused...
    with pytest.raises(exceptions.TooManyAttempts):
        service.activate_voucher("p1", "WELCOME-2026", at=at(600.5))
    # ...and at the moment said, its try goes through.
    assert service.activate_voucher("p1", "WELCOME-2026", at=at(601)).total == Decimal("50.00")


@pytest.mark.usefixtures("eager")
def test_a_wait_of_whole_seconds_is_said_as_it_is(service: CreditService) -> None:
    # Both tries a quarter second past the second: the wait is 590 s exactly, and the
    # moment the first whole second after T0 + 600.25 s.
    error = throttled_after_one_failure(service, failed=0.25, tried=10.25)
    assert error.retry_after == 590
    assert str(error).endswith("try again after Jan 31, 2026, 10:10:01\u00a0AM\u00a0UTC")
