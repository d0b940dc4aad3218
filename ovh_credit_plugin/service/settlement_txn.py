"""One batch of charges settled in one ledger transaction.

Reads the recorded settlements of the batch's keys and the open credits of
its projects (locked), allocates each charge in memory, then writes
balances, entries and settlements in a few executemany statements.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, exceptions, i18n, models, money
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import credits, projects, settlements
from ovh_credit_plugin.service.charges import Charge, invoice_key

ZERO = money.ZERO
OnChange = Literal["conflict", "replace"]


def state_of(credit: credits.CreditRow) -> allocation.CreditState:
    """What allocation needs to know of a locked credit."""
    return allocation.CreditState(credit.id, credit.kind, credit.available, credit.valid_from,
                                  credit.valid_until, credit.created_at, credit.products)


def legacy_keys(conn: Connection, charges: Sequence[Charge]) -> Sequence[Charge]:
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
    for row in settlements.owners(conn, sorted(old)):
        charge = old[row.key]
        if (row.project_id, row.invoice_id) == (charge.project_id, charge.invoice_id):
            moved[charge.key] = row.key
    return [replace(c, key=moved[c.key]) if c.key in moved else c for c in charges]


def settle(
    conn: Connection,
    charges: Sequence[Charge],
    *,
    on_change: OnChange,
    record_unpaid: bool,
    at: dt.datetime,
) -> list[models.SettlementResult]:
    """Settle ``charges`` on ``conn`` (one transaction); see ``CreditService.settle``.

    A refused charge raises: the caller's transaction rolls back whole.
    """
    charges = legacy_keys(conn, charges)
    batch = _Batch.load(conn, charges, on_change=on_change, record_unpaid=record_unpaid, at=at)
    results = [batch.settle(charge) for charge in charges]
    batch.write(conn)
    return results


#: What refuses one invoice of a batch, and nothing else of it (see :func:`settle_each`).
REFUSALS = (exceptions.SettlementConflict, exceptions.InvalidInput)


def settle_each(
    conn: Connection, charges: Sequence[Charge], *, at: dt.datetime
) -> list[models.SettlementResult | models.InvoiceRefusal]:
    """Settle invoices' charges on ``conn``; a refused one is reported in its place.

    The batch stays one transaction with or without refusals: every refusal
    (a conflicting replay, a key recorded for another invoice, a key
    longer than the ledger holds) is raised by
    :meth:`_Batch.settle` before it changes anything of the batch (invoices
    never change, so nothing is reversed first), so the charges around it are
    settled as if it were not there, and nothing is retried.
    """
    charges = legacy_keys(conn, charges)
    batch = _Batch.load(conn, charges, on_change="conflict", record_unpaid=True, at=at)
    results: list[models.SettlementResult | models.InvoiceRefusal] = []
    for charge in charges:
        try:
            results.append(batch.settle(charge))
        except REFUSALS as error:
            results.append(models.InvoiceRefusal(charge.invoice_id, charge.project_id,
                                                 str(error), error))
    batch.write(conn)
    return results


class _Batch:
    """What one transaction read (locked), changes in memory, then writes at once."""

    def __init__(
        self, *, recorded: dict[str, Any], by_project: dict[str, list[credits.CreditRow]],
        currencies: dict[str, str], on_change: OnChange, record_unpaid: bool, at: dt.datetime,
    ) -> None:
        self.recorded = recorded
        self.by_project = by_project
        self.currencies = currencies
        self.index = {credit.id: credit for rows in by_project.values() for credit in rows}
        self.on_change = on_change
        self.record_unpaid = record_unpaid
        self.at = at
        self.entries: list[credits.Entry] = []
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.done: dict[str, tuple[str, models.SettlementResult]] = {}

    @classmethod
    def load(
        cls, conn: Connection, charges: Sequence[Charge], *, on_change: OnChange,
        record_unpaid: bool, at: dt.datetime,
    ) -> _Batch:
        recorded = settlements.lock_recorded(conn, [c.key for c in charges])
        project_ids = {c.project_id for c in charges}
        by_project = credits.lock_open_credits(conn, project_ids)
        # A credit is in its project's currency (fixed at the project's first
        # credit or order): the projects table is read only for projects
        # without an open credit, which saves a statement per online settlement.
        currencies = {pid: rows[0].currency for pid, rows in by_project.items() if rows}
        if len(currencies) < len(project_ids):
            currencies.update(projects.currencies(conn, project_ids - currencies.keys()))
        batch = cls(recorded=recorded, by_project=by_project, currencies=currencies,
                    on_change=on_change, record_unpaid=record_unpaid, at=at)
        # Reversals may touch credits that no longer hold a balance: load them too.
        reversed_ids = {
            credit_id for c in charges
            if c.key in recorded and not c.same_as(recorded[c.key].fingerprint)
            for _line, credit_id, _kind, _amount in settlements.decode_allocations(
                recorded[c.key].allocations)
        }
        missing = reversed_ids - batch.index.keys()
        for credit in credits.credits_by_id(conn, missing).values():
            batch.index[credit.id] = credit
            if credit.voided_at is None:
                by_project.setdefault(credit.project_id, []).append(credit)
        # A project without credit whose charge is in another currency than
        # the one recorded: that currency may be released (its orders were
        # cancelled or lapsed), and then the charge is no mismatch. One
        # statement, on this rare path only.
        stale = {c.project_id for c in charges
                 if not by_project.get(c.project_id)
                 and currencies.get(c.project_id) not in (None, c.currency)}
        for project_id in stale - projects.held(conn, stale):
            del currencies[project_id]
        return batch

    def settle(self, charge: Charge) -> models.SettlementResult:
        if len(charge.key) > settlements.KEY_LENGTH:
            # An invoice's key escapes each "/" of its project id ("%2F"): valid
            # ids can make one longer than the column. PostgreSQL and MariaDB
            # would fail the whole batch at its INSERT (SQLite would store it):
            # refused here, in its place, before anything of it is changed.
            raise exceptions.InvalidInput(
                _("invoice %(invoice)s of project %(project)s cannot be settled: its "
                  "settlement key would be %(length)s characters long, the ledger holds "
                  "%(limit)s")
                % {"invoice": charge.invoice_id, "project": charge.project_id,
                   "length": i18n.count(len(charge.key)),
                   "limit": i18n.count(settlements.KEY_LENGTH)}
            )
        previous = self.done.get(charge.key)
        if previous is not None:
            # Settled earlier in this batch: a replay only of the same project's
            # invoice, as for a key recorded by an earlier batch (_same).
            self._owned(charge, previous[1])
            if previous[0] != charge.fingerprint:
                raise exceptions.SettlementConflict(
                    _("invoice %(invoice)s of project %(project)s appears twice with "
                      "different content")
                    % {"invoice": charge.invoice_id, "project": charge.project_id}
                )
            return previous[1]._replace(replayed=True)
        row = self.recorded.get(charge.key)
        if row is not None and self._same(charge, row):
            result = _recorded(row)
            self.done[charge.key] = (charge.fingerprint, result)
            return result
        currency = self.currencies.get(charge.project_id)
        if currency is not None and currency != charge.currency:
            # Credit is never converted, and the host still needs the figure:
            # settled for the whole amount due, with the reason, never an
            # error that would stop the invoices around it.
            shares: Sequence[allocation.Share] = ()
            whys: Sequence[allocation.Why] = ()
            note: models.SettlementNote | None = "currency_mismatch"
        else:
            open_credits = [state_of(c) for c in self.by_project.get(charge.project_id, ())
                            if c.available > ZERO]
            shares, whys = allocation.allocate_explained(charge.lines, open_credits,
                                                         at=charge.at)
            note = None
        for share in shares:
            self.entries.append(self.index[share.credit_id].debit(
                share.amount, settlement_key=charge.key, line_id=share.line_id))
        result = outcome(charge, shares, note=note)
        self.done[charge.key] = (charge.fingerprint, result)
        if row is not None or shares or self.record_unpaid:
            self._record(charge, result, whys, revision=row.revision if row is not None else 0,
                         new=row is None)
        return result

    @staticmethod
    def _owned(charge: Charge, row: Any) -> None:
        """Refuse ``charge`` when its key is ``row``'s, another project's or invoice's."""
        if row.project_id != charge.project_id or row.invoice_id != charge.invoice_id:
            # An invoice's key is its pair's; only a key written by an earlier
            # version (see invoice_key), or a host's own, can be another pair's:
            # never a replay of someone else's.
            raise exceptions.SettlementConflict(
                _("invoice %(invoice)s of project %(project)s: its settlement key is "
                  "recorded for invoice %(other_invoice)s of project %(other_project)s")
                % {"invoice": charge.invoice_id, "project": charge.project_id,
                   "other_invoice": row.invoice_id, "other_project": row.project_id}
            )

    def _same(self, charge: Charge, row: Any) -> bool:
        """True for a replay of ``row``; a re-rating reverses it (or is refused)."""
        self._owned(charge, row)
        if charge.same_as(row.fingerprint):
            return True
        if self.on_change == "conflict":
            raise exceptions.SettlementConflict(
                _("invoice %(invoice)s of project %(project)s was already settled with "
                  "different content")
                % {"invoice": charge.invoice_id, "project": charge.project_id}
            )
        # Reversed before the currency check below: re-rated content in
        # another currency than the credit's gets the credit back and pays
        # nothing with it (a "currency_mismatch" settlement).
        for line_id, credit_id, _kind, amount in settlements.decode_allocations(row.allocations):
            self.entries.extend(self.index[credit_id].reverse(
                amount, settlement_key=charge.key, line_id=line_id))
        return False

    def _record(
        self, charge: Charge, result: models.SettlementResult,
        whys: Sequence[allocation.Why], *, revision: int, new: bool,
    ) -> None:
        values = {
            "key": charge.key,
            "project_id": charge.project_id,
            "invoice_id": charge.invoice_id,
            "currency": charge.currency,
            "total": result.total,
            "credit_applied": result.credit_applied,
            "amount_due": result.amount_due,
            "fingerprint": charge.fingerprint,
            # Kept with the allocations: why each credit paid its line, at the
            # moment it did (the credits' balances move on afterwards).
            "allocations": settlements.encode_allocations(result.allocations, whys),
            "revision": revision + 1,
            "settled_at": charge.at,
            "updated_at": self.at,
            "note": result.note,
        }
        if new:
            self.inserts.append({**values, "created_at": self.at})
        else:
            self.updates.append(values)

    def write(self, conn: Connection) -> None:
        credits.write_balances(conn, self.index.values())
        credits.insert_entries(conn, self.entries, at=self.at)
        if self.inserts:
            settlements.insert(conn, self.inserts)
        settlements.update(conn, self.updates)


def outcome(
    charge: Charge, shares: Sequence[allocation.Share], *,
    note: models.SettlementNote | None = None,
) -> models.SettlementResult:
    """The settlement of ``charge`` paid by ``shares`` (not a replay)."""
    total = sum((line.amount for line in charge.lines), ZERO)
    applied = sum((share.amount for share in shares), ZERO)
    return models.SettlementResult(charge.invoice_id, charge.project_id, charge.currency, total,
                                   applied, total - applied, shares, False, note)


def _recorded(row: Any) -> models.SettlementResult:
    return models.SettlementResult(
        row.invoice_id, row.project_id, row.currency, row.total, row.credit_applied,
        row.amount_due,
        [allocation.Share(*stored) for stored in settlements.decode_allocations(row.allocations)],
        True, row.note,
    )
