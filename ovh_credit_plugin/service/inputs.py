"""Checks of what callers pass in: times, ids, batch sizes.

Every public operation runs its arguments through these before it touches
the ledger: bad input is a typed error and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable
from typing import Any

from ovh_credit_plugin import contracts, exceptions, i18n
from ovh_credit_plugin.i18n import _

# Validity (up to 120 months), order lapses and voucher days (up to 100
# years) are added to the operation's time: far enough from year 9999.
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)

#: What the service takes for "now" (the wall clock, or a rehearsal's).
Clock = Callable[[], dt.datetime]


def now() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def moment(at: dt.datetime) -> dt.datetime:
    """``at`` in UTC, checked (a datetime, before year 9000)."""
    if not isinstance(at, dt.datetime):
        raise exceptions.InvalidInput(
            _("invalid time %(value)r: expected a datetime") % {"value": at})
    try:
        found = contracts.utc(at)
    except ValueError as error:
        raise exceptions.InvalidInput(_("invalid time: %(error)s") % {"error": error}) from None
    if found >= LATEST:
        raise exceptions.InvalidInput(
            _("invalid time %(time)s: at or after %(latest)s")
            % {"time": contracts.isoformat(found), "latest": contracts.isoformat(LATEST)})
    return found


def project_id(value: Any) -> str:
    try:
        return contracts.check_project_id(value)
    except (TypeError, ValueError):
        raise exceptions.InvalidInput(
            _("invalid project id %(value)r: 1-255 letters, digits and ._:@/-") % {"value": value}
        ) from None


def invoice_id(value: Any) -> str:
    try:
        return contracts.check_id(value)
    except (TypeError, ValueError):
        raise exceptions.InvalidInput(
            _("invalid invoice id %(value)r: 1-255 letters, digits and ._:@/-") % {"value": value}
        ) from None


def settlement_key(value: Any) -> str:
    # The ledger's key column holds 600 characters.
    if not isinstance(value, str) or not 0 < len(value) <= 600:
        raise exceptions.InvalidInput(
            _("invalid settlement key %(value)r: 1-600 characters") % {"value": value})
    return value


def credit_id(value: Any) -> int:
    try:
        ident = int(str(value), 10)
    except ValueError:
        raise exceptions.InvalidInput(_invalid_credit_id(value)) from None
    if ident <= 0 or ident >= 2**63:
        raise exceptions.InvalidInput(_invalid_credit_id(value))
    return ident


def _invalid_credit_id(value: Any) -> str:
    return _("invalid credit id %(value)r: a positive integer") % {"value": value}


class Times:
    """The service's clock and the rules of the times callers pass with ``at``.

    ``skew`` is how far another node's clock may differ from ours (a payment
    provider's webhook, a host on another machine): the configured
    ``clock_skew_allowance``, read when it is needed.
    """

    def __init__(self, *, clock: Clock = now, skew: Callable[[], dt.timedelta]) -> None:
        self._clock = clock
        self._skew = skew

    def now(self) -> dt.datetime:
        return moment(self._clock())

    def read(self, at: dt.datetime | None) -> dt.datetime:
        """The time of a read: ``at`` (the past or the future: "what will it look
        like then?"), or now."""
        return self.now() if at is None else moment(at)

    def change(self, at: dt.datetime | None) -> dt.datetime:
        """The time of a change: ``at`` or now, never later than now (plus the skew).

        A change dated in the future would act on a ledger that does not exist
        yet: expire live credit, lapse orders still payable; refused.
        """
        current = self.now()
        if at is None:
            return current
        found = moment(at)
        skew = self._skew()
        if found > current + skew:
            raise exceptions.InvalidInput(
                _("--at %(at)s is in the future (now is %(now)s, clock skew allowed "
                  "%(skew)s s): a change is never dated after now")
                % {"at": contracts.isoformat(found), "now": contracts.isoformat(current),
                   "skew": i18n.count(int(skew.total_seconds()))}
            )
        return found

    def not_before(self, at: dt.datetime, created: dt.datetime, what: str) -> dt.datetime:
        """``at``, or ``created`` when ``at`` is earlier by no more than the skew.

        A back-dated time before the thing existed would make a credit valid
        before its payment, and pay invoices issued before it was bought:
        refused. A few minutes earlier is another node's clock, not a
        mistake; refusing it would fail a payment webhook on every retry.
        """
        if at >= created:
            return at
        if created - at <= self._skew():
            return created
        raise exceptions.InvalidInput(
            _("%(what)s at %(created)s: --at %(at)s is earlier")
            % {"what": what, "created": contracts.isoformat(created),
               "at": contracts.isoformat(at)}
        )


def batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise exceptions.InvalidInput(
            _("batch_size must be at least 1, not %(value)r") % {"value": value})
    return value


def page(limit: Any, status: str | None, statuses: tuple[str, ...]) -> None:
    """A page of a list: 1 to 1000 items, and a status among ``statuses`` (or none)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise exceptions.InvalidInput(
            _("limit must be from 1 to 1000, not %(value)r") % {"value": limit})
    if status is not None and status not in statuses:
        raise exceptions.InvalidInput(
            _("status must be one of %(statuses)s") % {"statuses": ", ".join(statuses)})


_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation + " ")


def idempotency_key(value: Any) -> str | None:
    """A client's Idempotency-Key: 1 to 255 printable ASCII characters (or none)."""
    if value is None:
        return None
    if (not isinstance(value, str) or not 0 < len(value) <= 255
            or not set(value) <= _KEY_CHARACTERS):
        raise exceptions.InvalidInput(
            _("an idempotency key is 1 to 255 printable ASCII characters"))
    return value
