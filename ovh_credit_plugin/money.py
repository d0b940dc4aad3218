"""Exact money: ``Decimal`` amounts, ISO 4217 currencies.

Amounts are never floats: parsing refuses them, the ledger stores exact
values (see :mod:`ovh_credit_plugin.ledger.types`) and JSON carries decimal
strings. The ledger keeps :data:`LEDGER_PLACES` decimal places, enough for
rated usage priced below the cent.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.i18n import _

LEDGER_PLACES = 6
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_PLACES)
# Large enough for any real balance, small enough for NUMERIC(28, 6).
MAX_AMOUNT = Decimal(10) ** 18
ZERO = Decimal(0)
_QUANTA = tuple(Decimal(1).scaleb(-places) for places in range(LEDGER_PLACES + 1))
# ASCII digits only: Decimal() also reads other scripts' digits (Arabic-Indic, fullwidth).
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
# Groups of three after a comma, as English writes thousands ("1,000,000.50").
_COMMA_GROUPED = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?", re.ASCII)
# What invoices and rated usage almost always hold: below MAX_AMOUNT, unsigned,
# at most LEDGER_PLACES decimals. Such text passes every check of parse_amount
# but the zero one (and the places one when fewer places are allowed).
_SIMPLE_AMOUNT = re.compile(rf"[0-9]{{1,18}}(?:\.([0-9]{{0,{LEDGER_PLACES}}}))?", re.ASCII)

# Local context: a host that changed the global one cannot change our sums.
_CONTEXT = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow,
])


@cache
def currency_places(code: str) -> int:
    """Minor-unit decimals of an ISO 4217 currency (EUR 2, JPY 0, KWD 3)."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise exceptions.InvalidCurrency(
            _("invalid currency %(code)r: expected an ISO 4217 code") % {"code": code})
    # Imported on the first currency: the table takes ~12 ms to load, which
    # a command line run that formats no amount does not pay (issue 15).
    from iso4217 import Currency

    try:
        exponent = Currency(code).exponent
    except ValueError:
        raise exceptions.InvalidCurrency(_("unknown currency %(code)r") % {"code": code}) from None
    if exponent is None:
        # XAU, XDR, XXX...: ISO 4217 gives no minor unit; not a currency we bill in.
        raise exceptions.InvalidCurrency(_("currency %(code)r has no minor unit") % {"code": code})
    return int(exponent)


#: Currencies ISO 4217 has withdrawn that a release of ``iso4217`` this plugin
#: accepts (``>= 1.11``, pyproject.toml) still listed, with their minor units
#: there: a ledger may hold them, written before the package was upgraded (BGN
#: left with 1.15, when Bulgaria took the euro). Read from those releases' own
#: tables (docs/operations.md says how to extend it). Used to show what the
#: ledger holds, never to accept new money in them.
WITHDRAWN_PLACES = {"ANG": 2, "BGN": 2, "CUC": 2, "HRK": 2, "SLL": 2, "ZWL": 2}


@cache
def held_places(code: str) -> int:
    """:func:`currency_places` of a currency the ledger holds, a withdrawn one's too."""
    try:
        return currency_places(code)
    except exceptions.InvalidCurrency:
        if code in WITHDRAWN_PLACES:
            return WITHDRAWN_PLACES[code]
        raise


def check_currency(code: Any) -> str:
    if not isinstance(code, str):  # before the cache, which would need it hashable
        raise exceptions.InvalidCurrency(
            _("invalid currency %(code)r: expected an ISO 4217 code") % {"code": code})
    currency_places(code)
    return code


def parse_amount(  # noqa: PLR0912 - one branch per input shape reads best
    value: Any,
    *,
    places: int = LEDGER_PLACES,
    field: str = "amount",
    allow_zero: bool = False,
) -> Decimal:
    """Parse a non-negative exact amount with at most ``places`` decimals.

    Accepts ``Decimal``, ``int`` and decimal strings; refuses floats (they
    are not exact), booleans, NaN, infinities, exponents that hide too many
    decimals and absurdly large values.
    """
    if type(value) is str and (simple := _SIMPLE_AMOUNT.fullmatch(value)):
        fraction = simple.group(1)
        if fraction is None or len(fraction) <= places:
            amount = Decimal(value)
            if amount or allow_zero:
                return amount
    if isinstance(value, (bool, float)):
        raise exceptions.InvalidAmount(
            _("%(field)s must be a decimal string, not %(value)r")
            % {"field": field, "value": value})
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(text := value.strip()):
        amount = Decimal(text)  # plain digits: always a finite decimal
    elif isinstance(value, str):
        text = value.strip()
        try:
            amount = Decimal(text)
        except decimal.InvalidOperation:
            if (_PLAIN_DECIMAL.fullmatch(text.replace(",", ".", 1))
                    or _COMMA_GROUPED.fullmatch(text)):
                # "10,5" (a French reader's 10.5) or "1,000" and "1,000.50" (an
                # English one's thousand): a number to its writer, which we take
                # in one form only.
                raise exceptions.InvalidAmount(
                    _("%(field)s %(value)r must be written without a comma: a point for "
                      "decimals, like '1234.50'") % {"field": field, "value": value}) from None
            raise exceptions.InvalidAmount(
                _("%(field)s %(value)r is not a decimal number")
                % {"field": field, "value": value}) from None
        if not amount.is_finite():
            raise exceptions.InvalidAmount(
                _("%(field)s must be a finite number, not %(value)r")
                % {"field": field, "value": value})
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise exceptions.InvalidAmount(
                _("%(field)s %(value)r must be written as plain digits, like '12.50'")
                % {"field": field, "value": value}
            )
    else:
        raise exceptions.InvalidAmount(
            _("%(field)s must be a decimal string, not %(value)r")
            % {"field": field, "value": value})
    if not amount.is_finite():
        raise exceptions.InvalidAmount(
            _("%(field)s must be a finite number, not %(value)r")
            % {"field": field, "value": value})
    if amount.is_signed() and amount != ZERO:
        raise exceptions.InvalidAmount(
            _("%(field)s must not be negative: %(value)s") % {"field": field, "value": value})
    if amount == ZERO and not allow_zero:
        raise exceptions.InvalidAmount(_("%(field)s must be greater than zero") % {"field": field})
    if amount >= MAX_AMOUNT:
        raise exceptions.InvalidAmount(
            _("%(field)s %(value)s is too large") % {"field": field, "value": value})
    # Below MAX_AMOUNT, quantizing to ``places`` is exact unless digits are lost.
    quantum = _QUANTA[places] if 0 <= places < len(_QUANTA) else Decimal(1).scaleb(-places)
    if amount != amount.quantize(quantum, context=_CONTEXT):
        raise exceptions.InvalidAmount(
            _("%(field)s %(value)s has more than %(places)d decimal places")
            % {"field": field, "value": value, "places": places}
        )
    return amount.copy_abs() if amount == ZERO else amount


def is_ledger_amount(value: Any) -> bool:
    """True when ``parse_amount(value, allow_zero=True)`` would accept this Decimal as is.

    The cheap check for amounts the code already holds as Decimals; anything
    else (and any refusal) goes through :func:`parse_amount` for its message.
    """
    return (
        type(value) is Decimal
        and value.is_finite()
        and ZERO <= value < MAX_AMOUNT
        and value == value.quantize(LEDGER_QUANTUM, context=_CONTEXT)
    )


def ledger(amount: Decimal) -> Decimal:
    """``amount`` at the ledger's fixed scale (exact: callers pass exact values)."""
    return amount.quantize(LEDGER_QUANTUM, context=_CONTEXT)


def ledger_if_exact(value: Any) -> Any:
    """``value`` at the ledger's scale when that is exact, else ``value`` unchanged.

    For amounts a host hands in, to be checked later: ``10.00`` and ``10``
    become one text, and what is not an exact ledger amount is never rounded
    into one (the check refuses it with its reason).
    """
    if type(value) is Decimal and value.is_finite():
        try:
            exact = value.quantize(LEDGER_QUANTUM, context=_CONTEXT)
        except decimal.InvalidOperation:  # too many digits: left for the check
            return value
        if exact == value:
            return exact
    return value


def floor_to_ledger(amount: Decimal) -> Decimal:
    """The largest ledger amount not above ``amount`` (credit never covers more than due)."""
    return amount.quantize(LEDGER_QUANTUM, rounding=decimal.ROUND_DOWN, context=_CONTEXT)


def exact() -> AbstractContextManager[decimal.Context]:
    """Our decimal context for a block of arithmetic, whatever the thread's own.

    ``+``, ``-`` and ``sum()`` use the thread's context, which a host may
    have lowered (``prec = 6`` would round a 1,234.567891 total to 1,234.57).
    The ledger's transactions and the CloudKitty processor run under this.
    """
    return decimal.localcontext(_CONTEXT)


def add(*amounts: Decimal) -> Decimal:
    total = ZERO
    for amount in amounts:
        total = _CONTEXT.add(total, amount)
    return total


def to_str(amount: Decimal, currency: str) -> str:
    """Decimal string with the currency's decimals, or more when sub-unit digits exist."""
    return _to_str(amount, held_places(currency))


def formatter(currency: str) -> Callable[[Decimal], str]:
    """:func:`to_str` for one currency, its places looked up once (settlements by the thousand)."""
    places = held_places(currency)
    return lambda amount: _to_str(amount, places)


def _to_str(amount: Decimal, places: int) -> str:
    # At the ledger's exponent, str() is plain digits with LEDGER_PLACES
    # decimals; ledger amounts (all the settlement's) are there already.
    text = str(amount)
    if not (len(text) > LEDGER_PLACES + 1 and text[-LEDGER_PLACES - 1] == "."
            and text[-LEDGER_PLACES:].isdigit()):
        text = str(ledger(amount))
    whole, fraction = text[: -LEDGER_PLACES - 1], text[-LEDGER_PLACES:].rstrip("0")
    if len(fraction) < places:
        fraction = fraction.ljust(places, "0")
    return f"{whole}.{fraction}" if fraction else whole


def to_human(amount: Decimal, currency: str) -> str:
    """Grouped for tables: ``1 234.50 EUR``."""
    text = to_str(amount, currency)
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    return f"{grouped}.{fraction} {currency}" if fraction else f"{grouped} {currency}"


def in_sentence(amount: Decimal, currency: str, *, with_currency: bool = True) -> str:
    """``amount`` for a translated message's placeholder: :func:`to_str`'s places,
    written as the reader's language writes numbers (``1 234,50 EUR`` in French,
    ``1,234.50 EUR`` in English; :func:`ovh_credit_plugin.i18n.amount`).

    ``with_currency=False`` for the first of two amounts sharing one currency
    (« entre 5,00 et 100 000,00 EUR »). JSON and log lines keep :func:`to_str`.
    """
    return i18n.amount(to_str(amount, currency), currency if with_currency else None)


def _validate(value: Any) -> Decimal:
    return parse_amount(value, allow_zero=True)


def _amount_type() -> Any:
    from pydantic import BeforeValidator, PlainSerializer

    return Annotated[Decimal, BeforeValidator(_validate), PlainSerializer(str, return_type=str)]


if TYPE_CHECKING:
    from pydantic import BeforeValidator, PlainSerializer

    #: The one amount type of the JSON contracts: an exact non-negative decimal,
    #: read from a decimal string (never a float) and written back as a string.
    Amount = Annotated[Decimal, BeforeValidator(_validate), PlainSerializer(str, return_type=str)]
else:
    def __getattr__(name: str) -> Any:
        # Amount is built on first use (by the models): importing this module
        # must not import pydantic, which the command line's --help and its
        # configuration options do not need (issue 15, decision 3).
        if name == "Amount":
            globals()["Amount"] = amount = _amount_type()
            return amount
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
