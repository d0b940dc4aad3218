"""Purchase orders and their payment: credit exists only once an order is paid.

Orders come back as :class:`OrderResult` (plain values); the facade gives
hosts the pydantic :class:`models.Order` of each.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import logging
import uuid
from typing import Any

from sqlalchemy.engine import Connection

from ovh_credit_plugin import conf as plugin_conf
from ovh_credit_plugin import descriptions, exceptions, i18n, money
from ovh_credit_plugin.contracts import OrderResult
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import credits, orders, projects
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import events, inputs
from ovh_credit_plugin.service.settings import Settings

LOG = logging.getLogger(__name__)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar months later, clamped at month end (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def create(
    database: Database,
    settings: Settings,
    times: inputs.Times,
    project_id: str,
    amount: Any,
    *,
    notifier: events.Notifier,
    currency: str | None = None,
    at: dt.datetime | None = None,
) -> OrderResult:
    """A pending purchase order; no credit exists until it is paid."""
    return create_once(database, settings, times, project_id, amount, notifier=notifier,
                       currency=currency, at=at)[0]


def create_once(
    database: Database,
    settings: Settings,
    times: inputs.Times,
    project_id: str,
    amount: Any,
    *,
    notifier: events.Notifier,
    currency: str | None = None,
    idempotency_key: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[OrderResult, bool]:
    """:func:`create`, once per ``idempotency_key``; returns (order, created).

    The same key with the same request (amount, currency as given) returns
    the order the key made first (``created`` False); with another request
    it is refused (IdempotencyConflict). Keys are per project. Concurrent
    requests with one key make one order: the key's row is unique, and the
    loser's transaction, retried, finds it.
    """
    at = times.change(at)
    project_id = inputs.project_id(project_id)
    # "" is a currency given wrong, not one left out: refused, not the project's.
    currency = money.check_currency(currency) if currency is not None else None
    value = money.parse_amount(amount)
    key = inputs.idempotency_key(idempotency_key)
    # "20" and "20.00" are one request.
    fingerprint = hashlib.sha256(
        json.dumps([str(value.normalize()), currency]).encode()
    ).hexdigest()
    # Drawn once, outside the retried transaction: a retry after a
    # connection lost during COMMIT finds the order it made, rather than
    # making a second one with another payment URL.
    order_id = str(uuid.uuid4())

    def work(conn: Connection) -> tuple[OrderResult, bool]:
        if key is not None:
            found = orders.keyed(conn, project_id, key)
            if found is not None:
                if found.fingerprint != fingerprint:
                    raise exceptions.IdempotencyConflict(
                        _("idempotency key %(key)r was used for another order request")
                        % {"key": key}
                    )
                # This call's own order when its first attempt committed and
                # the answer was lost: made by this request, so created.
                return (orders.result(orders.get(conn, found.order_id), at=at),
                        found.order_id == order_id)
        made = orders.find(conn, order_id)
        if made is not None:
            return orders.result(made), True
        code = currency or projects.currency(conn, project_id) or settings.default_currency
        limits = settings.purchase_limits.get(code)
        if limits is None:
            # The customer reads what is refused; the operator (the log, the
            # operator CLI) how to sell it: option names mean nothing to a customer.
            raise exceptions.PurchaseNotOffered(
                _("cloud credit is not sold in %(currency)s") % {"currency": code},
                currency=code,
                operator_hint=_(
                    "to sell it, set [cloud_credit] purchase_min_amount and "
                    "purchase_max_amount for %(currency)s, e.g. %(example)s")
                % {"currency": code, "example": plugin_conf.PURCHASE_LIMITS_EXAMPLE},
            )
        checked = money.parse_amount(value, places=money.currency_places(code))
        lowest, highest = limits
        if checked < lowest or checked > highest:
            raise exceptions.InvalidAmount(
                _("a credit purchase is between %(lowest)s and %(highest)s excluding tax")
                % {"lowest": money.in_sentence(lowest, code, with_currency=False),
                   "highest": money.in_sentence(highest, code)}
            )
        projects.ensure(conn, project_id, code, at=at)
        orders.insert(
            conn,
            order_id=order_id,
            project_id=project_id,
            amount=checked,
            currency=code,
            created_at=at,
            expires_at=at + dt.timedelta(days=settings.order_lapse_days),
            payment_url=settings.payment_url_template.format(
                order_id=order_id, project_id=project_id,
                amount=money.to_str(checked, code), currency=code,
            ),
        )
        if key is not None:
            orders.insert_key(conn, project_id=project_id, key=key, fingerprint=fingerprint,
                              order_id=order_id, at=at)
        return orders.result(orders.get(conn, order_id)), True

    try:
        order, created = database.write(work)
    except exceptions.PurchaseNotOffered as refused:
        # Once per refused request, after the transaction (a retried attempt
        # does not log twice); in English, as every log line.
        LOG.warning("order refused for project %s: no purchase limits for %s; set "
                    "[cloud_credit] purchase_min_amount and purchase_max_amount for it, "
                    "e.g. %s", project_id, refused.currency, plugin_conf.PURCHASE_LIMITS_EXAMPLE)
        raise
    if created:
        # Logged once committed: an attempt rolled back and retried made nothing.
        LOG.info("order %s created for project %s: %s %s", order.id, order.project_id,
                 money.to_str(order.amount, order.currency), order.currency)
        # Also when a retry found the order its lost-at-COMMIT attempt made:
        # that attempt raised, and sent nothing.
        notifier.emit([events.order_created(order)])
    return order, created


def pay(
    database: Database,
    settings: Settings,
    times: inputs.Times,
    order_id: str,
    *,
    notifier: events.Notifier,
    amount: Any = None,
    currency: str | None = None,
    at: dt.datetime | None = None,
) -> OrderResult:
    """Confirm payment: the credit is created exactly once, however often this is called.

    The confirmation that paid the order sends ``order.paid`` and
    ``credit.granted``, after its commit; the others send nothing.
    """
    at = times.change(at)
    paid = money.parse_amount(amount) if amount is not None else None
    paid_currency = money.check_currency(currency) if currency is not None else None

    def work(conn: Connection) -> tuple[OrderResult, list[events.Event]]:
        order = orders.get(conn, order_id, lock=True)
        if paid is not None and paid != order.amount:
            raise exceptions.InvalidAmount(
                _("payment of %(paid)s does not match order %(id)s (%(amount)s excluding tax)")
                % {"paid": i18n.amount(paid), "id": order_id,
                   "amount": money.in_sentence(order.amount, order.currency)}
            )
        if paid_currency is not None and paid_currency != order.currency:
            raise exceptions.CurrencyMismatch(
                _("payment in %(paid)s does not match order %(id)s (%(currency)s)")
                % {"paid": paid_currency, "id": order_id, "currency": order.currency}
            )
        if order.status == "paid":
            return orders.result(order), []
        if order.status == "cancelled":
            raise exceptions.InvalidState(_("order %(id)s is cancelled") % {"id": order_id})
        paid_at = times.not_before(
            at, order.created_at, _("order %(id)s was created") % {"id": order_id})
        if order.status == "expired" or paid_at >= order.expires_at:
            raise exceptions.InvalidState(_("order %(id)s has lapsed unpaid") % {"id": order_id})
        credit = credits.grant(
            conn,
            project_id=order.project_id,
            kind="purchased",
            source=order.id,
            description=descriptions.purchased(order.id),
            currency=order.currency,
            amount=order.amount,
            products=(),
            valid_from=paid_at,
            valid_until=add_months(paid_at, settings.purchased_credit_validity_months),
            at=paid_at,
        )
        orders.mark_paid(conn, order_id, at=paid_at, credit_id=credit.id)
        done = orders.result(orders.get(conn, order_id))
        return done, [events.order_paid(done),
                      events.credit_granted(credits.result(credit, at=paid_at), at=paid_at,
                                            order_id=order_id)]

    try:
        done, paid_events = database.write(work)
    except (exceptions.InvalidInput, exceptions.InvalidState,
            exceptions.OrderNotFound) as error:
        # The payment system says a customer paid: refused, no credit exists
        # for that money (another amount or currency, a cancelled, lapsed or
        # unknown order).
        LOG.warning("payment confirmation of order %s refused, no credit granted: %s; "
                    "reconcile it with the payment provider (refund, or a new order)",
                    order_id, error)
        raise
    if paid_events:  # this confirmation paid it (once committed), not a repeated one
        LOG.info("order %s of project %s paid: credit %s granted (%s %s)", done.id,
                 done.project_id, done.credit_id, money.to_str(done.amount, done.currency),
                 done.currency)
    notifier.emit(paid_events)
    return done


def cancel(
    database: Database, times: inputs.Times, order_id: str, *, at: dt.datetime | None = None
) -> OrderResult:
    at = times.change(at)

    def work(conn: Connection) -> OrderResult:
        order = orders.get(conn, order_id, lock=True)
        if order.status == "cancelled":
            return orders.result(order)
        if order.status != "pending" or at >= order.expires_at:
            # One sentence per state: a status word formatted into a sentence
            # stays English in a translation.
            message = (
                _("order %(id)s is paid; only a pending order can be cancelled")
                if order.status == "paid" else
                _("order %(id)s is expired; only a pending order can be cancelled"))
            raise exceptions.InvalidState(message % {"id": order_id})
        cancelled_at = times.not_before(
            at, order.created_at, _("order %(id)s was created") % {"id": order_id})
        orders.mark_cancelled(conn, order_id, at=cancelled_at)
        return orders.result(orders.get(conn, order_id))

    return database.write(work)


def list_of(
    database: Database, times: inputs.Times, project_id: str, *, at: dt.datetime | None = None
) -> list[OrderResult]:
    """The project's orders, oldest first."""
    at = times.read(at)
    project_id = inputs.project_id(project_id)
    return database.read(
        lambda conn: [orders.result(row, at=at) for row in orders.of_project(conn, project_id)]
    )


STATUSES = ("pending", "paid", "cancelled", "expired")


def show(
    database: Database, times: inputs.Times, order_id: str, *, at: dt.datetime | None = None
) -> OrderResult:
    """One order, its status as of ``at`` (a lapsed pending order shows ``expired``)."""
    at = times.read(at)
    return database.read(lambda conn: orders.result(orders.get(conn, order_id), at=at))


def page(
    database: Database,
    times: inputs.Times,
    project_id: str,
    *,
    status: str | None = None,
    limit: int = 100,
    marker: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[list[OrderResult], bool]:
    """Up to ``limit`` orders after ``marker`` (an order id), oldest first; and whether
    more remain. A marker that is not one of the project's orders is refused."""
    at = times.read(at)
    project_id = inputs.project_id(project_id)
    inputs.page(limit, status, STATUSES)

    def work(conn: Connection) -> tuple[list[OrderResult], bool]:
        try:
            rows = orders.page(conn, project_id, status=status, after=marker, limit=limit + 1,
                               at=at)
        except exceptions.OrderNotFound:
            raise exceptions.InvalidInput(
                _("unknown marker %(marker)r") % {"marker": marker}) from None
        return [orders.result(row, at=at) for row in rows[:limit]], len(rows) > limit

    return database.read(work)
