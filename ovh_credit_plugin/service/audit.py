"""The audit: every invariant of the ledger, checked on one snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

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
    _check_credits(conn, report, sums)
    _check_settlements(conn, report, by_key)
    _check_orders(conn, report)
    return report


def _entry_sums(
    conn: Connection, report: AuditReport
) -> tuple[dict[int, dict[str, Decimal]], dict[str, Decimal]]:
    """Per credit, the sum of each entry type; per settlement key, the net debits."""
    sums: dict[int, dict[str, Decimal]] = {}
    by_key: dict[str, Decimal] = {}
    count = 0
    for row in credits.every_entry(conn):
        count += 1
        per = sums.setdefault(row.credit_id, {})
        per[row.type] = per.get(row.type, ZERO) + row.amount
        if row.settlement_key is not None and row.type in ("debit", "reversal"):
            sign = row.amount if row.type == "debit" else -row.amount
            by_key[row.settlement_key] = by_key.get(row.settlement_key, ZERO) + sign
    report.checked["ledger_entries"] = count
    return sums, by_key


def _check_credits(
    conn: Connection, report: AuditReport, sums: dict[int, dict[str, Decimal]]
) -> None:
    count = 0
    for row in credits.every_row(conn):
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


def _check_settlements(conn: Connection, report: AuditReport, by_key: dict[str, Decimal]) -> None:
    count = 0
    for row in settlements.every_row(conn):
        count += 1
        applied = sum((amount for *_, amount in settlements.decode_allocations(row.allocations)),
                      ZERO)
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
    # Settlement rows are never deleted: entries carrying a key without one
    # lost their record, even when their debits and reversals net to zero
    # (a period re-rated to nothing).
    for key in sorted(set(by_key) - settlements.keys(conn)):
        report.violations.append(f"debits for {key} have no settlement")


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
