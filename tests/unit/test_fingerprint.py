"""Settlement fingerprints are recorded in ledgers: their text must never change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.service import fingerprint


def test_a_fingerprint_is_the_one_earlier_versions_recorded() -> None:
    # Computed by the first released implementation (json.dumps with compact
    # separators, then SHA-256). A different value would make every replay of
    # an invoice settled before an upgrade look like a conflicting invoice.
    lines = [
        Line("l-1", "compute", Decimal("12.500000")),
        Line("l/2", 'stockage é "x"', Decimal("0.000001")),
    ]
    at = dt.datetime(2026, 1, 31, 23, tzinfo=dt.timezone.utc)
    assert fingerprint("EUR", at, lines) == (
        "c4d0bfe09fd9f2a9696c9ff88f1f8baec8d44d1797a1d1745529d62e862b828c"
    )


def test_the_fingerprint_changes_with_any_line_field() -> None:
    at = dt.datetime(2026, 1, 31, 23, tzinfo=dt.timezone.utc)
    base = [Line("l-1", "compute", Decimal("12.500000"))]
    variants = [
        [Line("l-2", "compute", Decimal("12.500000"))],
        [Line("l-1", "storage", Decimal("12.500000"))],
        [Line("l-1", "compute", Decimal("12.500001"))],
    ]
    seen = {fingerprint("EUR", at, base)}
    for lines in variants:
        seen.add(fingerprint("EUR", at, lines))
    seen.add(fingerprint("USD", at, base))
    seen.add(fingerprint("EUR", at + dt.timedelta(seconds=1), base))
    assert len(seen) == 6
