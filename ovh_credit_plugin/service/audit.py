"""The audit: every invariant of the ledger, checked on one snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from ovh_credit_plugin import money
from ovh_credit_plugin.ledger import credits, orders, settlements
from ovh_credit_plugin.ledger.database import Database

ZERO = money.ZERO


@dataclass
class AuditReport:
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def audit(database: Database) -> AuditReport:
    """Check every invariant of the ledger (see docs/operations.md).

    One snapshot (REPEATABLE READ): writers may keep committing while it
    runs without making it see half of their work.
    """
    return database.read(_audit, isolation_level="REPEATABLE READ")


def _audit(conn: Connection) -> AuditReport:
    report = AuditReport()
    sums, by_key = _entry_sums(conn, report)
    owners = _check_credits(conn, report, sums)
    _check_settlements(conn, report, by_key, owners)
    _check_orders(conn, report)
    return report


@dataclass
class _KeyDebits:
    """Net debits (debits - reversals) per settlement key, and per credit of each key.

    Most keys' entries are on one credit: only its id is kept, and a map per
    credit only for keys spread over several, so that a ledger of millions of
    settlements costs little more than one sum per key.
    """

    net: dict[str, Decimal] = field(default_factory=dict)
    sole: dict[str, int] = field(default_factory=dict)
    split: dict[str, dict[int, Decimal]] = field(default_factory=dict)

    def add(self, key: str, credit_id: int, amount: Decimal) -> None:
        before = self.net.get(key, ZERO)
        self.net[key] = before + amount
        first = self.sole.setdefault(key, credit_id)
        per = self.split.get(key)
        if per is None:
            if first == credit_id:
                return
            # Everything so far was on the first credit.
            per = self.split[key] = {first: before}
        per[credit_id] = per.get(credit_id, ZERO) + amount

    def by_credit(self, key: str) -> dict[int, Decimal]:
        per = self.split.get(key)
        if per is not None:
            return per
        first = self.sole.get(key)
        return {} if first is None else {first: self.net[key]}


def _entry_sums(
    conn: Connection, report: AuditReport
) -> tuple[dict[int, dict[str, Decimal]], _KeyDebits]:
    """Per credit, the sum of each entry type; per settlement key, the net debits."""
    sums: dict[int, dict[str, Decimal]] = {}
    by_key = _KeyDebits()
    granted: set[int] = set()
    grants_again: dict[int, int] = {}
    unkeyed: dict[int, int] = {}
    count = 0
    for row in credits.every_entry(conn):
        count += 1
        per = sums.setdefault(row.credit_id, {})
        per[row.type] = per.get(row.type, ZERO) + row.amount
        if row.type == "grant":
            # A credit is granted once; a second grant is money from nothing.
            if row.credit_id in granted:
                grants_again[row.credit_id] = grants_again.get(row.credit_id, 1) + 1
            granted.add(row.credit_id)
        elif row.type in ("debit", "reversal"):
            if row.settlement_key is None:
                # Every debit pays a settlement: one without is credit spent on nothing.
                unkeyed[row.credit_id] = unkeyed.get(row.credit_id, 0) + 1
                continue
            sign = row.amount if row.type == "debit" else -row.amount
            by_key.add(row.settlement_key, row.credit_id, sign)
    report.checked["ledger_entries"] = count
    for credit_id, grants in sorted(grants_again.items()):
        report.violations.append(f"credit {credit_id}: {grants} grant entries, one expected")
    for credit_id, entries in sorted(unkeyed.items()):
        report.violations.append(
            f"credit {credit_id}: {entries} debit or reversal entries without a settlement key")
    return sums, by_key


def _check_credits(
    conn: Connection, report: AuditReport, sums: dict[int, dict[str, Decimal]]
) -> dict[int, tuple[str, str]]:
    """Checks every credit; returns each credit's (project, currency), by id."""
    owners: dict[int, tuple[str, str]] = {}
    # One tuple per (project, currency), shared by its credits.
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    count = 0
    for row in credits.every_row(conn):
        count += 1
        pair = (row.project_id, row.currency)
        owners[row.id] = pairs.setdefault(pair, pair)
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
    # A credit row deleted by hand (the sqlite3 shell enforces no foreign key).
    for credit_id in sorted(sums.keys() - owners.keys()):
        report.violations.append(
            f"credit {credit_id}: has ledger entries, but there is no such credit")
    return owners


def _check_settlements(conn: Connection, report: AuditReport, by_key: _KeyDebits,
                       owners: dict[int, tuple[str, str]]) -> None:
    count = 0
    for row in settlements.every_row(conn):
        count += 1
        allocated: dict[int, Decimal] = {}
        for _line, credit_id, _kind, amount in settlements.decode_allocations(row.allocations):
            allocated[credit_id] = allocated.get(credit_id, ZERO) + amount
        applied = sum(allocated.values(), ZERO)
        if row.credit_applied + row.amount_due != row.total:
            report.violations.append(f"settlement {row.key}: applied + due != total")
        if applied != row.credit_applied:
            report.violations.append(
                f"settlement {row.key}: allocations sum to {applied}, "
                f"credit_applied is {row.credit_applied}"
            )
        net = by_key.net.get(row.key, ZERO)
        if net != row.credit_applied:
            report.violations.append(
                f"settlement {row.key}: net debits in the ledger are "
                f"{net}, credit_applied is {row.credit_applied}"
            )
        _check_allocated_credits(report, row, allocated, by_key.by_credit(row.key), owners)
    report.checked["settlements"] = count
    # Settlement rows are never deleted: entries carrying a key without one
    # lost their record, even when their debits and reversals net to zero
    # (a period re-rated to nothing).
    for key in sorted(set(by_key.net) - settlements.keys(conn)):
        report.violations.append(f"debits for {key} have no settlement")


def _check_allocated_credits(report: AuditReport, row: Any, allocated: dict[int, Decimal],
                             debited: dict[int, Decimal],
                             owners: dict[int, tuple[str, str]]) -> None:
    """Each credit a settlement says paid it was debited that much for it, exists, and
    is the settlement's project's, in its currency: totals that agree can hide debits
    moved to another credit, or another project's."""
    for credit_id in sorted(allocated.keys() | debited.keys()):
        said, debits = allocated.get(credit_id, ZERO), debited.get(credit_id, ZERO)
        if said != debits:
            report.violations.append(
                f"settlement {row.key}: its allocations give credit {credit_id} {said}, "
                f"its net debits of that credit in the ledger are {debits}")
        if not (said or debits):
            # Debited then given back in full (a period re-rated in another
            # currency, or onto other credits): none of its money is here.
            continue
        owner = owners.get(credit_id)
        if owner is None:
            if said:
                report.violations.append(
                    f"settlement {row.key}: allocated to credit {credit_id}, "
                    "which does not exist")
        elif owner != (row.project_id, row.currency):
            report.violations.append(
                f"settlement {row.key}: credit {credit_id} is project {owner[0]}'s in "
                f"{owner[1]}, the settlement project {row.project_id}'s in {row.currency}")


def _check_orders(conn: Connection, report: AuditReport) -> None:
    count = 0
    grants = credits.purchased(conn)
    paid_for: set[int] = set()
    for row in orders.every_row(conn):
        count += 1
        if row.status == "paid":
            credit = grants.get(row.credit_id)
            if credit is None:
                report.violations.append(f"order {row.id}: paid but no credit")
                continue
            paid_for.add(credit.id)
            if (credit.total, credit.source, credit.project_id, credit.currency) != (
                    row.amount, row.id, row.project_id, row.currency):
                report.violations.append(f"order {row.id}: credit {credit.id} does not match")
        elif row.credit_id is not None:
            report.violations.append(f"order {row.id}: {row.status} but has a credit")
    # Purchased credit exists only once its order is paid: one that no paid
    # order names (its order missing, not paid, or naming another) was never bought.
    for credit_id in sorted(grants.keys() - paid_for):
        credit = grants[credit_id]
        report.violations.append(
            f"credit {credit_id}: purchased, but no paid order {credit.source} has it")
    report.checked["orders"] = count
