"""Checks of what callers pass in: times, ids, batch sizes.

Every public operation runs its arguments through these before it touches
the ledger: bad input is a typed error and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Any

from ovh_credit_plugin import exceptions, models

# Validity (up to 120 months), order lapses and voucher days (up to 100
# years) are added to the operation's time: far enough from year 9999.
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)

#: How far behind the ledger's own times another node's clock may be (a
#: payment provider's webhook, a host on another machine).
CLOCK_SKEW = dt.timedelta(minutes=5)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def moment(at: dt.datetime | None) -> dt.datetime:
    """The operation's time: ``at`` in UTC, or now."""
    if at is None:
        return now()
    if not isinstance(at, dt.datetime):
        raise exceptions.InvalidInput(f"invalid time {at!r}: expected a datetime")
    try:
        found = models.utc(at)
    except ValueError as error:
        raise exceptions.InvalidInput(f"invalid time: {error}") from None
    if found >= LATEST:
        raise exceptions.InvalidInput(f"invalid time {models.isoformat(found)}: "
                                      f"after {models.isoformat(LATEST)}")
    return found


def project_id(value: Any) -> str:
    try:
        return models.check_project_id(value)
    except (TypeError, ValueError):
        raise exceptions.InvalidInput(
            f"invalid project id {value!r}: 1-255 letters, digits and ._:@/-"
        ) from None


def credit_id(value: Any) -> int:
    try:
        ident = int(str(value), 10)
    except ValueError:
        raise exceptions.InvalidInput(f"invalid credit id {value!r}: a positive integer") from None
    if ident <= 0 or ident >= 2**63:
        raise exceptions.InvalidInput(f"invalid credit id {value!r}: a positive integer")
    return ident


def not_before(at: dt.datetime, created: dt.datetime, what: str) -> dt.datetime:
    """``at``, or ``created`` when ``at`` is earlier by no more than clock skew.

    A back-dated time before the thing existed would make a credit valid
    before its payment, and pay invoices issued before it was bought: refused.
    A few minutes earlier is another node's clock, not a mistake; refusing it
    would fail a payment webhook on every retry.
    """
    if at >= created:
        return at
    if created - at <= CLOCK_SKEW:
        return created
    raise exceptions.InvalidInput(
        f"{what} at {models.isoformat(created)}: --at {models.isoformat(at)} is earlier"
    )


def batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise exceptions.InvalidInput(f"batch_size must be at least 1, not {value!r}")
    return value


def page(limit: Any, status: str | None, statuses: tuple[str, ...]) -> None:
    """A page of a list: 1 to 1000 items, and a status among ``statuses`` (or none)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise exceptions.InvalidInput(f"limit must be from 1 to 1000, not {limit!r}")
    if status is not None and status not in statuses:
        raise exceptions.InvalidInput(f"status must be one of {', '.join(statuses)}")


_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation + " ")


def idempotency_key(value: Any) -> str | None:
    """A client's Idempotency-Key: 1 to 255 printable ASCII characters (or none)."""
    if value is None:
        return None
    if (not isinstance(value, str) or not 0 < len(value) <= 255
            or not set(value) <= _KEY_CHARACTERS):
        raise exceptions.InvalidInput("an idempotency key is 1 to 255 printable ASCII characters")
    return value
