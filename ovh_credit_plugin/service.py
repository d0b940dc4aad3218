"""The credit service: the only writer of the ledger.

Orders and payments, voucher activation, settlement of charges, expiry,
voids and audit. Hosts (CloudKitty, invoice processors) and the CLI only
translate their inputs into calls of :class:`CreditService`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import itertools
import json
import logging
import string
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, NamedTuple, NoReturn, cast

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Connection
from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from ovh_credit_plugin import allocation, collector, exceptions, models, money
from ovh_credit_plugin.catalog import base as catalog_base
from ovh_credit_plugin.conf import DEFAULT_SQLITE_CONNECTION, ledger_connection
from ovh_credit_plugin.ledger import catalog_redemptions, schema, store
from ovh_credit_plugin.ledger.database import Database, create_engine

LOG = logging.getLogger(__name__)
ZERO = money.ZERO

OnChange = Literal["conflict", "replace"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar months later, clamped at month end (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Settings:
    default_currency: str = "EUR"
    purchased_credit_validity_months: int = 13
    purchase_min_amount: Decimal = Decimal(5)
    purchase_max_amount: Decimal = Decimal(100000)
    order_lapse_days: int = 7
    payment_url_template: str = "https://pay.example/orders/{order_id}"
    voucher_max_failed_attempts: int = 5
    voucher_attempt_window: int = 3600

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Settings:
        group = conf.cloud_credit
        try:
            # The bounds are written for the default currency: a bound it
            # cannot express (5.001 EUR) is a typo, not a limit.
            places = money.currency_places(group.default_currency)
            minimum = money.parse_amount(group.purchase_min_amount, places=places,
                                         field="purchase_min_amount")
            maximum = money.parse_amount(group.purchase_max_amount, places=places,
                                         field="purchase_max_amount")
        except exceptions.InvalidInput as error:
            raise exceptions.ConfigError(f"[cloud_credit] {error}") from None
        if minimum > maximum:
            raise exceptions.ConfigError(
                "[cloud_credit] purchase_min_amount is above purchase_max_amount"
            )
        _check_payment_url_template(group.payment_url_template)
        return cls(
            default_currency=group.default_currency,
            purchased_credit_validity_months=group.purchased_credit_validity_months,
            purchase_min_amount=minimum,
            purchase_max_amount=maximum,
            order_lapse_days=group.order_lapse_days,
            payment_url_template=group.payment_url_template,
            voucher_max_failed_attempts=group.voucher_max_failed_attempts,
            voucher_attempt_window=group.voucher_attempt_window,
        )


_PAYMENT_URL_FIELDS = frozenset({"order_id", "project_id", "amount", "currency"})


def _check_payment_url_template(template: str) -> None:
    # Plain field names only: str.format also follows attributes and indexes
    # ("{order_id.__class__}"), which would put Python internals in a URL.
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as error:  # unbalanced braces
        raise _bad_template(error) from None
    for name in fields:
        if name not in _PAYMENT_URL_FIELDS:
            raise exceptions.ConfigError(
                f"[cloud_credit] payment_url_template has an unknown field {{{name}}}: "
                f"use {', '.join('{' + f + '}' for f in sorted(_PAYMENT_URL_FIELDS))}"
            )
    try:
        template.format(order_id="o", project_id="p", amount="1", currency="EUR")
    except ValueError as error:  # a bad format spec
        raise _bad_template(error) from None


def _bad_template(error: ValueError) -> exceptions.ConfigError:
    return exceptions.ConfigError(
        f"[cloud_credit] payment_url_template is not a valid template: {error}"
    )


@dataclass(frozen=True)
class Charge:
    """Something to settle: an invoice, or a rated period of a CloudKitty scope.

    ``key`` is the idempotency key; ``at`` the settlement time used for
    eligibility; ``lines`` carry ledger-scale amounts.
    """

    key: str
    project_id: str
    invoice_id: str
    currency: str
    at: dt.datetime
    lines: Sequence[allocation.Line]
    fingerprint: str

    @classmethod
    def of(
        cls,
        *,
        key: str,
        project_id: str,
        invoice_id: str,
        currency: str,
        at: dt.datetime,
        lines: Sequence[allocation.Line],
    ) -> Charge:
        """A charge with the fingerprint of its content (what every host builds).

        Amounts are taken to the ledger's scale first, so that ``10.00`` and
        ``10`` make the same fingerprint (a replay, not a conflict or a
        re-rating); what is not an exact ledger amount is left for the
        settlement's check to refuse, never rounded here.
        """
        lines = [
            allocation.Line(line.id, line.product, money.ledger_if_exact(line.amount))
            for line in lines
        ]
        return cls(key=key, project_id=project_id, invoice_id=invoice_id, currency=currency,
                   at=at, lines=lines, fingerprint=fingerprint(currency, at, lines))

    @classmethod
    def from_invoice(cls, invoice: models.Invoice) -> Charge:
        return cls.of(
            key=invoice_key(invoice.project_id, invoice.id),
            project_id=invoice.project_id,
            invoice_id=invoice.id,
            currency=invoice.currency,
            at=invoice.issued_at,
            lines=[allocation.Line(line.id, line.product, line.amount) for line in invoice.lines],
        )


def invoice_key(project_id: str, invoice_id: str) -> str:
    """An invoice's settlement key: ``invoice/<project>/<invoice>``, one per pair.

    Both ids may hold "/" ("2026/11/0042"), so the project's is written
    ``%2F``: "%" is no id character, so the first "/" after the project ends
    it. (Earlier versions wrote it as is: project "a/b" with invoice "c" and
    project "a" with invoice "b/c" shared a key; see ``_legacy_keys``.)
    """
    return f"invoice/{project_id.replace('/', '%2F')}/{invoice_id}"


# json.dumps(..., separators=(",", ":")) without building an encoder per call:
# the same text, so fingerprints recorded by earlier versions still match.
_CANONICAL = json.JSONEncoder(separators=(",", ":"))


def fingerprint(currency: str, at: dt.datetime, lines: Sequence[allocation.Line]) -> str:
    """What makes two settlements of one key the same charge."""
    canonical = _CANONICAL.encode(
        [currency, models.isoformat(at), [[x.id, x.product, str(x.amount)] for x in lines]]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ChargeState(NamedTuple):
    """What :meth:`CreditService.charge_state` found before settling a charge."""

    recorded: bool
    funded: bool
    currency: str | None
    others: tuple[str, ...] = ()


class Outcome(NamedTuple):
    """One settlement as the ledger work produced it, before any result object.

    :meth:`CreditService.settle` hands hosts :class:`models.Settlement`
    (:meth:`model`); month-end runs that only pass the settlement on as JSON
    (:meth:`CreditService.settle_invoices_json`) skip the models, a pydantic
    object per allocation, and format straight from this (:meth:`json_ready`).
    """

    invoice_id: str
    project_id: str
    currency: str
    total: Decimal
    credit_applied: Decimal
    amount_due: Decimal
    allocations: Sequence[allocation.Share]
    replayed: bool

    def model(self) -> models.Settlement:
        return models.Settlement.trusted(
            invoice_id=self.invoice_id,
            project_id=self.project_id,
            currency=self.currency,
            total=self.total,
            credit_applied=self.credit_applied,
            amount_due=self.amount_due,
            allocations=[
                models.Allocation.trusted(
                    line_id=s.line_id, credit_id=s.credit_id, kind=s.kind, amount=s.amount
                )
                for s in self.allocations
            ],
            replayed=self.replayed,
        )

    def json_ready(self) -> dict[str, object]:
        """Equal to ``self.model().json_ready()``."""
        return models.settlement_json(self)


@dataclass
class ExpirySummary:
    at: dt.datetime
    orders_lapsed: int = 0
    credits_expired: int = 0
    amount_expired: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class AuditReport:
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class VoucherPreview:
    """What activating a voucher would grant (``voucher check``)."""

    voucher: models.Voucher
    redeemable: bool
    reason: str


class CreditService:
    """Prepaid cloud credit and vouchers over one ledger database."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings | None = None,
        catalog: catalog_base.VoucherCatalog | Callable[[], catalog_base.VoucherCatalog]
        | None = None,
    ) -> None:
        self.database = database
        self.settings = settings or Settings()
        self._catalog = catalog

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, *, connection: str | None = None) -> CreditService:
        """Build from the host's options (``register_opts`` must have run)."""
        group = conf.cloud_credit
        engine = create_engine(
            connection or ledger_connection(conf) or DEFAULT_SQLITE_CONNECTION,
            pool_size=group.pool_size,
            max_overflow=group.max_overflow,
            pool_recycle=group.pool_recycle,
            sqlite_busy_timeout=group.sqlite_busy_timeout,
        )
        database = Database(engine, max_attempts=group.max_transaction_attempts)
        settings = Settings.from_conf(conf)
        return cls(
            database=database,
            settings=settings,
            catalog=lambda: load_catalog(conf, database=database),
        )

    @property
    def catalog(self) -> catalog_base.VoucherCatalog:
        if self._catalog is None:
            raise exceptions.ConfigError("no voucher catalog is configured")
        if not isinstance(self._catalog, catalog_base.VoucherCatalog):
            self._catalog = self._catalog()
        return self._catalog

    def close(self) -> None:
        if isinstance(self._catalog, catalog_base.VoucherCatalog):
            self._catalog.close()
        self.database.dispose()

    # -- orders ------------------------------------------------------------

    def create_order(
        self,
        project_id: str,
        amount: Any,
        *,
        currency: str | None = None,
        at: dt.datetime | None = None,
    ) -> models.Order:
        """A pending purchase order; no credit exists until it is paid."""
        at = _at(at)
        project_id = _project_id(project_id)
        currency = money.check_currency(currency) if currency else None
        value = money.parse_amount(amount)
        # Drawn once, outside the retried transaction: a retry after a
        # connection lost during COMMIT finds the order it made, rather than
        # making a second one with another payment URL.
        order_id = str(uuid.uuid4())

        def work(conn: Connection) -> models.Order:
            made = conn.execute(
                sa.select(schema.orders).where(schema.orders.c.id == order_id)
            ).one_or_none()
            if made is not None:
                return _order_model(made)
            code = currency or store.project_currency(conn, project_id) or (
                self.settings.default_currency
            )
            places = money.currency_places(code)
            checked = money.parse_amount(value, places=places)
            lowest, highest = self.settings.purchase_min_amount, self.settings.purchase_max_amount
            if checked < lowest or checked > highest:
                raise exceptions.InvalidAmount(
                    f"a credit purchase is between {money.to_str(lowest, code)} and "
                    f"{money.to_str(highest, code)} {code}"
                )
            store.ensure_project(conn, project_id, code, at=at)
            payment_url = self.settings.payment_url_template.format(
                order_id=order_id,
                project_id=project_id,
                amount=money.to_str(checked, code),
                currency=code,
            )
            conn.execute(
                schema.orders.insert().values(
                    id=order_id,
                    project_id=project_id,
                    amount=checked,
                    currency=code,
                    status="pending",
                    created_at=at,
                    expires_at=at + dt.timedelta(days=self.settings.order_lapse_days),
                    payment_url=payment_url,
                )
            )
            LOG.info("order %s created for project %s: %s %s", order_id, project_id, checked, code)
            return _order_model(_get_order(conn, order_id))

        return self.database.write(work)

    def pay_order(
        self,
        order_id: str,
        *,
        amount: Any = None,
        currency: str | None = None,
        at: dt.datetime | None = None,
    ) -> models.Order:
        """Confirm payment: the credit is created exactly once, however often this is called."""
        at = _at(at)
        paid = money.parse_amount(amount) if amount is not None else None
        paid_currency = money.check_currency(currency) if currency is not None else None

        def work(conn: Connection) -> models.Order:
            order = _get_order(conn, order_id, lock=True)
            if paid is not None and paid != order.amount:
                raise exceptions.InvalidAmount(
                    f"payment of {paid} does not match order {order_id} "
                    f"({money.to_str(order.amount, order.currency)} {order.currency})"
                )
            if paid_currency is not None and paid_currency != order.currency:
                raise exceptions.CurrencyMismatch(
                    f"payment in {paid_currency} does not match order {order_id} "
                    f"({order.currency})"
                )
            if order.status == "paid":
                return _order_model(order)
            if order.status == "cancelled":
                raise exceptions.InvalidState(f"order {order_id} is cancelled")
            paid_at = _not_before(at, order.created_at, f"order {order_id} was created")
            if order.status == "expired" or paid_at >= order.expires_at:
                raise exceptions.InvalidState(f"order {order_id} has lapsed unpaid")
            valid_until = add_months(paid_at, self.settings.purchased_credit_validity_months)
            credit_id = store.grant(
                conn,
                project_id=order.project_id,
                kind="purchased",
                source=order.id,
                description=f"Cloud credit (order {order.id})",
                currency=order.currency,
                amount=order.amount,
                products=(),
                valid_from=paid_at,
                valid_until=valid_until,
                at=paid_at,
            )
            conn.execute(
                schema.orders.update()
                .where(schema.orders.c.id == order_id)
                .values(status="paid", paid_at=paid_at, credit_id=credit_id)
            )
            LOG.info("order %s paid: credit %s granted", order_id, credit_id)
            return _order_model(_get_order(conn, order_id))

        return self.database.write(work)

    def cancel_order(self, order_id: str, *, at: dt.datetime | None = None) -> models.Order:
        at = _at(at)

        def work(conn: Connection) -> models.Order:
            order = _get_order(conn, order_id, lock=True)
            if order.status == "cancelled":
                return _order_model(order)
            if order.status != "pending" or at >= order.expires_at:
                status = "expired" if order.status == "pending" else order.status
                raise exceptions.InvalidState(
                    f"order {order_id} is {status}; only a pending order can be cancelled"
                )
            cancelled_at = _not_before(at, order.created_at, f"order {order_id} was created")
            conn.execute(
                schema.orders.update()
                .where(schema.orders.c.id == order_id)
                .values(status="cancelled", cancelled_at=cancelled_at)
            )
            return _order_model(_get_order(conn, order_id))

        return self.database.write(work)

    def list_orders(self, project_id: str, *, at: dt.datetime | None = None) -> list[models.Order]:
        at = _at(at)
        project_id = _project_id(project_id)
        table = schema.orders

        def work(conn: Connection) -> list[models.Order]:
            rows = conn.execute(
                sa.select(table)
                .where(table.c.project_id == project_id)
                .order_by(table.c.created_at, table.c.id)
            )
            return [_order_model(row, at=at) for row in rows]

        return self.database.read(work)

    # -- credits -----------------------------------------------------------

    def list_credits(
        self, project_id: str, *, at: dt.datetime | None = None
    ) -> list[models.Credit]:
        """Every credit of the project, in consumption order."""
        at = _at(at)
        project_id = _project_id(project_id)

        def work(conn: Connection) -> list[models.Credit]:
            rows = list(
                conn.execute(
                    sa.select(schema.credits).where(schema.credits.c.project_id == project_id)
                )
            )
            rows.sort(key=lambda r: allocation.consumption_key(_state_of(r)))
            return [store.credit_model(row, at=at) for row in rows]

        return self.database.read(work)

    def show_credit(
        self, credit_id: Any, *, at: dt.datetime | None = None
    ) -> tuple[models.Credit, list[models.LedgerEntry]]:
        at = _at(at)
        ident = _credit_id(credit_id)
        entries_table = schema.ledger_entries

        def work(conn: Connection) -> tuple[models.Credit, list[models.LedgerEntry]]:
            row = conn.execute(
                sa.select(schema.credits).where(schema.credits.c.id == ident)
            ).one_or_none()
            if row is None:
                raise exceptions.CreditNotFound(f"no credit {credit_id}")
            entries = [
                models.LedgerEntry.model_construct(**entry._asdict())
                for entry in conn.execute(
                    sa.select(entries_table)
                    .where(entries_table.c.credit_id == ident)
                    .order_by(entries_table.c.id)
                )
            ]
            return store.credit_model(row, at=at), entries

        return self.database.read(work)

    def void_credit(
        self, credit_id: Any, *, reason: str, at: dt.datetime | None = None
    ) -> models.Credit:
        """Operator action (fraud, charge-back): the balance is voided, with a reason.

        Idempotent on the reason: voiding a voided credit again with the same
        reason returns it unchanged (a retry after a connection lost during
        COMMIT, an operator re-running the command); another reason is refused.
        """
        at = _at(at)
        ident = _credit_id(credit_id)
        reason = reason.strip() if isinstance(reason, str) else ""
        if not reason:
            raise exceptions.InvalidInput("voiding a credit needs a reason")

        def work(conn: Connection) -> models.Credit:
            credit = store.lock_credit(conn, ident)
            if credit.voided_at is not None:
                done = _read_credit_row(conn, ident)
                if done.void_reason == reason:
                    return store.credit_model(done, at=at)
                raise exceptions.InvalidState(
                    f"credit {ident} is already voided ({done.void_reason})"
                )
            voided_at = _not_before(at, credit.created_at, f"credit {ident} was granted")
            amount = credit.available
            credit.voided += amount
            credit.available = ZERO
            credit.dirty = True
            store.write_balances(conn, [credit])
            conn.execute(
                schema.credits.update()
                .where(schema.credits.c.id == ident)
                .values(voided_at=voided_at, void_reason=reason)
            )
            store.insert_entries(conn, [store.Entry(ident, "void", amount, note=reason)],
                                 at=voided_at)
            LOG.warning("credit %s voided (%s): %s lost", ident, reason, amount)
            return _read_credit(conn, ident, at=voided_at)

        return self.database.write(work)

    # -- vouchers ----------------------------------------------------------

    def check_voucher(self, code: str, *, at: dt.datetime | None = None) -> VoucherPreview:
        """What a code would grant, without redeeming it (the catalog's GET only).

        An operator tool: it is not throttled and tells an unknown code from
        a used one, so a host must not offer it to customers as it is.
        """
        at = _at(at)
        normalized = catalog_base.normalize_code(code)
        voucher = self.catalog.get(normalized)
        try:
            _check_voucher_usable(voucher, normalized, at)
        except (catalog_base.VoucherAlreadyRedeemed, catalog_base.VoucherUnavailable) as error:
            # Only the voucher's own state makes a preview "not redeemable";
            # a broken answer (another code...) is an error, raised as such.
            return VoucherPreview(voucher, False, str(error))
        return VoucherPreview(voucher, True, "redeemable")

    def activate_voucher(
        self, project_id: str, code: str, *, at: dt.datetime | None = None
    ) -> models.Credit:
        """Validate and redeem a code against the catalog, then grant its credit once.

        Crash-safe: the intent is recorded (``pending``) before the catalog
        is asked to redeem, under an idempotency key fixed per (project,
        code). If the process dies, or the catalog's answer is lost, between
        the catalog's redemption and the grant, running the same activation
        again (``ovh-credit voucher pending`` lists them) replays the
        redemption with the same key, gets the same redemption back and
        grants exactly once.

        Abuse: failed activations are counted per project, in-flight ones
        included, so concurrent tries cannot overrun the limit; unknown,
        used and expired codes all give the customer the same message, and
        the logs the precise reason.

        A success costs three durable transactions, each one needed: the
        throttle reservation (committed before the catalog is asked, so that
        concurrent tries see it), the intent (committed before the catalog
        redeems, for crash safety) and the grant, which also closes the
        reservation. The intent cannot join the reservation: it would exist
        before the code was checked, and a concurrent try that finds a
        pending intent replays the redemption (see ``docs/voucher-catalog.md``).
        """
        at = _at(at)
        project_id = _project_id(project_id)
        code = catalog_base.normalize_code(code)
        masked = catalog_base.mask_code(code)
        key = catalog_base.idempotency_key(project_id, code)

        status, attempt = self._begin_activation(project_id, code, at)
        if status == "pending":
            # Finishing a half-done activation tries no new code (the catalog
            # accepted this one before): no throttle, so that an operator can
            # finish it even for a throttled project, and no GET.
            LOG.warning("voucher %s: resuming a pending activation for project %s",
                        masked, project_id)
            return self._redeem_and_grant(project_id, code, key, currency=None, attempt=None,
                                          at=at)
        assert attempt is not None
        try:
            if status is not None:  # granted: a project activates a code once
                self._refuse(project_id, masked,
                             f"voucher {masked} was already activated on project {project_id}",
                             attempt=attempt, at=at, public=False)
            # The GET and the POST share one time budget: the activation as a
            # whole, not each call, is what must not stall the caller.
            with self.catalog.deadline():
                try:
                    voucher = self.catalog.get(code)
                    _check_voucher_usable(voucher, code, at)
                except catalog_base.REFUSALS as error:
                    self._refuse(project_id, masked, error, attempt=attempt, at=at)
                self.database.write(
                    lambda conn: _record_intent(conn, project_id=project_id, code=code,
                                                key=key, currency=voucher.currency, at=at)
                )
                LOG.info("voucher %s: activation recorded for project %s", masked, project_id)
                return self._redeem_and_grant(project_id, code, key,
                                              currency=voucher.currency, attempt=attempt,
                                              at=at)
        except exceptions.VoucherRefused:
            raise  # recorded as a failed attempt by _refuse
        except Exception:
            # Not the customer's doing (catalog down or broken, ledger error,
            # wrong currency): no failed attempt is held against the project.
            self._end_attempt(attempt)
            raise

    def _redeem_and_grant(
        self,
        project_id: str,
        code: str,
        key: str,
        *,
        currency: str | None,
        attempt: int | None,
        at: dt.datetime,
    ) -> models.Credit:
        """The catalog's POST, then one transaction: the grant and the closed reservation."""
        masked = catalog_base.mask_code(code)
        try:
            redemption = self.catalog.redeem(code, project_id=project_id, idempotency_key=key,
                                             at=at)
        except catalog_base.REFUSALS as error:
            # A refusal means nothing is redeemed under this key: the intent
            # goes (with the failed attempt, in one transaction), and the
            # code may be tried again later.
            self._refuse(project_id, masked, error, attempt=attempt, at=at, drop_intent=key)
        # Any other failure above or below leaves the intent pending: the
        # catalog may have committed the redemption (timeout, lost or broken
        # answer), and only a replay with the same key can tell.
        _check_redemption(redemption, code=code, project_id=project_id, currency=currency)

        def grant(conn: Connection) -> models.Credit:
            row = _activation(conn, project_id, code, lock=True)
            if row is None:  # the intent was dropped by a concurrent failure: record anew
                _record_intent(conn, project_id=project_id, code=code, key=key,
                               currency=redemption.currency, at=at)
                row = _activation(conn, project_id, code, lock=True)
                assert row is not None
            # The reservation closes with the grant: one durable commit less
            # than a transaction of its own, and a success is never left
            # counting as a running try. A grant that fails rolls it back
            # with everything else; the caller then drops it.
            if attempt is not None:
                conn.execute(_CLOSE_ATTEMPT, {"attempt": attempt, "succeeded": True,
                                              "reason": f"{masked}: activated"})
            if row.status == "granted":
                return _voucher_credit(conn, row.credit_id, at=at)
            # Activation is when the catalog redeemed the code: a run that
            # finishes a pending activation days later does not extend it.
            activated = min(at, redemption.redeemed_at)
            # The credit starts at activation, or at a later start the catalog
            # sets; never earlier, like purchased credit (from its payment): a
            # voucher does not pay for usage from before it was activated
            # (an invoice or a re-rated period settled later). Days count
            # from that start: the credit never ends before it begins.
            valid_from = max(activated, redemption.valid_from or activated)
            ends = [d for d in (
                redemption.valid_until,
                valid_from + dt.timedelta(days=redemption.validity_days)
                if redemption.validity_days else None,
            ) if d is not None]
            store.ensure_project(conn, project_id, redemption.currency, at=at)
            credit_id = store.grant(
                conn,
                project_id=project_id,
                kind="voucher",
                source=code,
                description=redemption.description or f"Voucher {masked}",
                currency=redemption.currency,
                amount=redemption.amount,
                products=redemption.products,
                valid_from=valid_from,
                valid_until=min(ends) if ends else None,
                at=at,
            )
            conn.execute(_GRANT_ACTIVATION, {"activation": row.id, "credit_id": credit_id,
                                             "redemption_id": redemption.id, "at": at})
            LOG.info("voucher %s redeemed (%s): credit %s granted to project %s",
                     masked, redemption.id, credit_id, project_id)
            return _voucher_credit(conn, credit_id, at=at)

        return self.database.write(grant)

    def pending_activations(self) -> list[dict[str, Any]]:
        """Activations recorded but not granted: a crash between catalog and ledger.

        Finish one by activating the same code for the same project again.
        """
        table = schema.voucher_activations

        def work(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                sa.select(table.c.project_id, table.c.code, table.c.created_at)
                .where(table.c.status == "pending")
                .order_by(table.c.created_at, table.c.id)
            )
            return [dict(row._mapping) for row in rows]

        return self.database.read(work)

    def _begin_activation(
        self, project_id: str, code: str, at: dt.datetime
    ) -> tuple[str | None, int | None]:
        """The activation's status so far and, unless resuming, a reserved try.

        Returns ``("pending", None)`` for a half-done activation (resumed
        without a reservation), else the status (``None`` or ``"granted"``)
        and the id of the reservation; raises TooManyAttempts when the
        project failed too often.

        The reservation counts as a failure until the try ends. Each try
        counts every reservation committed before its count, its own
        included, so however many run at once no more than the limit get
        through (when tries collide at the limit, one too many may be
        refused: the safe side). Crashed tries keep their reservation until
        the window ends.

        On PostgreSQL and MariaDB (READ COMMITTED) the reservation is
        committed in its own transaction before the count: two concurrent
        transactions that each inserted and then counted could both miss the
        other's uncommitted row. On SQLite, writers run one at a time
        (``BEGIN IMMEDIATE``): counting inside the reserving transaction sees
        every reservation committed before it and is seen by every count
        after it, the same guarantee for one durable commit and no read
        transaction; a throttled try then writes nothing at all.
        """
        limit = self.settings.voucher_max_failed_attempts
        window = self.settings.voucher_attempt_window
        since = at - dt.timedelta(seconds=window)
        serialized = self.database.dialect == "sqlite"

        def begin(conn: Connection) -> tuple[str | None, int | None, int]:
            status = conn.execute(
                _ACTIVATION_STATUS, {"project_id": project_id, "code": code}
            ).scalar_one_or_none()
            if status == "pending":
                return status, None, 0
            failures = 0
            if serialized:
                failures = _failures(conn, project_id, since) + 1  # this try included
                if failures > limit:
                    return status, None, failures  # throttled: nothing written
            result = conn.execute(_RESERVE_ATTEMPT, {"project_id": project_id, "at": at})
            assert result.inserted_primary_key is not None
            return status, int(result.inserted_primary_key[0]), failures

        status, attempt, failures = self.database.write(begin)
        if status == "pending":
            return status, None
        if not serialized:
            # No upper bound on created_at in the count: a concurrent try may
            # have taken a later timestamp and committed before this count.
            failures = self.database.read(lambda conn: _failures(conn, project_id, since))
            if failures > limit:
                assert attempt is not None
                self._end_attempt(attempt)
                attempt = None
        if attempt is None:
            LOG.warning("voucher activation throttled for project %s (%d failed or running "
                        "tries in %d s)", project_id, failures - 1, window)
            raise exceptions.TooManyAttempts(
                "too many failed voucher activations on this project: try again later"
            )
        return status, attempt

    def _end_attempt(self, attempt: int) -> None:
        """Drop a reservation: a try that was nobody's fault is not held against anyone."""
        try:
            self.database.write(lambda conn: conn.execute(_DROP_ATTEMPT, {"attempt": attempt}))
        except Exception as error:
            # The activation's own result matters more; a reservation left
            # behind only counts as a failure until the window ends.
            LOG.warning("voucher attempt %s could not be closed: %s", attempt, error)

    def _refuse(
        self,
        project_id: str,
        masked: str,
        error: catalog_base.CatalogError | str,
        *,
        attempt: int | None,
        at: dt.datetime,
        public: bool = True,
        drop_intent: str | None = None,
    ) -> NoReturn:
        """Record a failed try and raise: the customer sees one message, the log the reason.

        The failure is recorded (the reservation gets its reason, or a new
        row is written when resuming) in one transaction with dropping the
        intent under ``drop_intent``, when the catalog refused the POST.
        """
        LOG.warning("voucher %s refused for project %s: %s", masked, project_id, error)
        reason = f"{masked}: {error}"

        def record(conn: Connection) -> None:
            if drop_intent is not None:
                conn.execute(_DROP_INTENT, {"key": drop_intent})
            if attempt is None:
                conn.execute(_FAILED_ATTEMPT, {"project_id": project_id, "reason": reason,
                                               "at": at})
            else:
                conn.execute(_CLOSE_ATTEMPT, {"attempt": attempt, "succeeded": False,
                                              "reason": reason})

        self.database.write(record)
        if drop_intent is not None:
            self._forget_empty_project(project_id)
        refusal = exceptions.VoucherRefused(str(error), public=public)
        if isinstance(error, BaseException):
            raise refusal from error
        raise refusal

    def _forget_empty_project(self, project_id: str) -> None:
        """Undo the currency a refused redemption's intent fixed, if nothing else holds it.

        The intent fixes the project's currency (see _record_intent); when the
        catalog then refuses, a project that has nothing else (no credit,
        order nor activation) should not keep the voucher's currency for its
        next order. Best effort, in a transaction of its own: a concurrent
        first order may reference the row meanwhile, and then it stays.
        """
        values = {"project_id": project_id}

        def work(conn: Connection) -> None:
            # Off SQLite, the row first: an intent or order being written holds
            # it (or a key lock), and the check below, a statement of its own
            # under READ COMMITTED, then sees what they committed.
            if (conn.dialect.name != "sqlite"
                    and conn.execute(_PROJECT_CURRENCY_LOCKED, values).first() is None):
                return
            conn.execute(_FORGET_EMPTY_PROJECT, values)

        try:
            self.database.write(work)
        except Exception as error:
            LOG.warning("project %s: its currency could not be released: %s", project_id, error)

    # -- settlement --------------------------------------------------------

    def settle_invoice(
        self, invoice: models.Invoice, *, at: dt.datetime | None = None
    ) -> models.Settlement:
        """Apply credit to an invoice; idempotent on (project, invoice id)."""
        return self._settle_checked([Charge.from_invoice(invoice)], on_change="conflict",
                                    record_unpaid=True, at=at)[0].model()

    def settle_invoices(
        self,
        invoices: Iterable[models.Invoice],
        *,
        batch_size: int = 1000,
        at: dt.datetime | None = None,
    ) -> Iterator[models.Settlement]:
        """Month-end runs: one transaction per batch; yields settlements as batches commit."""
        for outcomes in self._settle_batches(invoices, batch_size=batch_size, at=at):
            for outcome in outcomes:
                yield outcome.model()

    def settle_invoices_json(
        self,
        invoices: Iterable[models.Invoice],
        *,
        batch_size: int = 1000,
        at: dt.datetime | None = None,
    ) -> Iterator[dict[str, object]]:
        """:meth:`settle_invoices`, each settlement as its JSON-ready dict (what hosts send on)."""
        for outcomes in self._settle_batches(invoices, batch_size=batch_size, at=at):
            for outcome in outcomes:
                yield outcome.json_ready()

    def _settle_batches(
        self, invoices: Iterable[models.Invoice], *, batch_size: int, at: dt.datetime | None
    ) -> Iterator[list[Outcome]]:
        _check_batch_size(batch_size)
        pending = iter(invoices)
        while True:
            # Building the batch's charges (which pulls and validates the
            # caller's invoices) and settling them allocate the most: the
            # collector is paused for both, never while the caller runs.
            with collector.paused():
                batch = [Charge.from_invoice(invoice)
                         for invoice in itertools.islice(pending, batch_size)]
                if not batch:
                    return
                outcomes = self._settle_checked(batch, on_change="conflict",
                                                record_unpaid=True, at=at)
            yield outcomes

    def settle(
        self,
        charges: Sequence[Charge],
        *,
        on_change: OnChange = "conflict",
        record_unpaid: bool = True,
        at: dt.datetime | None = None,
    ) -> list[models.Settlement]:
        """Settle charges in one transaction.

        A key seen before with the same fingerprint is a replay (nothing is
        debited). With new content, ``on_change="conflict"`` refuses it (an
        invoice never changes) and ``"replace"`` reverses the earlier debits
        and applies anew (a re-rated CloudKitty period). ``record_unpaid=False``
        skips recording charges that no credit touched (CloudKitty projects
        without credit).
        """
        if on_change not in ("conflict", "replace"):
            raise exceptions.InvalidInput(f"on_change must be 'conflict' or 'replace', "
                                          f"not {on_change!r}")
        with collector.paused():
            for charge in charges:
                _check_charge(charge)
            outcomes = self._settle_checked(charges, on_change=on_change,
                                            record_unpaid=record_unpaid, at=at)
            return [outcome.model() for outcome in outcomes]

    def _settle_checked(
        self,
        charges: Sequence[Charge],
        *,
        on_change: OnChange,
        record_unpaid: bool,
        at: dt.datetime | None,
    ) -> list[Outcome]:
        """settle() for charges already known good: built by Charge.from_invoice from a
        validated Invoice (ledger-scale amounts of a pydantic-checked document)."""
        at = _at(at)
        with collector.paused():
            return self.database.write(
                lambda conn: _settle(conn, charges, on_change=on_change,
                                     record_unpaid=record_unpaid, at=at)
            )

    def preview(self, charge: Charge) -> models.Settlement:
        """The settlement a charge would get now, writing nothing (CloudKitty quotes)."""

        def work(conn: Connection) -> models.Settlement:
            credits = _open_credits(conn, [charge.project_id], lock=False)[charge.project_id]
            currency = store.project_currency(conn, charge.project_id)
            if currency is not None and currency != charge.currency:
                credits = []
            shares = allocation.allocate(charge.lines, [c.state() for c in credits], at=charge.at)
            return _outcome(charge, shares, replayed=False).model()

        return self.database.read(work)

    def has_credit(self, project_id: str) -> bool:
        """Cheap check: does the project hold any balance at all?"""
        table = schema.credits

        def work(conn: Connection) -> bool:
            return conn.execute(
                sa.select(table.c.id)
                .where(table.c.project_id == project_id, table.c.available > ZERO)
                .limit(1)
            ).first() is not None

        return self.database.read(work)

    def settlement_exists(self, key: str) -> bool:
        table = schema.settlements
        return self.database.read(
            lambda conn: conn.execute(
                sa.select(table.c.key).where(table.c.key == key)
            ).first() is not None
        )

    _CHARGE_STATE = sa.select(
        sa.exists().where(schema.settlements.c.key == sa.bindparam("key")),
        sa.exists().where(schema.credits.c.project_id == sa.bindparam("project_id"),
                          schema.credits.c.available > ZERO),
        sa.select(schema.projects.c.currency)
        .where(schema.projects.c.id == sa.bindparam("project_id"))
        .scalar_subquery(),
    )

    _LATEST_BELOW = (
        sa.select(schema.settlements.c.key)
        .where(schema.settlements.c.key > sa.bindparam("low"),
               schema.settlements.c.key < sa.bindparam("high"),
               schema.settlements.c.key != sa.bindparam("key"))
        .order_by(schema.settlements.c.key.desc())
        .limit(1)
    )

    def charge_state(
        self, key: str, project_id: str, *, latest_between: tuple[str, str] | None = None
    ) -> ChargeState:
        """What a host needs before settling, in one read transaction.

        ``settlement_exists(key)``, ``has_credit(project_id)``,
        ``project_currency(project_id)`` in one statement (CloudKitty asks for
        every period of every scope) and, for a key not recorded of a project
        with credit and given ``(low, high)``, the greatest other key strictly
        between them (an index lookup): the last period a new one might
        overlap. A project without credit settles nothing: no second statement.
        """
        values = {"key": key, "project_id": project_id}

        def work(conn: Connection) -> ChargeState:
            recorded, funded, currency = conn.execute(self._CHARGE_STATE, values).one()
            others: tuple[str, ...] = ()
            if latest_between is not None and funded and not recorded:
                low, high = latest_between
                others = tuple(conn.execute(
                    self._LATEST_BELOW, {"low": low, "high": high, "key": key}
                ).scalars())
            return ChargeState(bool(recorded), bool(funded), currency, others)

        return self.database.read(work)

    # -- expiry and audit --------------------------------------------------

    def expire(
        self,
        *,
        at: dt.datetime | None = None,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> ExpirySummary:
        """Lapse unpaid orders and record the balance lost by credits past their end."""
        at = _at(at)
        _check_batch_size(batch_size)
        summary = ExpirySummary(at=at)
        orders = schema.orders
        summary.orders_lapsed = self.database.write(
            lambda conn: conn.execute(
                orders.update()
                .where(orders.c.status == "pending", orders.c.expires_at <= at)
                .values(status="expired")
            ).rowcount
        )
        table = schema.credits
        while True:
            def work(conn: Connection) -> tuple[int, int, dict[str, Decimal]]:
                ids = list(
                    conn.execute(
                        sa.select(table.c.id)
                        .where(
                            table.c.valid_until <= at,
                            table.c.available > ZERO,
                            table.c.voided_at.is_(None),
                        )
                        .order_by(table.c.id)
                        .limit(batch_size)
                    ).scalars()
                )
                credits = store.credits_by_id(conn, ids)
                entries = []
                # Counted here, added to the summary once committed: a retried
                # attempt must not count twice.
                lost: dict[str, Decimal] = {}
                for credit in credits.values():
                    amount = credit.available
                    if amount <= ZERO or credit.voided_at is not None:
                        # A concurrent expiry job (or a void) took it while we
                        # waited for its row lock: nothing is left to expire.
                        continue
                    credit.expired += amount
                    credit.available = ZERO
                    credit.dirty = True
                    until = models.isoformat(credit.valid_until or at)
                    entries.append(
                        store.Entry(credit.id, "expiry", amount, note=f"valid until {until}")
                    )
                    lost[credit.currency] = lost.get(credit.currency, ZERO) + amount
                store.write_balances(conn, credits.values())
                store.insert_entries(conn, entries, at=at)
                return len(ids), len(entries), lost

            selected, done, lost = self.database.write(work)
            if not selected:
                break
            for currency, amount in lost.items():
                summary.amount_expired[currency] = (
                    summary.amount_expired.get(currency, ZERO) + amount
                )
            summary.credits_expired += done
            if progress:
                progress(done)
        LOG.info("expiry at %s: %d credits expired, %d orders lapsed",
                 models.isoformat(at), summary.credits_expired, summary.orders_lapsed)
        return summary

    def audit(self) -> AuditReport:
        """Check every invariant of the ledger (see docs/operations.md).

        One snapshot (REPEATABLE READ): writers may keep committing while it
        runs without making it see half of their work.
        """
        return self.database.read(_audit, isolation_level="REPEATABLE READ")

    def project_currency(self, project_id: str) -> str | None:
        """The project's currency, fixed at its first credit or order (None: not yet).

        For hosts whose charges carry no currency (CloudKitty rated data).
        """
        return self.database.read(lambda conn: store.project_currency(conn, project_id))


# -- settlement internals -------------------------------------------------------


_RECORDED = (
    sa.select(schema.settlements.c.key, schema.settlements.c.fingerprint,
              schema.settlements.c.allocations, schema.settlements.c.revision,
              schema.settlements.c.project_id, schema.settlements.c.currency,
              schema.settlements.c.total, schema.settlements.c.credit_applied,
              schema.settlements.c.amount_due, schema.settlements.c.invoice_id)
    .where(schema.settlements.c.key.in_(sa.bindparam("keys", expanding=True)))
    .order_by(schema.settlements.c.key)
)
_RECORDED_LOCKED = _RECORDED.with_for_update()


_LEGACY = sa.select(
    schema.settlements.c.key, schema.settlements.c.project_id, schema.settlements.c.invoice_id
).where(schema.settlements.c.key.in_(sa.bindparam("keys", expanding=True)))


def _legacy_keys(conn: Connection, charges: Sequence[Charge]) -> Sequence[Charge]:
    """Invoices of projects whose id holds "/", under the key an earlier version gave them.

    Before :func:`invoice_key` escaped it, such an invoice was keyed with the
    project's "/" as is; one settled then is found under that key (when the
    row is that project's and invoice's), so that replaying it debits nothing.
    """
    old = {
        f"invoice/{c.project_id}/{c.invoice_id}": c for c in charges
        if "/" in c.project_id and c.key == invoice_key(c.project_id, c.invoice_id)
    }
    if not old:
        return charges
    moved: dict[str, str] = {}
    for row in conn.execute(_LEGACY, {"keys": sorted(old)}):
        charge = old[row.key]
        if (row.project_id, row.invoice_id) == (charge.project_id, charge.invoice_id):
            moved[charge.key] = row.key
    return [replace(c, key=moved[c.key]) if c.key in moved else c for c in charges]


def _settle(
    conn: Connection,
    charges: Sequence[Charge],
    *,
    on_change: OnChange,
    record_unpaid: bool,
    at: dt.datetime,
) -> list[Outcome]:
    table = schema.settlements
    charges = _legacy_keys(conn, charges)
    keys = sorted({c.key for c in charges})
    recorded: dict[str, Any] = {}
    # Built once (module level): only the keys change from call to call.
    # Locked off SQLite, so that two re-ratings of one period cannot both
    # reverse the same recorded revision: the second waits, then reads the
    # first one's revision (SQLite already holds the write lock).
    query = _RECORDED if conn.dialect.name == "sqlite" else _RECORDED_LOCKED
    for chunk in _chunks(keys, 500):
        for found in conn.execute(query, {"keys": list(chunk)}):
            recorded[found.key] = found

    project_ids = {c.project_id for c in charges}
    credits_by_project = _open_credits(conn, project_ids, lock=True)
    # A credit is in its project's currency (fixed at the project's first
    # credit or order): the projects table is read only for projects without
    # an open credit, which saves a statement per online settlement.
    currencies = {pid: rows[0].currency for pid, rows in credits_by_project.items() if rows}
    if len(currencies) < len(project_ids):
        currencies.update(store.project_currencies(conn, project_ids - currencies.keys()))
    # Reversals may touch credits that no longer hold a balance: load them too.
    reversed_ids = {
        int(a[1]) for c in charges
        if c.key in recorded and recorded[c.key].fingerprint != c.fingerprint
        for a in json.loads(recorded[c.key].allocations)
    }
    credit_index: dict[int, store.CreditRow] = {
        credit.id: credit for rows in credits_by_project.values() for credit in rows
    }
    missing = reversed_ids - credit_index.keys()
    if missing:
        for credit in store.credits_by_id(conn, missing).values():
            credit_index[credit.id] = credit
            if credit.voided_at is None:
                credits_by_project.setdefault(credit.project_id, []).append(credit)

    results: list[Outcome] = []
    entries: list[store.Entry] = []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    done: dict[str, tuple[str, Outcome]] = {}

    for charge in charges:
        previous = done.get(charge.key)
        if previous is not None:
            if previous[0] != charge.fingerprint:
                raise exceptions.SettlementConflict(
                    f"invoice {charge.invoice_id} of project {charge.project_id} appears "
                    "twice with different content"
                )
            results.append(previous[1]._replace(replayed=True))
            continue
        row = recorded.get(charge.key)
        revision = 0
        if row is not None:
            if row.project_id != charge.project_id or row.invoice_id != charge.invoice_id:
                # Only a key written by an earlier version can be another
                # pair's (see invoice_key): never a replay of someone else's.
                raise exceptions.SettlementConflict(
                    f"invoice {charge.invoice_id} of project {charge.project_id}: its "
                    f"settlement key is recorded for invoice {row.invoice_id} of project "
                    f"{row.project_id}"
                )
            if row.fingerprint == charge.fingerprint:
                settlement = _recorded_outcome(row)
                results.append(settlement)
                done[charge.key] = (charge.fingerprint, settlement)
                continue
            if on_change == "conflict":
                raise exceptions.SettlementConflict(
                    f"invoice {charge.invoice_id} of project {charge.project_id} was already "
                    "settled with different content"
                )
            revision = row.revision
            entries.extend(_reverse(row, charge, credit_index))

        currency = currencies.get(charge.project_id)
        if currency is not None and currency != charge.currency:
            raise exceptions.CurrencyMismatch(
                f"invoice {charge.invoice_id} is in {charge.currency} but project "
                f"{charge.project_id} bills in {currency}: credit is never converted"
            )
        credits = [c for c in credits_by_project.get(charge.project_id, ()) if c.available > ZERO]
        shares = allocation.allocate(charge.lines, [c.state() for c in credits], at=charge.at)
        for share in shares:
            credit = credit_index[share.credit_id]
            credit.available -= share.amount
            credit.used += share.amount
            credit.dirty = True
            entries.append(store.Entry(share.credit_id, "debit", share.amount,
                                       settlement_key=charge.key, line_id=share.line_id))
        settlement = _outcome(charge, shares, replayed=False)
        done[charge.key] = (charge.fingerprint, settlement)
        results.append(settlement)
        if row is None and not shares and not record_unpaid:
            continue
        values = {
            "key": charge.key,
            "project_id": charge.project_id,
            "invoice_id": charge.invoice_id,
            "currency": charge.currency,
            "total": settlement.total,
            "credit_applied": settlement.credit_applied,
            "amount_due": settlement.amount_due,
            "fingerprint": charge.fingerprint,
            "allocations": json.dumps(
                [[s.line_id, s.credit_id, s.kind, str(s.amount)] for s in shares]
            ),
            "revision": revision + 1,
            "settled_at": charge.at,
            "updated_at": at,
        }
        if row is None:
            inserts.append({**values, "created_at": at})
        else:
            updates.append({**values, "b_key": charge.key})

    store.write_balances(conn, credit_index.values())
    store.insert_entries(conn, entries, at=at)
    if inserts:
        _insert_settlements(conn, inserts)
    if updates:
        conn.execute(
            table.update()
            .where(table.c.key == sa.bindparam("b_key"))
            .values({k: sa.bindparam(k) for k in updates[0] if k not in ("b_key", "key")}),
            updates,
        )
    return results


_INSERT_SETTLEMENT = schema.settlements.insert()
_SETTLEMENT_COLUMNS = (
    "key", "project_id", "invoice_id", "currency", "total", "credit_applied", "amount_due",
    "fingerprint", "allocations", "revision", "settled_at", "created_at", "updated_at",
)


def _insert_settlements(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany on the driver; each distinct time is converted once."""
    table = schema.settlements
    money_out = store.driver_value(conn, table.c.total)
    time_out = store.driver_value(conn, table.c.settled_at)
    times: dict[dt.datetime, Any] = {}

    def moment(value: dt.datetime) -> Any:
        found = times.get(value)
        if found is None:
            found = times[value] = time_out(value)
        return found

    store.executemany(conn, _INSERT_SETTLEMENT, _SETTLEMENT_COLUMNS, [
        (r["key"], r["project_id"], r["invoice_id"], r["currency"], money_out(r["total"]),
         money_out(r["credit_applied"]), money_out(r["amount_due"]), r["fingerprint"],
         r["allocations"], r["revision"], moment(r["settled_at"]), moment(r["created_at"]),
         moment(r["updated_at"]))
        for r in rows
    ])


def _reverse(
    row: Any, charge: Charge, credit_index: dict[int, store.CreditRow]
) -> list[store.Entry]:
    """Give back what the recorded revision of a settlement debited."""
    entries = []
    for line_id, credit_id, _kind, amount_text in json.loads(row.allocations):
        amount = Decimal(amount_text)
        credit = credit_index[int(credit_id)]
        credit.used -= amount
        credit.available += amount
        credit.dirty = True
        entries.append(store.Entry(credit.id, "reversal", amount, note="re-rated",
                                   settlement_key=charge.key, line_id=line_id))
        if credit.voided_at is not None:
            # A voided credit stays empty: what comes back is voided at once.
            credit.available -= amount
            credit.voided += amount
            entries.append(
                store.Entry(credit.id, "void", amount, note="reversal on a voided credit")
            )
    return entries


def _outcome(charge: Charge, shares: Sequence[allocation.Share], *, replayed: bool) -> Outcome:
    total = sum((line.amount for line in charge.lines), ZERO)
    applied = sum((share.amount for share in shares), ZERO)
    return Outcome(charge.invoice_id, charge.project_id, charge.currency, total, applied,
                   total - applied, shares, replayed)


def _recorded_outcome(row: Any) -> Outcome:
    return Outcome(
        row.invoice_id, row.project_id, row.currency, row.total, row.credit_applied,
        row.amount_due,
        [
            allocation.Share(line_id, int(credit_id), kind, Decimal(amount))
            for line_id, credit_id, kind, amount in json.loads(row.allocations)
        ],
        True,
    )


def _open_credits(
    conn: Connection, project_ids: Iterable[str], *, lock: bool
) -> dict[str, list[store.CreditRow]]:
    if lock:
        return store.lock_open_credits(conn, project_ids)
    ids = sorted(set(project_ids))
    table = schema.credits
    found: dict[str, list[store.CreditRow]] = {pid: [] for pid in ids}
    rows = conn.execute(
        sa.select(table).where(
            table.c.project_id.in_(ids), table.c.available > ZERO, table.c.voided_at.is_(None)
        )
    )
    for row in rows:
        found[row.project_id].append(store._credit_row(row))
    return found


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- audit ---------------------------------------------------------------------


def _audit(conn: Connection) -> AuditReport:
    report = AuditReport()
    sums: dict[int, dict[str, Decimal]] = {}
    by_key: dict[str, Decimal] = {}
    entries = schema.ledger_entries
    count = 0
    for row in conn.execute(
        sa.select(entries.c.credit_id, entries.c.type, entries.c.amount, entries.c.settlement_key)
    ).yield_per(10000):
        count += 1
        per = sums.setdefault(row.credit_id, {})
        per[row.type] = per.get(row.type, ZERO) + row.amount
        if row.settlement_key is not None and row.type in ("debit", "reversal"):
            sign = row.amount if row.type == "debit" else -row.amount
            by_key[row.settlement_key] = by_key.get(row.settlement_key, ZERO) + sign
    report.checked["ledger_entries"] = count

    credits = schema.credits
    count = 0
    for row in conn.execute(sa.select(credits)).yield_per(10000):
        count += 1
        figures = {
            "total": row.total, "used": row.used, "expired": row.expired,
            "voided": row.voided, "available": row.available,
        }
        for name, value in figures.items():
            if value < ZERO:
                report.violations.append(f"credit {row.id}: {name} is negative ({value})")
        if row.total != row.used + row.expired + row.voided + row.available:
            report.violations.append(
                f"credit {row.id}: total {row.total} != used {row.used} + expired "
                f"{row.expired} + voided {row.voided} + available {row.available}"
            )
        per = sums.get(row.id, {})
        from_entries = {
            "total": per.get("grant", ZERO),
            "used": per.get("debit", ZERO) - per.get("reversal", ZERO),
            "expired": per.get("expiry", ZERO),
            "voided": per.get("void", ZERO),
        }
        for name, value in from_entries.items():
            if figures[name] != value:
                report.violations.append(
                    f"credit {row.id}: {name} is {figures[name]} but its ledger entries "
                    f"sum to {value}"
                )
        if row.voided_at is not None and row.available != ZERO:
            report.violations.append(f"credit {row.id}: voided but still available")
    report.checked["credits"] = count

    settlements = schema.settlements
    count = 0
    for row in conn.execute(sa.select(settlements)).yield_per(10000):
        count += 1
        applied = sum((Decimal(a[3]) for a in json.loads(row.allocations)), ZERO)
        if row.credit_applied + row.amount_due != row.total:
            report.violations.append(f"settlement {row.key}: applied + due != total")
        if applied != row.credit_applied:
            report.violations.append(
                f"settlement {row.key}: allocations sum to {applied}, "
                f"credit_applied is {row.credit_applied}"
            )
        if by_key.get(row.key, ZERO) != row.credit_applied:
            report.violations.append(
                f"settlement {row.key}: net debits in the ledger are "
                f"{by_key.get(row.key, ZERO)}, credit_applied is {row.credit_applied}"
            )
    report.checked["settlements"] = count
    orphan = set(by_key) - {
        r.key for r in conn.execute(sa.select(settlements.c.key))
    }
    for key in sorted(orphan):
        if by_key[key] != ZERO:
            report.violations.append(f"debits for {key} have no settlement")

    orders = schema.orders
    count = 0
    grants = {
        r.id: r for r in conn.execute(
            sa.select(credits.c.id, credits.c.total, credits.c.kind, credits.c.source)
            .where(credits.c.kind == "purchased")
        )
    }
    for row in conn.execute(sa.select(orders)).yield_per(10000):
        count += 1
        if row.status == "paid":
            credit = grants.get(row.credit_id)
            if credit is None:
                report.violations.append(f"order {row.id}: paid but no credit")
            elif credit.total != row.amount or credit.source != row.id:
                report.violations.append(f"order {row.id}: credit {credit.id} does not match")
        elif row.credit_id is not None:
            report.violations.append(f"order {row.id}: {row.status} but has a credit")
    report.checked["orders"] = count
    return report


# -- small helpers ---------------------------------------------------------------


# Validity (up to 120 months), order lapses and voucher days (up to 100
# years) are added to the operation's time: far enough from year 9999.
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


def _at(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return now()
    if not isinstance(at, dt.datetime):
        raise exceptions.InvalidInput(f"invalid time {at!r}: expected a datetime")
    try:
        moment = models.utc(at)
    except ValueError as error:
        raise exceptions.InvalidInput(f"invalid time: {error}") from None
    if moment >= _LATEST:
        raise exceptions.InvalidInput(f"invalid time {models.isoformat(moment)}: "
                                      f"after {models.isoformat(_LATEST)}")
    return moment


def _project_id(value: Any) -> str:
    if not isinstance(value, str) or not models._ID_RE.fullmatch(value):
        raise exceptions.InvalidInput(
            f"invalid project id {value!r}: 1-255 letters, digits and ._:@/-"
        )
    return value


def _credit_id(value: Any) -> int:
    try:
        ident = int(str(value), 10)
    except ValueError:
        raise exceptions.InvalidInput(f"invalid credit id {value!r}: a positive integer") from None
    if ident <= 0 or ident >= 2**63:
        raise exceptions.InvalidInput(f"invalid credit id {value!r}: a positive integer")
    return ident


# How far behind the ledger's own times another node's clock may be (a
# payment provider's webhook, a host on another machine).
_CLOCK_SKEW = dt.timedelta(minutes=5)


def _not_before(at: dt.datetime, moment: dt.datetime, what: str) -> dt.datetime:
    """``at``, or ``moment`` when ``at`` is earlier by no more than clock skew.

    A back-dated time before the thing existed would make a credit valid
    before its payment, and pay invoices issued before it was bought: refused.
    A few minutes earlier is another node's clock, not a mistake; refusing it
    would fail a payment webhook on every retry.
    """
    if at >= moment:
        return at
    if moment - at <= _CLOCK_SKEW:
        return moment
    raise exceptions.InvalidInput(
        f"{what} at {models.isoformat(moment)}: --at {models.isoformat(at)} is earlier"
    )


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise exceptions.InvalidInput(f"batch_size must be at least 1, not {batch_size!r}")


def _check_charge(charge: Charge) -> None:
    """A host's charge is checked like an invoice: nothing malformed reaches the ledger."""
    _project_id(charge.project_id)
    money.check_currency(charge.currency)
    if not isinstance(charge.key, str) or not 0 < len(charge.key) <= 600:
        raise exceptions.InvalidInput(f"invalid settlement key {charge.key!r}")
    if not isinstance(charge.invoice_id, str) or not 0 < len(charge.invoice_id) <= 255:
        raise exceptions.InvalidInput(f"invalid invoice id {charge.invoice_id!r}")
    if not isinstance(charge.at, dt.datetime) or charge.at.tzinfo is None:
        raise exceptions.InvalidInput(
            f"charge {charge.key}: settlement time must be an aware datetime, not {charge.at!r}"
        )
    for line in charge.lines:
        # The ledger's columns are 255 characters: longer text would be a
        # driver error on PostgreSQL and MariaDB (SQLite would store it).
        for what, text in (("line id", line.id), ("product", line.product)):
            if not isinstance(text, str) or not 0 < len(text) <= 255:
                raise exceptions.InvalidInput(f"charge {charge.key}: invalid {what} {text!r}")
        if not money.is_ledger_amount(line.amount):
            field = f"charge {charge.key} line {line.id} amount"
            if type(line.amount) is not Decimal:
                # parse_amount would take "10" or 10, and the allocation then fail untyped.
                raise exceptions.InvalidAmount(
                    f"{field} must be a Decimal, not {type(line.amount).__name__}"
                )
            money.parse_amount(line.amount, allow_zero=True, field=field)
    if money.add(*(line.amount for line in charge.lines)) >= money.MAX_AMOUNT:
        raise exceptions.InvalidAmount(f"charge {charge.key}: the total is too large")


def _state_of(row: Any) -> allocation.CreditState:
    return allocation.CreditState(
        id=row.id, kind=row.kind, available=row.available, valid_from=row.valid_from,
        valid_until=row.valid_until, created_at=row.created_at,
    )


def _get_order(conn: Connection, order_id: Any, *, lock: bool = False) -> Any:
    if not isinstance(order_id, str) or not order_id or len(order_id) > 36:
        raise exceptions.OrderNotFound(f"no order {order_id!r}")
    query = sa.select(schema.orders).where(schema.orders.c.id == order_id)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise exceptions.OrderNotFound(f"no order {order_id!r}")
    return row


def _order_model(row: Any, *, at: dt.datetime | None = None) -> models.Order:
    status = row.status
    if status == "pending" and at is not None and at >= row.expires_at:
        status = "expired"  # lapsed, even before the expiry job records it
    return models.Order.model_construct(
        id=row.id, project_id=row.project_id, amount=row.amount, currency=row.currency,
        status=status, created_at=row.created_at, expires_at=row.expires_at,
        paid_at=row.paid_at, payment_url=row.payment_url, credit_id=row.credit_id,
    )


def _read_credit_row(conn: Connection, credit_id: int) -> Any:
    return conn.execute(sa.select(schema.credits).where(schema.credits.c.id == credit_id)).one()


def _read_credit(conn: Connection, credit_id: int, *, at: dt.datetime) -> models.Credit:
    return store.credit_model(_read_credit_row(conn, credit_id), at=at)


# The voucher path's statements, built once: building a Core statement (and
# its cache key) per call cost more than running it on SQLite.
_ACTIVATIONS = schema.voucher_activations
_ATTEMPTS = schema.voucher_attempts
_ACTIVATION = sa.select(_ACTIVATIONS).where(
    _ACTIVATIONS.c.project_id == sa.bindparam("project_id"),
    _ACTIVATIONS.c.code == sa.bindparam("code"),
)
_ACTIVATION_LOCKED = _ACTIVATION.with_for_update()
_ACTIVATION_STATUS = sa.select(_ACTIVATIONS.c.status).where(
    _ACTIVATIONS.c.project_id == sa.bindparam("project_id"),
    _ACTIVATIONS.c.code == sa.bindparam("code"),
)
_RECORD_INTENT = _ACTIVATIONS.insert().values(
    project_id=sa.bindparam("project_id"), code=sa.bindparam("code"),
    idempotency_key=sa.bindparam("key"), status="pending",
    created_at=sa.bindparam("at"), updated_at=sa.bindparam("at"),
)
_DROP_INTENT = _ACTIVATIONS.delete().where(
    _ACTIVATIONS.c.idempotency_key == sa.bindparam("key"), _ACTIVATIONS.c.status == "pending"
)
_FORGET_EMPTY_PROJECT = schema.projects.delete().where(
    schema.projects.c.id == sa.bindparam("project_id"),
    ~sa.exists().where(schema.credits.c.project_id == schema.projects.c.id),
    ~sa.exists().where(schema.orders.c.project_id == schema.projects.c.id),
    ~sa.exists().where(_ACTIVATIONS.c.project_id == schema.projects.c.id),
)
_GRANT_ACTIVATION = _ACTIVATIONS.update().where(
    _ACTIVATIONS.c.id == sa.bindparam("activation")
).values(status="granted", credit_id=sa.bindparam("credit_id"),
         redemption_id=sa.bindparam("redemption_id"), updated_at=sa.bindparam("at"))
_PROJECT_CURRENCY = sa.select(schema.projects.c.currency).where(
    schema.projects.c.id == sa.bindparam("project_id")
)
_PROJECT_CURRENCY_LOCKED = _PROJECT_CURRENCY.with_for_update()
_VOUCHER_CREDIT = sa.select(schema.credits).where(schema.credits.c.id == sa.bindparam("credit_id"))
_RESERVE_ATTEMPT = _ATTEMPTS.insert().values(
    project_id=sa.bindparam("project_id"), succeeded=False, reason="in progress",
    created_at=sa.bindparam("at"),
)
_FAILED_ATTEMPT = _ATTEMPTS.insert().values(
    project_id=sa.bindparam("project_id"), succeeded=False, reason=sa.bindparam("reason"),
    created_at=sa.bindparam("at"),
)
_CLOSE_ATTEMPT = _ATTEMPTS.update().where(_ATTEMPTS.c.id == sa.bindparam("attempt")).values(
    succeeded=sa.bindparam("succeeded"), reason=sa.bindparam("reason")
)
_DROP_ATTEMPT = _ATTEMPTS.delete().where(_ATTEMPTS.c.id == sa.bindparam("attempt"))
# Failed and running tries of a project since a moment. No upper bound on
# created_at: a concurrent try may have taken a later timestamp and committed
# before this count.
_FAILURES = sa.select(sa.func.count()).select_from(_ATTEMPTS).where(
    _ATTEMPTS.c.project_id == sa.bindparam("project_id"),
    _ATTEMPTS.c.succeeded.is_(False),
    _ATTEMPTS.c.created_at > sa.bindparam("since"),
)


def _activation(conn: Connection, project_id: str, code: str, *, lock: bool = False) -> Any:
    query = _ACTIVATION_LOCKED if lock and conn.dialect.name != "sqlite" else _ACTIVATION
    return conn.execute(query, {"project_id": project_id, "code": code}).one_or_none()


def _failures(conn: Connection, project_id: str, since: dt.datetime) -> int:
    return int(conn.execute(_FAILURES, {"project_id": project_id, "since": since}).scalar_one())


def _voucher_credit(conn: Connection, credit_id: int, *, at: dt.datetime) -> models.Credit:
    row = conn.execute(_VOUCHER_CREDIT, {"credit_id": credit_id}).one()
    return store.credit_model(row, at=at)


def _record_intent(
    conn: Connection, *, project_id: str, code: str, key: str, currency: str, at: dt.datetime
) -> None:
    """The activation's intent, written before the catalog is asked to redeem.

    It fixes the project's currency, as an order does: were it fixed only by
    the grant, an order in another currency made meanwhile would leave the
    grant impossible after the catalog had redeemed the code.
    """
    if _activation(conn, project_id, code) is not None:
        return
    # Locked off SQLite until the intent commits: a refused activation's
    # _forget_empty_project must see this intent, not delete the row under it.
    query = _PROJECT_CURRENCY if conn.dialect.name == "sqlite" else _PROJECT_CURRENCY_LOCKED
    found = conn.execute(query, {"project_id": project_id}).scalar_one_or_none()
    if found is None:
        store.ensure_project(conn, project_id, currency, at=at)
    elif found != currency:
        raise exceptions.CurrencyMismatch(
            f"this voucher is in {currency} but project {project_id} bills in {found}"
        )
    conn.execute(_RECORD_INTENT, {"project_id": project_id, "code": code, "key": key, "at": at})


def _same_code(found: str, code: str) -> bool:
    # The catalog's spelling may differ in case or blanks; anything that is
    # not a code at all is simply not the same code.
    return isinstance(found, str) and found.strip().upper() == code


def _check_voucher_usable(voucher: models.Voucher, code: str, at: dt.datetime) -> None:
    masked = catalog_base.mask_code(code)
    if not _same_code(voucher.code, code):
        raise catalog_base.CatalogProtocolError(
            f"the catalog answered for another code than {masked}"
        )
    if voucher.status == "revoked":
        raise catalog_base.VoucherUnavailable(f"voucher {masked} is revoked")
    if voucher.valid_from is not None and at < voucher.valid_from:
        raise catalog_base.VoucherUnavailable(
            f"voucher {masked} is not valid before {models.isoformat(voucher.valid_from)}"
        )
    if voucher.status == "expired" or (
        voucher.valid_until is not None and at >= voucher.valid_until
    ):
        raise catalog_base.VoucherUnavailable(f"voucher {masked} has expired")
    if voucher.status == "exhausted" or (
        voucher.max_redemptions is not None and voucher.redemptions >= voucher.max_redemptions
    ):
        raise catalog_base.VoucherAlreadyRedeemed(f"voucher {masked} is used up")


def _check_redemption(
    redemption: models.Redemption, *, code: str, project_id: str, currency: str | None = None
) -> None:
    """A redemption we may grant: ours, for something, in the voucher's currency."""
    masked = catalog_base.mask_code(code)
    if not _same_code(redemption.code, code):
        raise catalog_base.CatalogProtocolError(
            f"the catalog redeemed another code than {masked}"
        )
    if redemption.project_id != project_id:
        raise catalog_base.CatalogProtocolError(
            f"the catalog redeemed {masked} for another project"
        )
    if redemption.amount <= ZERO:
        raise catalog_base.CatalogProtocolError(f"the catalog redeemed {masked} for nothing")
    if currency is not None and redemption.currency != currency:
        raise catalog_base.CatalogProtocolError(
            f"the catalog redeemed {masked} in {redemption.currency}, "
            f"but the voucher is in {currency}"
        )


def load_catalog(conf: cfg.ConfigOpts, *, database: Database) -> catalog_base.VoucherCatalog:
    """The configured voucher catalog driver, loaded through stevedore."""
    name = conf.voucher_catalog.driver
    try:
        manager: stevedore_driver.DriverManager[Any] = stevedore_driver.DriverManager(
            namespace=catalog_base.NAMESPACE,
            name=name,
            invoke_on_load=True,
            invoke_kwds={"conf": conf, "database": database,
                         "redemptions": catalog_redemptions.CatalogRedemptions(database)},
        )
    except stevedore_exception.NoMatches:
        raise exceptions.ConfigError(
            f"[voucher_catalog] driver {name!r} is not installed"
        ) from None
    return cast(catalog_base.VoucherCatalog, manager.driver)
