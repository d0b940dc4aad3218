"""The contracts' parts that need no pydantic: ids, times, and orders and credits as read.

:mod:`ovh_credit_plugin.models` holds the JSON contracts (DESIGN.md section
4) as pydantic models and imports the names below that it uses (the
statuses, ``utc``, ``isoformat``, ``check_id`` and the JSON builders, so still
reachable as ``models.X``; ``ID_RE``, ``VOUCHER_CODE_RE`` and
``check_project_id`` are only here). They live here so that a path that only
reads or writes the ledger and prints JSON (``ovh-credit credit list``,
``order create``) imports neither pydantic nor the twenty
models, ~120 ms of a 0.6 s process (issue 15, decision 3).

:class:`OrderResult` and :class:`CreditResult` are an order and a credit as
the service's work produced them, with the contract's fields in the
contract's order: the facade gives hosts the pydantic :class:`models.Order`
and :class:`models.Credit` built from them (:meth:`~OrderResult.model`),
and the command line prints them straight (:meth:`~OrderResult.json_ready`),
as :class:`models.SettlementResult` does for settlements.
tests/service/test_contract_json.py holds the fields and the JSON of both to
the models'.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, NamedTuple

from ovh_credit_plugin import money
from ovh_credit_plugin.i18n import _

if TYPE_CHECKING:
    from ovh_credit_plugin import models

CreditKind = Literal["voucher", "purchased"]
CreditStatus = Literal["active", "exhausted", "expired", "voided"]
OrderStatus = Literal["pending", "paid", "cancelled", "expired"]

VOUCHER_CODE_RE = re.compile(r"[A-Z0-9-]{4,64}")
#: Project, invoice and line ids: what OpenStack and invoice hosts use, and
#: what the ledger's 255-character columns hold.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,254}")


def utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # 9999-12-31T23:30-01:00; pydantic only reports ValueErrors
        raise ValueError(_("%(time)s is out of range in UTC")
                         % {"time": value.isoformat()}) from None


def isoformat(value: dt.datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


def check_id(value: str) -> str:
    """``value`` if it is an id (a project's, an invoice's, a line's); ValueError otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"an id is a string, not {type(value).__name__}")
    if not ID_RE.fullmatch(value):
        raise ValueError(_("must be 1-255 characters: letters, digits and ._:@/-"))
    return value


check_project_id = check_id


# -- orders and credits -------------------------------------------------------------


class OrderResult(NamedTuple):
    """An order as the service's work produced it: :class:`models.Order`'s fields."""

    id: str
    project_id: str
    amount: Decimal
    currency: str
    status: OrderStatus
    created_at: dt.datetime
    expires_at: dt.datetime
    paid_at: dt.datetime | None
    payment_url: str
    credit_id: int | None

    def model(self) -> models.Order:
        from ovh_credit_plugin import models

        return models.Order.model_construct(**self._asdict())

    def json_ready(self) -> dict[str, object]:
        """Equal to ``self.model().model_dump(mode="json")``."""
        return order_json(self)


class CreditResult(NamedTuple):
    """A credit as the service's work produced it: :class:`models.Credit`'s fields."""

    id: int
    project_id: str
    kind: CreditKind
    description: str
    source: str
    currency: str
    total: Decimal
    used: Decimal
    expired: Decimal
    voided: Decimal
    available: Decimal
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    status: CreditStatus
    products: list[str]

    def model(self) -> models.Credit:
        from ovh_credit_plugin import models

        return models.Credit.model_construct(**self._asdict())

    def json_ready(self) -> dict[str, object]:
        """Equal to ``self.model().model_dump(mode="json")``."""
        return credit_json(self)


def order_json(order: OrderResult | models.Order) -> dict[str, object]:
    """The order contract's JSON (``Order.model_dump(mode="json")``), built directly.

    Without pydantic's serializer, whose schema (built on a model's first
    dump) costs a command line run 40-80 ms, and a REST answer its wrap
    serializer (issue 15).
    """
    return {
        "id": order.id, "project_id": order.project_id,
        "amount": money.to_str(order.amount, order.currency), "currency": order.currency,
        "status": order.status, "created_at": isoformat(order.created_at),
        "expires_at": isoformat(order.expires_at),
        "paid_at": None if order.paid_at is None else isoformat(order.paid_at),
        "payment_url": order.payment_url, "credit_id": order.credit_id,
    }


def credit_json(credit: CreditResult | models.Credit) -> dict[str, object]:
    """The credit contract's JSON (``Credit.model_dump(mode="json")``), built directly."""
    amount = money.formatter(credit.currency)
    return {
        "id": credit.id, "project_id": credit.project_id, "kind": credit.kind,
        "description": credit.description, "source": credit.source,
        "currency": credit.currency, "total": amount(credit.total), "used": amount(credit.used),
        "expired": amount(credit.expired), "voided": amount(credit.voided),
        "available": amount(credit.available), "valid_from": isoformat(credit.valid_from),
        "valid_until": None if credit.valid_until is None else isoformat(credit.valid_until),
        "status": credit.status, "products": list(credit.products),
    }
