"""The OVH-shaped view's money: OVH's order.Price, whose value is a JSON number written
exactly (api/ovh.py)."""

from __future__ import annotations

import decimal
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovh_credit_plugin.api import ovh


def test_values_are_written_at_the_currencys_decimals() -> None:
    assert ovh.dumps(ovh.price(Decimal("0.1"), "EUR", rounding=decimal.ROUND_DOWN)) == (
        '{"currencyCode": "EUR", "text": "0.10 \\u20ac", "value": 0.10}')
    assert ovh.price(Decimal("1500"), "JPY", rounding=decimal.ROUND_DOWN)["text"] == "1500 JPY"
    assert ovh.price(Decimal("1.2345"), "KWD", rounding=decimal.ROUND_DOWN)["value"] == (
        Decimal("1.234"))
    assert ovh.price(Decimal("0.004"), "EUR", rounding=decimal.ROUND_UP)["value"] == (
        Decimal("0.01"))


def test_no_exponent_and_no_float() -> None:
    assert ovh.dumps({"v": Decimal("1E+3")}) == '{"v": 1000}'
    assert ovh.dumps([Decimal("0.10"), None, "x", 3, True]) == '[0.10, null, "x", 3, true]'
    with pytest.raises(TypeError):
        ovh.dumps({"v": 0.1})
    with pytest.raises(ValueError):
        ovh.dumps(Decimal("NaN"))


@given(st.decimals(min_value=0, max_value=Decimal("1e15"), places=6))
def test_a_rounded_value_reads_back_exactly(amount: Decimal) -> None:
    shown = ovh.price(amount, "EUR", rounding=decimal.ROUND_DOWN)
    read = json.loads(ovh.dumps(shown), parse_float=Decimal, parse_int=Decimal)
    assert read["value"] == shown["value"] <= amount < shown["value"] + Decimal("0.01")
    assert read["text"] == f"{shown['value']} €"
