"""Purchased credit validity: calendar months, clamped at month end."""

from __future__ import annotations

import datetime as dt

import pytest

from ovh_credit_plugin.service import add_months

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        ((2026, 1, 31), 13, (2027, 2, 28)),
        ((2027, 1, 31), 13, (2028, 2, 29)),  # leap year
        ((2026, 3, 31), 1, (2026, 4, 30)),
        ((2026, 1, 15), 13, (2027, 2, 15)),
        ((2026, 12, 31), 1, (2027, 1, 31)),
        ((2026, 11, 30), 3, (2027, 2, 28)),
        ((2026, 5, 31), 120, (2036, 5, 31)),
    ],
)
def test_add_months(start: tuple[int, int, int], months: int, end: tuple[int, int, int]) -> None:
    moment = dt.datetime(*start, 13, 45, 7, 123456, tzinfo=UTC)
    assert add_months(moment, months) == dt.datetime(*end, 13, 45, 7, 123456, tzinfo=UTC)
