"""The JSON contracts (DESIGN.md section 4), as pydantic models.

Field names here are the contract: the CLI, the hosts and the voucher
catalog all speak through these models.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, NamedTuple, Protocol, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ovh_credit_plugin import exceptions, money
from ovh_credit_plugin.contracts import (
    CreditKind,
    CreditStatus,
    OrderStatus,
    check_id,
    credit_json,
    isoformat,
    order_json,
    utc,
)
from ovh_credit_plugin.i18n import _, deferred

VoucherStatus = Literal["active", "exhausted", "expired", "revoked"]
#: Why credit could not pay a settled charge: the charge is in another
#: currency than the project's credit (credit is never converted).
SettlementNote = Literal["currency_mismatch"]
#: Why a credit paid a line: the plain consumption order, or scopes (allocation.py).
ExplanationReason = Literal["order", "scope"]
#: Why a credit ahead in the consumption order did not pay the line instead.
SkipCause = Literal["not_covered", "needed_elsewhere"]


#: pydantic's own problems, by error type, as a person reads them; the
#: placeholders are pydantic's context. A type not listed keeps pydantic's
#: English message.
_PROBLEMS: dict[str, str] = {
    "missing": deferred("this field is required"),
    "extra_forbidden": deferred("unknown field"),
    "string_type": deferred("a string is expected"),
    "int_type": deferred("an integer is expected"),
    "int_parsing": deferred("an integer is expected"),
    "int_from_float": deferred("an integer is expected"),
    "bool_type": deferred("true or false is expected"),
    "bool_parsing": deferred("true or false is expected"),
    "list_type": deferred("a list is expected"),
    "dict_type": deferred("an object is expected"),
    "model_type": deferred("an object is expected"),
    "model_attributes_type": deferred("an object is expected"),
    "decimal_type": deferred("a decimal number is expected"),
    "decimal_parsing": deferred("a decimal number is expected"),
    "datetime_type": deferred("a time is expected (ISO 8601)"),
    "datetime_parsing": deferred("a time is expected (ISO 8601)"),
    "datetime_from_date_parsing": deferred("a time is expected (ISO 8601)"),
    "timezone_aware": deferred("a time with its time zone is expected"),
    "string_too_short": deferred("at least %(min_length)s characters are expected"),
    "string_too_long": deferred("at most %(max_length)s characters are allowed"),
    "too_short": deferred("at least %(min_length)s items are expected"),
    "too_long": deferred("at most %(max_length)s items are allowed"),
    "literal_error": deferred("one of %(expected)s is expected"),
    "greater_than": deferred("a number greater than %(gt)s is expected"),
    "greater_than_equal": deferred("a number of at least %(ge)s is expected"),
    "less_than": deferred("a number less than %(lt)s is expected"),
    "less_than_equal": deferred("a number of at most %(le)s is expected"),
    "json_invalid": deferred("malformed JSON"),
}


class FirstError(NamedTuple):
    """The first problem pydantic found, in the parts every caller words its way."""

    where: str  # dotted location ("lines.0.amount"); "" for a rule across fields
    message: str  # pydantic's own message
    type: str  # pydantic's error type ("json_invalid", "missing"...)
    problem: str = ""  # the message in the reader's language (see :func:`first_error`)

    @property
    def text(self) -> str:
        """The problem, translated: our validators' own message, or pydantic's in our words."""
        return self.problem or self.message.removeprefix("Value error, ")

    def described(self) -> str:
        """``where: problem``, translatable (a lazy message in the REST API)."""
        if not self.where:
            return self.text
        return _("%(where)s: %(problem)s") % {"where": self.where, "problem": self.text}

    def __str__(self) -> str:
        return str(self.described())


def first_error(error: ValidationError) -> FirstError:
    """The first problem of a validation error: one line is what a person reads."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    cause = context.get("error")
    if first["type"] == "value_error" and isinstance(cause, BaseException):
        problem = exceptions.message_of(cause)
    elif first["type"] in _PROBLEMS:
        values = {name: (", ".join(map(str, value)) if isinstance(value, (list, tuple))
                         else str(value)) for name, value in context.items()}
        problem = _(_PROBLEMS[first["type"]])
        if "%(" in _PROBLEMS[first["type"]]:
            problem = problem % values
    else:
        problem = ""
    return FirstError(".".join(str(part) for part in first["loc"]), str(first["msg"]),
                      str(first["type"]), problem)


#: What a time given as text starts with: ISO 8601's extended date.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def iso_time(value: object) -> object:
    """A time is ISO 8601 text (or a datetime, from a Python host), never a number.

    pydantic reads a number, and a string of digits, as Unix time: an
    invoice's ``"issued_at": "20260131"`` (ISO 8601's basic format) was
    settled on 1970-08-23, when no credit is valid, and recorded so. (A
    ``BeforeValidator`` for every time read: invoices, catalogs' answers.)
    """
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    if isinstance(value, (str, bytes, bytearray, int, float, Decimal)):
        raise ValueError(_("a time is expected (ISO 8601)"))
    return value


Timestamp = Annotated[
    dt.datetime, BeforeValidator(iso_time), AfterValidator(utc),
    PlainSerializer(isoformat, return_type=str)
]
Identifier = Annotated[str, AfterValidator(check_id)]
#: A project id (an OpenStack project id, or a host's own), as every contract spells it.
ProjectId = Identifier
CurrencyCode = Annotated[str, AfterValidator(money.check_currency)]


_C = TypeVar("_C", bound="_Contract")


class _Contract(BaseModel):
    # Unknown fields in a document we read are refused rather than ignored: a
    # typo in an invoice must not silently settle something else.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)

    @classmethod
    def trusted(cls: type[_C], **values: object) -> _C:
        """An instance of values the code computed itself, every field given.

        Like ``model_construct`` (no validation), without its per-field
        bookkeeping: settlement builds allocations by the ten thousand.
        """
        instance = cls.__new__(cls)
        object.__setattr__(instance, "__dict__", values)
        object.__setattr__(instance, "__pydantic_fields_set__", set(values))
        object.__setattr__(instance, "__pydantic_extra__", None)
        object.__setattr__(instance, "__pydantic_private__", None)
        return instance


# -- Voucher catalog ---------------------------------------------------------


class Voucher(BaseModel):
    """A voucher as the catalog describes it (GET /v1/vouchers/{code})."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    code: str
    amount: money.Amount
    currency: CurrencyCode
    status: VoucherStatus
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None = None
    products: list[str] = Field(default_factory=list)
    max_redemptions: Annotated[int, Field(ge=1)] | None = None
    redemptions: Annotated[int, Field(ge=0)] = 0
    description: str = ""

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(_("a voucher amount must be positive"))
        return value

    @model_validator(mode="after")
    def _currency_places(self) -> Voucher:
        money.parse_amount(self.amount, places=money.currency_places(self.currency))
        _check_period(self.valid_from, self.valid_until)
        return self


class Redemption(BaseModel):
    """The catalog's record of one redemption (POST .../redemptions)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str = Field(min_length=1, max_length=255)
    code: str
    project_id: str
    amount: money.Amount
    currency: CurrencyCode
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None = None
    products: list[str] = Field(default_factory=list)
    description: str = ""
    redeemed_at: Timestamp

    @model_validator(mode="after")
    def _amount(self) -> Redemption:
        money.parse_amount(self.amount, places=money.currency_places(self.currency))
        _check_period(self.valid_from, self.valid_until)
        return self


def _check_period(valid_from: dt.datetime | None, valid_until: dt.datetime | None) -> None:
    # A credit that ends before it starts can pay nothing: granting it would
    # burn the code for no credit.
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValueError(_("valid_until must be later than valid_from"))


# -- Invoices and settlements -------------------------------------------------


class InvoiceLine(_Contract):
    id: Identifier
    product: Annotated[str, Field(min_length=1, max_length=255)]
    amount: money.Amount
    description: str | None = None


class Invoice(_Contract):
    id: Identifier
    project_id: ProjectId
    currency: CurrencyCode
    issued_at: Timestamp
    lines: list[InvoiceLine]

    @model_validator(mode="after")
    def _lines(self) -> Invoice:
        seen: set[str] = set()
        for line in self.lines:
            if line.id in seen:
                raise ValueError(_("line id %(id)r appears twice")
                                 % {"id": line.id})
            seen.add(line.id)
        # Each line is below the largest amount; so must their sum, which the
        # settlement records.
        if money.add(*(line.amount for line in self.lines)) >= money.MAX_AMOUNT:
            raise ValueError(_("the lines add up to more than the largest amount"))
        return self


class _Priced(_Contract):
    """A contract object whose amounts are shown with their currency's decimals.

    ``12.5`` EUR is written ``"12.50"``; sub-cent ledger amounts keep their
    digits (``"0.000123"``).
    """

    # A class constant, not a pydantic private attribute: private attributes
    # are deep-copied into every instance, settlements by the thousand.
    _amounts: ClassVar[tuple[str, ...]] = ()
    # Optional fields the JSON has only when they are set.
    _omitted_when_none: ClassVar[tuple[str, ...]] = ()
    # Lists of objects with amounts of their own: list field -> the amounts of each item.
    _nested_amounts: ClassVar[dict[str, tuple[str, ...]]] = {}

    @model_serializer(mode="wrap")
    def _format_amounts(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        for name in self._omitted_when_none:
            if data.get(name, False) is None:
                del data[name]
        currency = getattr(self, "currency", None)
        if currency is None:
            return data
        for name in self._amounts:
            value = getattr(self, name)
            if isinstance(value, Decimal) and name in data:
                data[name] = money.to_str(value, currency)
        for field, names in self._nested_amounts.items():
            for shown, item in zip(data[field], getattr(self, field), strict=True):  # type: ignore[call-overload]
                for name in names:
                    shown[name] = money.to_str(getattr(item, name), currency)
        allocations = getattr(self, "allocations", None)
        if allocations is not None and "allocations" in data:
            for shown, allocation in zip(data["allocations"], allocations, strict=True):  # type: ignore[call-overload]
                shown["amount"] = money.to_str(allocation.amount, currency)
        return data


class Allocation(_Contract):
    line_id: str
    credit_id: int
    kind: CreditKind
    amount: money.Amount


class Settlement(_Priced):
    _amounts = ("total", "credit_applied", "amount_due")
    _omitted_when_none = ("note",)

    invoice_id: str
    project_id: str
    currency: str
    total: money.Amount
    credit_applied: money.Amount
    amount_due: money.Amount
    allocations: list[Allocation]
    replayed: bool = False
    #: Set when credit could not pay the charge at all ("currency_mismatch":
    #: credit_applied is 0, amount_due the total); absent from the JSON otherwise.
    note: SettlementNote | None = None

    def json_ready(self) -> dict[str, object]:
        """``model_dump(mode="json")``, built directly (see :func:`settlement_json`)."""
        return settlement_json(self)


class SettlementResult(NamedTuple):
    """A settlement as the ledger work produced it: the contract's fields, declared once.

    :class:`Settlement` is the same contract as a pydantic model, for hosts
    that want one (:meth:`model`); month-end runs that only pass settlements
    on as JSON skip the models (a pydantic object per allocation) and format
    straight from this (:meth:`json_ready`). tests/service/test_contract_json.py
    checks that both have the same fields.
    """

    invoice_id: str
    project_id: str
    currency: str
    total: Decimal
    credit_applied: Decimal
    amount_due: Decimal
    allocations: Sequence[AllocationResult]
    replayed: bool
    note: SettlementNote | None = None

    def model(self) -> Settlement:
        values = self._asdict()
        values["allocations"] = [Allocation.trusted(**a._asdict()) for a in self.allocations]
        return Settlement.trusted(**values)

    def json_ready(self) -> dict[str, object]:
        """Equal to ``self.model().json_ready()``."""
        return settlement_json(self)


class AllocationResult(Protocol):
    """One allocation of a :class:`SettlementResult` (``allocation.Share`` is one)."""

    @property
    def line_id(self) -> str: ...
    @property
    def credit_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...

    def _asdict(self) -> dict[str, object]: ...


def settlement_json(settlement: Settlement | SettlementResult) -> dict[str, object]:
    """The settlement contract's JSON (``Settlement.model_dump(mode="json")``), built
    directly: hosts dump settlements by the million, and pydantic's wrap serializer
    cost as much as a ledger write."""
    amount = money.formatter(settlement.currency)
    data: dict[str, object] = {
        "invoice_id": settlement.invoice_id,
        "project_id": settlement.project_id,
        "currency": settlement.currency,
        "total": amount(settlement.total),
        "credit_applied": amount(settlement.credit_applied),
        "amount_due": amount(settlement.amount_due),
        "allocations": [
            {"line_id": a.line_id, "credit_id": a.credit_id, "kind": a.kind,
             "amount": amount(a.amount)}
            for a in settlement.allocations
        ],
        "replayed": settlement.replayed,
    }
    if settlement.note is not None:
        data["note"] = settlement.note
    return data


class OrderKey(_Contract):
    """The fields the consumption order reads of a credit, in the order it reads them:
    vouchers first, then the soonest ``valid_until`` (none: last), the oldest, the id."""

    kind: CreditKind
    valid_until: Timestamp | None
    created_at: Timestamp
    credit_id: int


class SkippedCredit(_Contract):
    """A credit ahead in the consumption order that scopes kept from paying the line.

    ``not_covered``: its ``products`` do not include the line's product.
    ``needed_elsewhere``: it paid lines of ``products``, which the paying
    credit does not cover (so the paying credit could not take them instead).
    """

    credit_id: int
    cause: SkipCause
    products: list[str]


class Explanation(_Contract):
    """Why an allocation's credit paid its line, as decided when the charge was settled.

    ``place``: the credit's place (1 = first) in the consumption order of the
    credits usable at the charge's time. ``reason``: ``order`` when every credit
    ahead of it was used up first, ``scope`` when ``skipped`` names credits ahead
    of it that scopes kept from the line.
    """

    place: int
    order_key: OrderKey
    reason: ExplanationReason
    skipped: list[SkippedCredit]


class ExplainedAllocation(Allocation):
    #: None for a settlement recorded before explanations were kept.
    explanation: Explanation | None


class SettlementRecord(_Priced):
    """A settlement as the ledger recorded it (``settlement show``, ``GET {base}/settlements``).

    The settlement contract's fields but ``replayed``, with the settlement
    ``key``, the ``settled_at`` time (an invoice's ``issued_at``, a rated
    period's start) and the ``revision`` (above 1: a re-rated period). With
    ``explain``, each allocation carries its ``explanation``.
    """

    _amounts = ("total", "credit_applied", "amount_due")
    _omitted_when_none = ("note",)

    key: str
    invoice_id: str
    project_id: str
    currency: str
    total: money.Amount
    credit_applied: money.Amount
    amount_due: money.Amount
    allocations: list[ExplainedAllocation]
    note: SettlementNote | None = None
    settled_at: Timestamp
    revision: int


def _writable(text: str) -> str:
    """``text``, with what UTF-8 cannot encode (a lone surrogate, which JSON's
    ``"\\ud800"`` gives) written as a backslash escape: a refusal is printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvoiceRefusal(NamedTuple):
    """An invoice of a run that was refused, reported in its place; the run goes on.

    Refused: an invoice that is malformed (``cause`` is an
    :class:`~ovh_credit_plugin.exceptions.InvalidInput`) or conflicts with
    what the ledger recorded for its id (a
    :class:`~ovh_credit_plugin.exceptions.SettlementConflict`). Nothing of it
    is written. ``invoice`` and ``project_id`` are the invoice's as far as the
    input gives them (None when it does not: an unreadable JSON line, an
    object without an id); ``invoice``, not ``invoice_id``, since it names
    the input, which may not hold a valid id. Its JSON (:meth:`json_ready`,
    one object of ``ovh-credit settle -f json``'s array) is
    ``{"invoice", "project_id", "error"}``: an item of a run's output is a
    refusal when it has ``"error"``.
    """

    invoice: str | None
    project_id: str | None
    error: str  # one line, for the operator
    cause: exceptions.CreditError

    @classmethod
    def of_document(cls, document: object, error: exceptions.CreditError) -> InvoiceRefusal:
        """The refusal of an input ``document`` (an invoice object, or whatever it is)."""
        ids = [document.get(name) if isinstance(document, Mapping) else None
               for name in ("id", "project_id")]
        invoice, project_id = (_writable(value) if isinstance(value, str) else None
                               for value in ids)
        return cls(invoice, project_id, _writable(str(error)), error)

    def json_ready(self) -> dict[str, object]:
        return {"invoice": self.invoice, "project_id": self.project_id, "error": self.error}


# -- Orders and credits --------------------------------------------------------


class Order(_Priced):
    _amounts = ("amount",)

    id: str
    project_id: str
    amount: money.Amount
    currency: str
    status: OrderStatus
    created_at: Timestamp
    expires_at: Timestamp
    paid_at: Timestamp | None
    payment_url: str
    credit_id: int | None

    def json_ready(self) -> dict[str, object]:
        """``model_dump(mode="json")``, built directly (:func:`contracts.order_json`)."""
        return order_json(self)


class Credit(_Priced):
    _amounts = ("total", "used", "expired", "voided", "available")

    id: int
    project_id: str
    kind: CreditKind
    description: str
    source: str
    currency: str
    total: money.Amount
    used: money.Amount
    expired: money.Amount
    voided: money.Amount
    available: money.Amount
    valid_from: Timestamp
    valid_until: Timestamp | None
    status: CreditStatus
    products: list[str]

    def json_ready(self) -> dict[str, object]:
        """``model_dump(mode="json")``, built directly (:func:`contracts.credit_json`)."""
        return credit_json(self)


class LedgerEntry(_Contract):
    id: int
    credit_id: int
    type: Literal["grant", "debit", "reversal", "expiry", "void"]
    amount: money.Amount
    settlement_key: str | None
    line_id: str | None
    note: str
    created_at: Timestamp


# -- forecast ---------------------------------------------------------------------


class ForecastCredit(_Contract):
    """One credit of a forecast: what it holds now, and what it will still hold at its end."""

    credit_id: int
    kind: CreditKind
    valid_until: Timestamp | None
    available: money.Amount
    expires_unused: money.Amount


class ForecastWarning(_Contract):
    """A credit with money at risk that ends within the configured warning days."""

    credit_id: int
    days_left: int
    amount: money.Amount


class Forecast(_Priced):
    """When a project's credit runs out at its burn rate, and how much expires unused first.

    See :mod:`ovh_credit_plugin.forecast` for the model; docs/api.md for the fields.
    """

    _amounts = ("available", "burn_rate_per_day", "amount_at_risk")
    _nested_amounts = {"credits": ("available", "expires_unused"), "warnings": ("amount",)}

    currency: str
    available: money.Amount
    burn_rate_per_day: money.Amount
    window_days: int
    runs_out_at: Timestamp | None
    amount_at_risk: money.Amount
    credits: list[ForecastCredit]
    warnings: list[ForecastWarning]
