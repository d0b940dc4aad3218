"""Settling charges: invoices one by one or by the million, a host's own charges, replays."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, collector, exceptions, models, money
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import credits, settlements
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import charges as charges_module
from ovh_credit_plugin.service import inputs, settlement_txn
from ovh_credit_plugin.service.charges import Charge, invoice_key
from ovh_credit_plugin.service.settlement_txn import OnChange

LOG = logging.getLogger(__name__)


class ChargeState(NamedTuple):
    """What :meth:`CreditService.charge_state` found before settling a charge."""

    recorded: bool
    funded: bool
    currency: str | None
    others: tuple[str, ...] = ()


def settle_checked(
    database: Database,
    times: inputs.Times,
    charges: Sequence[Charge],
    *,
    on_change: OnChange,
    record_unpaid: bool,
    at: dt.datetime | None,
) -> list[models.SettlementResult]:
    """Settle charges already known good in one transaction: built by
    Charge.from_invoice from a validated Invoice, or checked by :func:`settle`."""
    at = times.change(at)
    with collector.paused():
        return database.write(
            lambda conn: settlement_txn.settle(conn, charges, on_change=on_change,
                                               record_unpaid=record_unpaid, at=at)
        )


def settle(
    database: Database,
    times: inputs.Times,
    charges: Sequence[Charge],
    *,
    on_change: OnChange,
    record_unpaid: bool,
    at: dt.datetime | None,
) -> list[models.Settlement]:
    """A host's own charges, checked like invoices, settled in one transaction
    (:meth:`CreditService.settle`, which holds the defaults)."""
    if on_change not in ("conflict", "replace"):
        raise exceptions.InvalidInput(_("on_change must be 'conflict' or 'replace', not "
                                        "%(on_change)r")
                                      % {"on_change": on_change})
    with collector.paused():
        for charge in charges:
            charges_module.check(charge)
        results = settle_checked(database, times, charges, on_change=on_change,
                                 record_unpaid=record_unpaid, at=at)
        return [result.model() for result in results]


def settle_batches(
    database: Database,
    times: inputs.Times,
    invoices: Iterable[models.Invoice | models.InvoiceRefusal],
    *,
    batch_size: int,
    at: dt.datetime | None,
) -> Iterator[list[models.SettlementResult | models.InvoiceRefusal]]:
    """Month-end runs: one transaction per batch; yields each batch's settlements once
    committed, a refused invoice's :class:`~models.InvoiceRefusal` in its place (one
    given in ``invoices``, for an invoice the caller could not read, passes through)."""
    inputs.batch_size(batch_size)
    if at is not None:
        times.change(at)  # refused before the first batch, not after some committed
    pending = iter(invoices)
    while True:
        # Building the batch's charges (which pulls and validates the
        # caller's invoices) and settling them allocate the most: the
        # collector is paused for both, never while the caller runs.
        with collector.paused():
            items = list(itertools.islice(pending, batch_size))
            if not items:
                return
            charges = [Charge.from_invoice(item) for item in items
                       if not isinstance(item, models.InvoiceRefusal)]
            settled = iter(_settle_each(database, times, charges, at=at) if charges else ())
            results = [item if isinstance(item, models.InvoiceRefusal) else next(settled)
                       for item in items]
            # Freed here, by reference counting: held while the results are
            # yielded, the batch's invoices and charges (tens of thousands of
            # objects) were what the collector's first pass after the pause
            # scanned, to find nothing (docs/performance.md, fourth pass).
            del items, charges, settled
        yield results


def _settle_each(
    database: Database, times: inputs.Times, charges: Sequence[Charge], *,
    at: dt.datetime | None,
) -> list[models.SettlementResult | models.InvoiceRefusal]:
    moment = times.change(at)
    results = database.write(lambda conn: settlement_txn.settle_each(conn, charges, at=moment))
    log_unpaid(results)
    return results


def log_unpaid(results: Iterable[models.SettlementResult | models.InvoiceRefusal]) -> None:
    """Warn of the invoices just settled that credit could not pay as the ledger says
    it should: refused (its id settled before with other content), or in another
    currency than the project's credit. Replays say nothing new."""
    for result in results:
        if isinstance(result, models.InvoiceRefusal):
            # Its error names the invoice and the project.
            LOG.warning("invoice refused, nothing of it settled: %s", result.error)
        elif result.note == "currency_mismatch" and not result.replayed:
            LOG.warning("invoice %s of project %s: no credit applied, %s %s due in full: "
                        "the project's credit is in another currency (never converted)",
                        result.invoice_id, result.project_id,
                        money.to_str(result.amount_due, result.currency), result.currency)


def charge_state(
    database: Database, key: str, project_id: str, *,
    latest_between: tuple[str, str] | None = None,
) -> ChargeState:
    """What a host needs before settling, in one statement (CloudKitty asks for every
    period of every scope): whether ``key`` is recorded, whether the project holds any
    balance, its currency, and, given ``(low, high)``, for a key not recorded, the
    greatest other key strictly between them (an index lookup): the last period a new
    one might overlap, with or without credit left.
    """
    def work(conn: Connection) -> ChargeState:
        recorded, funded, currency, latest = settlements.charge_state(
            conn, key, project_id, between=latest_between)
        others = (latest,) if latest is not None and not recorded else ()
        return ChargeState(recorded, funded, currency, others)

    return database.read(work)


# -- reading what was recorded ---------------------------------------------------------


def show(database: Database, key: str) -> models.SettlementRecord:
    """The settlement recorded under ``key``, each allocation with why its credit paid."""
    key = inputs.settlement_key(key)

    def work(conn: Connection) -> models.SettlementRecord:
        rows = settlements.recorded(conn, [key])
        if not rows:
            raise exceptions.SettlementNotFound(_("no settlement %(key)s") % {"key": key})
        return _record(conn, rows[0])

    return database.read(work)


def show_invoice(database: Database, project_id: str, invoice_id: str
                 ) -> models.SettlementRecord:
    """The settlement of a project's invoice (settled by ``settle`` or an invoice host)."""
    project_id = inputs.project_id(project_id)
    invoice_id = inputs.invoice_id(invoice_id)
    # Under its key, or the key an earlier version gave it (settlement_txn.legacy_keys);
    # the row must be this pair's, as a replay requires.
    keys = sorted({invoice_key(project_id, invoice_id), f"invoice/{project_id}/{invoice_id}"})

    def work(conn: Connection) -> models.SettlementRecord:
        rows = [row for row in settlements.recorded(conn, keys)
                if (row.project_id, row.invoice_id) == (project_id, invoice_id)]
        if not rows:
            raise exceptions.SettlementNotFound(
                _("no settlement of invoice %(invoice)s of project %(project)s")
                % {"invoice": invoice_id, "project": project_id})
        return _record(conn, rows[0])

    return database.read(work)


def _record(conn: Connection, row: Any) -> models.SettlementRecord:
    explained = settlements.decode_explained(row.allocations)
    # A credit's order fields never change: read now, they are what the order read then.
    fields = credits.order_fields(conn, {credit_id for (_l, credit_id, _k, _a), _w in explained})
    return models.SettlementRecord.trusted(
        key=row.key, invoice_id=row.invoice_id, project_id=row.project_id,
        currency=row.currency, total=row.total, credit_applied=row.credit_applied,
        amount_due=row.amount_due,
        allocations=[
            models.ExplainedAllocation.trusted(
                line_id=line_id, credit_id=credit_id, kind=kind, amount=amount,
                explanation=None if why is None else _explanation(why, fields[credit_id]))
            for (line_id, credit_id, kind, amount), why in explained
        ],
        note=row.note, settled_at=row.settled_at, revision=row.revision,
    )


def _explanation(why: settlements.StoredWhy, credit: Any) -> models.Explanation:
    place, skipped = why
    key = allocation.order_key(credit)
    return models.Explanation.trusted(
        place=place,
        order_key=models.OrderKey.trusted(kind=key.kind, valid_until=key.valid_until,
                                          created_at=key.created_at, credit_id=key.id),
        reason=allocation.Why(place, tuple(allocation.Skip(*skip) for skip in skipped)).reason,
        skipped=[models.SkippedCredit.trusted(credit_id=credit_id, cause=cause,
                                              products=list(products))
                 for credit_id, cause, products in skipped],
    )
