"""CreditService: the table of contents of what the service does.

Each method delegates in one line to the capability module that holds the
operation; hosts, the CLI and the API call these and nothing below them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.catalog import base as catalog_base
from ovh_credit_plugin.conf import DEFAULT_SQLITE_CONNECTION, ledger_connection
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import projects
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import events, inputs
from ovh_credit_plugin.service.settings import Settings

if TYPE_CHECKING:
    from ovh_credit_plugin import models
    from ovh_credit_plugin.contracts import CreditResult, OrderResult
    from ovh_credit_plugin.ledger import catalog_redemptions
    from ovh_credit_plugin.service import (
        audit,
        charges,
        credits,
        expiry,
        expiry_warnings,
        forecast,
        orders,
        settlement,
    )
    from ovh_credit_plugin.service.charges import Charge
    from ovh_credit_plugin.service.settlement_txn import OnChange
    from ovh_credit_plugin.service.voucher_throttle import Unblock
    from ovh_credit_plugin.service.vouchers import VoucherPreview, Vouchers
else:
    # Each capability is imported by its first call: a command line run
    # uses one (issue 15, decision 3), a long-running host pays once.
    from ovh_credit_plugin import lazy

    # pydantic's models too: orders and credits are read and written as
    # plain results (contracts.py), and the models built from them for hosts.
    models = lazy.module("ovh_credit_plugin.models")
    catalog_redemptions = lazy.module("ovh_credit_plugin.ledger.catalog_redemptions")
    audit = lazy.module("ovh_credit_plugin.service.audit")
    charges = lazy.module("ovh_credit_plugin.service.charges")
    credits = lazy.module("ovh_credit_plugin.service.credits")
    expiry = lazy.module("ovh_credit_plugin.service.expiry")
    expiry_warnings = lazy.module("ovh_credit_plugin.service.expiry_warnings")
    forecast = lazy.module("ovh_credit_plugin.service.forecast")
    orders = lazy.module("ovh_credit_plugin.service.orders")
    settlement = lazy.module("ovh_credit_plugin.service.settlement")

CatalogSource = catalog_base.VoucherCatalog | Callable[[], catalog_base.VoucherCatalog] | None


class CreditService:
    """Prepaid cloud credit and vouchers over one ledger database: the only writer."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings | None = None,
        catalog: CatalogSource = None,
        clock: inputs.Clock = inputs.now,
        notifier: events.Notifier | None = None,
    ) -> None:
        self.database = database
        self.settings = settings or Settings.defaults()
        self._catalog = catalog
        # Sends what committed writes changed (oslo.messaging); silent without a conf.
        self.notifier = notifier or events.Notifier()
        self.times = inputs.Times(
            clock=clock,
            skew=lambda: dt.timedelta(seconds=self.settings.clock_skew_allowance),
        )

    @cached_property
    def vouchers(self) -> Vouchers:
        """Voucher activation and its throttle (service/vouchers.py), built on first use."""
        from ovh_credit_plugin.service.voucher_throttle import Throttle
        from ovh_credit_plugin.service.vouchers import Vouchers

        return Vouchers(
            self.database, catalog=lambda: self.catalog,
            throttle=Throttle(self.database, settings=lambda: self.settings), times=self.times,
            notifier=self.notifier, default_currency=lambda: self.settings.default_currency,
        )

    @classmethod
    def from_conf(
        cls, conf: cfg.ConfigOpts, *, connection: str | None = None,
        clock: inputs.Clock = inputs.now,
    ) -> CreditService:
        """Build from the host's options (``register_opts`` must have run).

        ``clock`` is the wall clock but for rehearsals and tests
        (``ovh-credit --now``).
        """
        settings = Settings.from_conf(conf)
        database = ledger_database(conf, connection=connection)
        return cls(database=database, settings=settings, clock=clock,
                   catalog=lambda: load_catalog(conf, database=database),
                   notifier=events.Notifier(conf))

    @property
    def catalog(self) -> catalog_base.VoucherCatalog:
        """The voucher catalog, loaded on first use (a host may never activate a voucher)."""
        if self._catalog is None:
            raise exceptions.ConfigError(_("no voucher catalog is configured"))
        if not isinstance(self._catalog, catalog_base.VoucherCatalog):
            self._catalog = self._catalog()
        return self._catalog

    @catalog.setter
    def catalog(self, catalog: CatalogSource) -> None:
        self._catalog = catalog

    def close(self) -> None:
        if isinstance(self._catalog, catalog_base.VoucherCatalog):
            self._catalog.close()
        self.notifier.close()
        self.database.dispose()

    # -- orders (service/orders.py) ----------------------------------------------

    def create_order(self, project_id: str, amount: Any, *, currency: str | None = None,
                     at: dt.datetime | None = None) -> models.Order:
        return self.create_order_result(project_id, amount, currency=currency, at=at).model()

    def create_order_result(self, project_id: str, amount: Any, *, currency: str | None = None,
                            at: dt.datetime | None = None) -> OrderResult:
        """:meth:`create_order`, the order as plain values: no pydantic model is built or
        imported (``ovh-credit order create``, issue 15)."""
        return orders.create(self.database, self.settings, self.times, project_id, amount,
                             notifier=self.notifier, currency=currency, at=at)

    def pay_order(self, order_id: str, *, amount: Any = None, currency: str | None = None,
                  at: dt.datetime | None = None) -> models.Order:
        return orders.pay(self.database, self.settings, self.times, order_id,
                          notifier=self.notifier, amount=amount, currency=currency,
                          at=at).model()

    def cancel_order(self, order_id: str, *, at: dt.datetime | None = None) -> models.Order:
        return orders.cancel(self.database, self.times, order_id, at=at).model()

    def create_order_once(self, project_id: str, amount: Any, *, currency: str | None = None,
                          idempotency_key: str | None = None, at: dt.datetime | None = None
                          ) -> tuple[models.Order, bool]:
        order, created = orders.create_once(
            self.database, self.settings, self.times, project_id, amount,
            notifier=self.notifier, currency=currency, idempotency_key=idempotency_key, at=at)
        return order.model(), created

    def list_orders(self, project_id: str, *, at: dt.datetime | None = None) -> list[models.Order]:
        return [order.model()
                for order in orders.list_of(self.database, self.times, project_id, at=at)]

    def list_orders_page(self, project_id: str, *, status: str | None = None, limit: int = 100,
                         marker: str | None = None, at: dt.datetime | None = None
                         ) -> tuple[list[models.Order], bool]:
        found, more = orders.page(self.database, self.times, project_id, status=status,
                                  limit=limit, marker=marker, at=at)
        return [order.model() for order in found], more

    def show_order(self, order_id: str, *, at: dt.datetime | None = None) -> models.Order:
        return orders.show(self.database, self.times, order_id, at=at).model()

    # -- credits (service/credits.py) --------------------------------------------

    def list_credits(self, project_id: str, *,
                     at: dt.datetime | None = None) -> list[models.Credit]:
        return [credit.model() for credit in self.list_credit_results(project_id, at=at)]

    def list_credit_results(self, project_id: str, *,
                            at: dt.datetime | None = None) -> list[CreditResult]:
        """:meth:`list_credits`, the credits as plain values: no pydantic model is built or
        imported (``ovh-credit credit list``, issue 15)."""
        return credits.list_of(self.database, self.times, project_id, at=at)

    def list_credits_page(self, project_id: str, *, status: str | None = None, limit: int = 100,
                          marker: str | int | None = None, at: dt.datetime | None = None
                          ) -> tuple[list[models.Credit], bool]:
        found, more = self.list_credit_results_page(project_id, status=status, limit=limit,
                                                    marker=marker, at=at)
        return [credit.model() for credit in found], more

    def list_credit_results_page(
        self, project_id: str, *, status: str | None = None, limit: int = 100,
        marker: str | int | None = None, at: dt.datetime | None = None,
    ) -> tuple[list[CreditResult], bool]:
        """:meth:`list_credits_page`, the credits as plain values: the REST API's ``GET
        credits`` writes their JSON without building a model of each (issue 15)."""
        return credits.page(self.database, self.times, project_id, status=status,
                            limit=limit, marker=marker, at=at)

    def show_credit(self, credit_id: Any, *, at: dt.datetime | None = None
                    ) -> tuple[models.Credit, list[models.LedgerEntry]]:
        credit, entries = credits.show(self.database, self.times, credit_id, at=at)
        return credit.model(), entries

    def void_credit(self, credit_id: Any, *, reason: str,
                    at: dt.datetime | None = None) -> models.Credit:
        return credits.void(self.database, self.times, credit_id, reason=reason,
                            notifier=self.notifier, at=at).model()

    # -- forecast (service/forecast.py) ------------------------------------------

    def forecast(self, project_id: str, *, at: dt.datetime | None = None) -> models.Forecast:
        return forecast.forecast_of(self.database, self.settings, self.times, project_id, at=at)

    # -- vouchers (service/vouchers.py) ------------------------------------------

    def check_voucher(self, code: str, *, project_id: str | None = None,
                      at: dt.datetime | None = None) -> VoucherPreview:
        return self.vouchers.check(code, project_id=project_id, at=at)

    def activate_voucher(self, project_id: str, code: str, *,
                         at: dt.datetime | None = None) -> models.Credit:
        return self.vouchers.activate(project_id, code, at=at)[0]

    def activate_voucher_outcome(self, project_id: str, code: str, *,
                                 at: dt.datetime | None = None) -> tuple[models.Credit, bool]:
        """(credit, created): False for a code the project had already activated."""
        return self.vouchers.activate(project_id, code, at=at)

    def pending_activations(self) -> list[dict[str, Any]]:
        return self.vouchers.pending()

    def unblock_vouchers(self, project_id: str, *, reason: str, operator: str,
                         at: dt.datetime | None = None) -> Unblock:
        return self.vouchers.unblock(project_id, reason=reason, operator=operator, at=at)

    def voucher_attempts(self, project_id: str, *, everything: bool = False,
                         at: dt.datetime | None = None) -> list[dict[str, Any]]:
        return self.vouchers.attempts(project_id, everything=everything, at=at)

    # -- settlement (service/settlement.py) --------------------------------------

    def settle_invoice(self, invoice: models.Invoice, *,
                       at: dt.datetime | None = None) -> models.Settlement:
        """Apply credit to an invoice; idempotent on (project, invoice id)."""
        return self._settle_one(invoice, at=at).model()

    def settle_invoice_json(self, invoice: models.Invoice, *,
                            at: dt.datetime | None = None) -> dict[str, object]:
        """:meth:`settle_invoice`, the settlement as its JSON-ready dict (what hosts send
        on), written without a model of it: the online path's share of issue 15."""
        return self._settle_one(invoice, at=at).json_ready()

    def _settle_one(self, invoice: models.Invoice, *,
                    at: dt.datetime | None) -> models.SettlementResult:
        results = settlement.settle_checked(self.database, self.times,
                                            [charges.Charge.from_invoice(invoice)],
                                            on_change="conflict", record_unpaid=True, at=at)
        settlement.log_unpaid(results)
        return results[0]

    def settle_invoices(
        self, invoices: Iterable[models.Invoice | models.InvoiceRefusal], *,
        batch_size: int = 1000, at: dt.datetime | None = None,
    ) -> Iterator[models.Settlement | models.InvoiceRefusal]:
        """Month-end runs: one transaction per batch; yields settlements as batches commit.

        One result per invoice, in input order. An invoice that is refused
        (its id settled before with other content) is a
        :class:`models.InvoiceRefusal` in its place, and the run goes on: the
        rest of its batch and the batches after it are settled. A refusal
        given in ``invoices`` (an invoice the caller could not read) is
        passed through in its place, so that a host's output follows its input.
        """
        for results in settlement.settle_batches(self.database, self.times, invoices,
                                                 batch_size=batch_size, at=at):
            yield from (result if isinstance(result, models.InvoiceRefusal) else result.model()
                        for result in results)

    def settle_invoices_json(
        self, invoices: Iterable[models.Invoice | models.InvoiceRefusal], *,
        batch_size: int = 1000, at: dt.datetime | None = None,
    ) -> Iterator[dict[str, object]]:
        """:meth:`settle_invoices`, each result as its JSON-ready dict (what hosts send on):
        a settlement's, or a refusal's ``{"invoice", "project_id", "error"}``."""
        for results in settlement.settle_batches(self.database, self.times, invoices,
                                                 batch_size=batch_size, at=at):
            yield from (result.json_ready() for result in results)

    def settle(self, charges: Sequence[Charge], *, on_change: OnChange = "conflict",
               record_unpaid: bool = True,
               at: dt.datetime | None = None) -> list[models.Settlement]:
        """Settle a host's charges in one transaction.

        A key seen before with the same fingerprint is a replay (nothing is
        debited). With new content, ``on_change="conflict"`` refuses it (an
        invoice never changes) and ``"replace"`` reverses the earlier debits
        and applies anew (a re-rated CloudKitty period). ``record_unpaid=False``
        skips recording charges that no credit touched (CloudKitty projects
        without credit).
        """
        return settlement.settle(self.database, self.times, charges, on_change=on_change,
                                 record_unpaid=record_unpaid, at=at)

    def charge_state(self, key: str, project_id: str, *,
                     latest_between: tuple[str, str] | None = None) -> settlement.ChargeState:
        return settlement.charge_state(self.database, key, project_id,
                                       latest_between=latest_between)

    def show_settlement(self, key: str) -> models.SettlementRecord:
        """The settlement recorded under ``key``, with why each credit paid its line."""
        return settlement.show(self.database, key)

    def show_invoice_settlement(self, project_id: str, invoice_id: str
                                ) -> models.SettlementRecord:
        return settlement.show_invoice(self.database, project_id, invoice_id)

    def project_currency(self, project_id: str) -> str | None:
        """The project's currency, fixed at its first credit or order (None: not yet).

        For hosts whose charges carry no currency (CloudKitty rated data).
        """
        return self.database.read(lambda conn: projects.currency(conn, project_id))

    # -- expiry, its warnings and audit (service/expiry.py, expiry_warnings.py, audit.py) --

    def expire(self, *, at: dt.datetime | None = None, batch_size: int = 500,
               progress: Callable[[int], None] | None = None) -> expiry.ExpirySummary:
        return expiry.expire(self.database, self.times, notifier=self.notifier, at=at,
                             batch_size=batch_size, progress=progress)

    def notify_expiring(self, *, at: dt.datetime | None = None,
                        batch_size: int = 500) -> expiry_warnings.ExpiringSummary:
        return expiry_warnings.notify_expiring(
            self.database, self.settings, self.times, notifier=self.notifier, at=at,
            batch_size=batch_size)

    def audit(self) -> audit.AuditReport:
        return audit.audit(self.database)


def ledger_database(conf: cfg.ConfigOpts, *, connection: str | None = None) -> Database:
    """The ledger named by the host's options (``register_opts`` must have run)."""
    group = conf.cloud_credit
    engine = create_engine(
        connection or ledger_connection(conf) or DEFAULT_SQLITE_CONNECTION,
        pool_size=group.pool_size,
        max_overflow=group.max_overflow,
        pool_recycle=group.pool_recycle,
        sqlite_busy_timeout=group.sqlite_busy_timeout,
    )
    return Database(engine, max_attempts=group.max_transaction_attempts)


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
            _("[voucher_catalog] driver %(name)r is not installed")
            % {"name": name}
        ) from None
    return cast(catalog_base.VoucherCatalog, manager.driver)
