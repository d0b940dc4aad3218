"""Notifications of what changed in the ledger (oslo.messaging), sent once it committed.

A capability module builds the :class:`Event` objects of a write inside its
transaction function and returns them with its result; it hands them to the
:class:`Notifier` only after :meth:`Database.write` has returned, that is
after COMMIT. A failed attempt's events die with the attempt (a retried
transaction builds its own), a rolled-back transaction's never leave it.

Sending is best effort and never raises: the money has moved whatever the
message bus does, so a failure is logged and the operation succeeds. Events
are therefore sent at most once; the ledger, not the bus, is the record
(docs/events.md). The expiry warnings, recorded as sent once each, are sent
with :meth:`Notifier.deliver`, which tells which were sent.

The options are oslo.messaging's own (``[oslo_messaging_notifications]
driver``, ``transport_url``, ``topics``, ``retry``). oslo.messaging is
imported only when a configuration file has that section (or the host
registered it): it costs a second or more to import, which a CLI command
with notifications off should not pay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import socket
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from oslo_config import cfg

from ovh_credit_plugin import contracts, money

if TYPE_CHECKING:
    from ovh_credit_plugin import models

LOG = logging.getLogger(__name__)

GROUP = "oslo_messaging_notifications"
PUBLISHER = "cloud_credit"
#: oslo.messaging's ``retry`` default, -1, retries forever while the broker is
#: down: the caller (a payment webhook) would hang. Taken as this many instead.
RETRY_WHEN_UNBOUNDED = 2

ORDER_CREATED = "cloud_credit.order.created"
ORDER_PAID = "cloud_credit.order.paid"
CREDIT_GRANTED = "cloud_credit.credit.granted"
CREDIT_EXPIRING = "cloud_credit.credit.expiring"
CREDIT_EXPIRED = "cloud_credit.credit.expired"
CREDIT_VOIDED = "cloud_credit.credit.voided"
EVENT_TYPES = (ORDER_CREATED, ORDER_PAID, CREDIT_GRANTED, CREDIT_EXPIRING, CREDIT_EXPIRED,
               CREDIT_VOIDED)

Priority = Literal["INFO", "WARN"]


@dataclass(frozen=True)
class Event:
    """One notification: its type, priority and JSON-ready payload (strings for money)."""

    event_type: str
    payload: dict[str, Any]
    priority: Priority = "INFO"


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else contracts.isoformat(value)


def _amount(value: Decimal, currency: str) -> str:
    return money.to_str(value, currency)


# -- the events and their payloads (docs/events.md) --------------------------------


def order_created(order: contracts.OrderResult) -> Event:
    return Event(ORDER_CREATED, {
        "order_id": order.id,
        "project_id": order.project_id,
        "amount": _amount(order.amount, order.currency),
        "currency": order.currency,
        "status": order.status,
        "created_at": _time(order.created_at),
        "expires_at": _time(order.expires_at),
        "payment_url": order.payment_url,
    })


def order_paid(order: contracts.OrderResult) -> Event:
    return Event(ORDER_PAID, {
        "order_id": order.id,
        "project_id": order.project_id,
        "amount": _amount(order.amount, order.currency),
        "currency": order.currency,
        "paid_at": _time(order.paid_at),
        "credit_id": order.credit_id,
    })


def credit_granted(
    credit: contracts.CreditResult | models.Credit, *, at: dt.datetime,
    order_id: str | None = None, voucher: str | None = None,
) -> Event:
    """A credit was created: a purchase paid (``order_id``) or a voucher activated
    (``voucher``: the code masked as in logs; the code itself grants credit)."""
    return Event(CREDIT_GRANTED, {
        "credit_id": credit.id,
        "project_id": credit.project_id,
        "kind": credit.kind,
        "amount": _amount(credit.total, credit.currency),
        "available": _amount(credit.available, credit.currency),
        "currency": credit.currency,
        "valid_from": _time(credit.valid_from),
        "valid_until": _time(credit.valid_until),
        "products": list(credit.products),
        "order_id": order_id,
        "voucher": voucher,
        "granted_at": _time(at),
    })


def credit_expiring(
    *, credit_id: int, project_id: str, kind: str, currency: str, expires_unused: Decimal,
    available: Decimal, valid_until: dt.datetime, days_left: int, threshold_days: int,
    at: dt.datetime,
) -> Event:
    """The forecast at ``at`` says a credit holding ``available`` will still hold
    ``expires_unused`` at its end, ``days_left`` days away (within ``threshold_days``)."""
    return Event(CREDIT_EXPIRING, {
        "credit_id": credit_id,
        "project_id": project_id,
        "kind": kind,
        "expires_unused": _amount(expires_unused, currency),
        "available": _amount(available, currency),
        "currency": currency,
        "valid_until": _time(valid_until),
        "days_left": days_left,
        "threshold_days": threshold_days,
        "notified_at": _time(at),
    }, priority="WARN")


def credit_expired(
    *, credit_id: int, project_id: str, kind: str, currency: str, amount: Decimal,
    valid_until: dt.datetime | None, at: dt.datetime,
) -> Event:
    """The expiry job recorded ``amount`` lost by a credit past its end."""
    return Event(CREDIT_EXPIRED, {
        "credit_id": credit_id,
        "project_id": project_id,
        "kind": kind,
        "amount": _amount(amount, currency),
        "currency": currency,
        "valid_until": _time(valid_until),
        "expired_at": _time(at),
    })


def credit_voided(
    *, credit_id: int, project_id: str, kind: str, currency: str, amount: Decimal,
    reason: str, at: dt.datetime,
) -> Event:
    """An operator voided a credit: ``amount`` (what was available) is voided."""
    return Event(CREDIT_VOIDED, {
        "credit_id": credit_id,
        "project_id": project_id,
        "kind": kind,
        "amount": _amount(amount, currency),
        "currency": currency,
        "reason": reason,
        "voided_at": _time(at),
    })


# -- sending -------------------------------------------------------------------


class Delivery(NamedTuple):
    """What :meth:`Notifier.deliver` did: how many events were sent, and why the next
    one was not (the transport's error, one line, no password of its URL; "" when
    every one was sent)."""

    sent: int
    failure: str = ""


class Notifier:
    """Sends events through an ``oslo_messaging.Notifier`` built from the host's options.

    Without ``conf`` (a service built in code), or with no driver but
    ``noop`` configured, nothing is sent. The oslo.messaging notifier is
    built on the first event, not before: building a service does no I/O.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None, *,
                 publisher_id: str | None = None) -> None:
        self._conf = conf
        self._publisher_id = publisher_id
        self._lock = threading.Lock()
        self._sender: Any = None
        self._transport: Any = None

    @property
    def enabled(self) -> bool:
        """Whether a driver other than ``noop`` is configured (events go somewhere)."""
        return bool(set(self._drivers()) - {"noop"})

    def emit(self, events: Iterable[Event]) -> None:
        """Send ``events`` (already committed) in order; log, never raise, on failure."""
        pending = list(events)
        if not pending:
            return
        try:
            sender = self._get_sender()
            if sender is None:
                return
            for event in pending:
                send = sender.warn if event.priority == "WARN" else sender.info
                send({}, event.event_type, event.payload)
        except Exception as error:
            # The ledger has committed: a notification that cannot be sent is
            # an operator's problem to see in the log, not the caller's error.
            _lost(pending, error)

    def deliver(self, events: Iterable[Event]) -> Delivery:
        """Send ``events`` in order, stopping at the first one that could not be sent;
        how many were sent, and why not the next. Logs, never raises.

        For a caller that records what it sent and must not record a lost message
        as sent (the expiry warnings, sent once each): :meth:`emit` cannot tell it.
        oslo.messaging's notifier and its messaging driver catch a failed send
        (a broker down past ``retry``, a wrong transport URL) and log it at ERROR:
        such a record, logged by this thread while an event is handed over, is
        that event's failure (:func:`_failures`).
        """
        pending = list(events)
        if not pending:
            return Delivery(0)
        sent = 0
        with _failures() as failures:
            try:
                sender = self._get_sender()
                if sender is None:
                    return Delivery(0)
                for event in pending:
                    send = sender.warn if event.priority == "WARN" else sender.info
                    send({}, event.event_type, event.payload)
                    if failures.seen:
                        LOG.warning("notification %s could not be sent: %s",
                                    about([event]), failures.seen)
                        return Delivery(sent, failures.error or failures.seen)
                    sent += 1
            except Exception as error:
                _lost(pending[sent:], error)
                return Delivery(sent, described(error))
        return Delivery(sent)

    def close(self) -> None:
        with self._lock:
            transport, self._transport, self._sender = self._transport, None, None
        if transport is not None:
            try:
                transport.cleanup()
            except Exception as error:
                LOG.warning("notification transport could not be closed: %s", error)

    # -- oslo.messaging --------------------------------------------------------

    def _drivers(self) -> Sequence[str]:
        conf = self._conf
        if conf is None:
            return ()
        if GROUP not in conf and GROUP not in conf.list_all_sections():
            # Neither the host nor a configuration file speaks of notifications.
            return ()
        _register_opts(conf)
        return list(conf[GROUP].driver or ())

    def _get_sender(self) -> Any:
        with self._lock:
            if self._sender is None:
                if not self.enabled:
                    return None
                assert self._conf is not None
                oslo_messaging = _import_oslo_messaging()
                conf = self._conf
                retry = conf[GROUP].retry
                transport = oslo_messaging.get_notification_transport(conf)
                self._sender = oslo_messaging.Notifier(
                    transport,
                    publisher_id=self._publisher_id or f"{PUBLISHER}.{_host(conf)}",
                    retry=RETRY_WHEN_UNBOUNDED if retry < 0 else retry,
                )
                self._transport = transport
            return self._sender


def about(events: Sequence[Event], *, limit: int = 10) -> str:
    """``events`` as a log line names them: each one's type, and what it is about (its
    order, credit and project), so that a lost one can be found in the ledger."""
    named = []
    for event in events[:limit]:
        payload = event.payload
        ids = ", ".join(f"{word} {payload[key]}" for key, word in (
            ("order_id", "order"), ("credit_id", "credit"), ("project_id", "project"))
            if payload.get(key) is not None)
        named.append(f"{event.event_type} ({ids})" if ids else event.event_type)
    if len(events) > limit:
        named.append(f"and {len(events) - limit} more")
    return ", ".join(named)


def _lost(events: Sequence[Event], error: Exception) -> None:
    """Log notifications that could not be sent: at ERROR, one line (a transport that
    cannot be built fails every operation's send; the traceback with -v/DEBUG)."""
    LOG.error("notifications %s could not be sent (%s: %s); the changes are committed, "
              "the notifications lost: check [oslo_messaging_notifications] driver and "
              "transport_url", about(events), type(error).__name__, error,
              exc_info=LOG.isEnabledFor(logging.DEBUG))


#: Where oslo.messaging's notifier and its messaging driver log a send they failed
#: (and do not raise).
_OSLO_NOTIFY_LOGGERS = ("oslo_messaging.notify.notifier", "oslo_messaging.notify.messaging")


# user:password@ in a URL an error may quote (a transport URL): after its "//", and
# after each "," of a cluster's (rabbit://u:p@host1,u:p@host2/).
_URL_PASSWORD = re.compile(r"((?://|,)[^/\s:@,]*:)[^/\s@]*@")


def described(error: BaseException) -> str:
    """``error`` in one short line for an operator's console: its class and first
    line, no password of a URL it quotes."""
    first = (str(error).splitlines() or [""])[0].strip()
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return _URL_PASSWORD.sub(r"\1***@", text)[:200]


class _Failures(logging.Handler):
    """Sees the ERROR records of the thread that made it (a send it failed): the
    record's first line (``seen``), and the transport's error it carries, if any
    (``error``, :func:`described`)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._thread = threading.get_ident()
        self.seen = ""
        self.error = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread or self.seen:
            return
        try:
            self.seen = record.getMessage().splitlines()[0][:200] or "error"
        except Exception:
            self.seen = "error"
        found = record.exc_info[1] if record.exc_info else None
        if found is None and isinstance(record.args, tuple):
            found = next((a for a in record.args if isinstance(a, BaseException)), None)
        if found is not None:
            self.error = described(found)


@contextlib.contextmanager
def _failures() -> Iterator[_Failures]:
    """A :class:`_Failures` on oslo.messaging's notify loggers while the block runs.

    A logger the process silenced (``ovh-credit`` sets ``oslo_messaging`` to
    CRITICAL) would not even make the record: such a logger is set to ERROR
    for the block, its records kept from its parents' handlers (the process
    still does not print them), then put back as it was.
    """
    failures = _Failures()
    saved = []
    for name in _OSLO_NOTIFY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        if not logger.isEnabledFor(logging.ERROR):
            logger.setLevel(logging.ERROR)
            logger.propagate = False
        logger.addHandler(failures)
    try:
        yield failures
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(failures)
            logger.setLevel(level)
            logger.propagate = propagate


def _host(conf: cfg.ConfigOpts) -> str:
    """The host name OpenStack services publish under: ``[DEFAULT] host`` when the host
    (CloudKitty) has that option, else this machine's name."""
    try:
        host = conf.host
    except cfg.NoSuchOptError:
        host = None
    return str(host) if host else socket.gethostname()


def _import_oslo_messaging() -> Any:
    with warnings.catch_warnings():
        # oslo.messaging imports oslo.service, which warns that eventlet is
        # deprecated: not ours to act on, and a CLI prints one line on stderr.
        warnings.simplefilter("ignore")
        import oslo_messaging
    return oslo_messaging


def _register_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging's ``[oslo_messaging_notifications]`` options, as it registers them."""
    if GROUP in conf and "driver" in conf[GROUP]:
        return
    _import_oslo_messaging()
    from oslo_messaging import opts

    for group, options in opts.list_opts():
        if group == GROUP:
            conf.register_opts(options, group=GROUP)
