"""Credits in OVHcloud's ``cloud.Credit`` shape, for tools written against OVH's API.

``GET /cloud/project/{serviceName}/credit`` (a list of ids, OVH's ``long[]``)
and ``.../credit/{id}`` (a ``cloud.Credit``) are served under
``{base}/ovh``. The differences with OVH's schema are in docs/api.md
("OVH-shaped view"): money is OVH's ``order.Price`` ``{currencyCode, text,
value}``, whose ``value`` is a JSON number (a double in OVH's schema); here it
is the amount at the currency's ISO 4217 decimals, written in decimal
notation by :func:`dumps` and never through a binary float.
"""

from __future__ import annotations

import decimal
import json
from decimal import Decimal
from typing import Any

from ovh_credit_plugin import contracts, models, money

#: The symbol ``text`` writes after the amount; other currencies are written with
#: their ISO code ("1500 JPY").
SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$", "CAD": "$", "AUD": "$", "SGD": "$",
           "PLN": "zł", "CZK": "Kč"}


def price(amount: Decimal, currency: str, *, rounding: str) -> dict[str, Any]:
    """OVH's ``order.Price``: ``amount`` at the currency's decimals, rounded so."""
    places = money.held_places(currency)
    value = amount.quantize(Decimal(1).scaleb(-places), rounding=rounding,
                            context=decimal.Context(prec=60))
    return {"currencyCode": currency, "text": f"{value:f} {SYMBOLS.get(currency, currency)}",
            "value": value}


def credit(shown: models.Credit) -> dict[str, Any]:
    """A credit as OVH's ``cloud.Credit``.

    ``total_credit`` is exact (a grant is at the currency's decimals);
    ``available_credit`` is rounded down (never shown as more than can pay)
    and ``used_credit`` up (never shown as less than was consumed): with
    nothing expired or voided, the two still add up to the total.
    """
    currency = shown.currency
    return {
        "id": shown.id,
        "description": shown.description,
        "voucher": shown.source if shown.kind == "voucher" else None,
        # The purchase order that bought it: our counterpart of OVH's bill.
        "bill": shown.source if shown.kind == "purchased" else None,
        "products": list(shown.products),
        "total_credit": price(shown.total, currency, rounding=decimal.ROUND_HALF_EVEN),
        "used_credit": price(shown.used, currency, rounding=decimal.ROUND_UP),
        "available_credit": price(shown.available, currency, rounding=decimal.ROUND_DOWN),
        "validity": {
            "from": contracts.isoformat(shown.valid_from),
            "to": None if shown.valid_until is None else contracts.isoformat(shown.valid_until),
        },
    }


def dumps(value: Any) -> str:
    """JSON text in which a Decimal is a number written as is (``12.50``, ``0.10``, ``1500``).

    The standard encoder knows no Decimal, and going through float would
    write ``0.1`` for ``Decimal("0.10")`` at best and ``1234567.8899999999``
    at worst.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is no JSON number")
        return f"{value:f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key))}: {dumps(item)}"
                               for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    if isinstance(value, float):
        raise TypeError("a float has no place in a money document")
    return json.dumps(value)
