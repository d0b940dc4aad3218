"""Column types that keep money exact on every database."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import types
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement

from ovh_credit_plugin.money import LEDGER_PLACES, LEDGER_QUANTUM

_PRECISION = 28  # 22 integer digits: money.MAX_AMOUNT (10**18) fits with room
_SQLITE_WIDTH = _PRECISION + 1  # digits plus the decimal point
_LIMIT = Decimal(10) ** (_PRECISION - LEDGER_PLACES)
_CONTEXT = decimal.Context(prec=_PRECISION + 2)


class Money(types.TypeDecorator[Decimal]):
    """A non-negative exact amount with LEDGER_PLACES decimals.

    PostgreSQL and MariaDB get ``NUMERIC(28, 6)``, which their drivers return
    as ``Decimal``. SQLite has no exact decimal type (SQLAlchemy's Numeric goes
    through float there), so amounts are stored as zero-padded fixed-width
    text: exact, and since every amount in the ledger is non-negative, text
    order is numeric order, so ``available > 0`` and ``ORDER BY`` still work.
    Arithmetic is done in Python, never in SQL.
    """

    impl = types.Numeric(_PRECISION, LEDGER_PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(types.String(_SQLITE_WIDTH))
        return dialect.type_descriptor(types.Numeric(_PRECISION, LEDGER_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if type(value) is Decimal and dialect.name == "sqlite":
            # The usual case, an amount the ledger computed: already at the
            # ledger's exponent, non-negative and below the limit. Its text
            # tells all three (str() of exponent -6 is plain digits with six
            # decimals; a sign, an exponent or too many digits show), so the
            # quantize below is for the rest.
            text = str(value)
            if (7 < len(text) <= _SQLITE_WIDTH and text[-7] == "." and text[0] != "-"
                    and text[-6:].isdigit()):
                return text.rjust(_SQLITE_WIDTH, "0")
        if not isinstance(value, Decimal):
            raise TypeError(f"Money columns take Decimal, not {type(value).__name__}")
        exact = value.quantize(LEDGER_QUANTUM, context=_CONTEXT)
        if exact != value or exact < 0 or exact >= _LIMIT:
            raise ValueError(f"{value} is not a non-negative ledger amount")
        if exact.is_signed():  # -0 would sort and compare apart from 0 as text
            exact = exact.copy_abs()
        if dialect.name == "sqlite":
            # At exponent -6 and below _LIMIT, str() is plain digits: the same
            # text as format(exact, "029f"), for a third of the cost.
            return str(exact).rjust(_SQLITE_WIDTH, "0")
        return exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):  # pragma: no cover - would be a driver bug
            raise TypeError("a money column came back as float")
        return Decimal(value).quantize(LEDGER_QUANTUM)

    @classmethod
    def result_function(cls, dialect: Dialect) -> Callable[[Any], Decimal]:
        """What process_result_value does to a non-null raw value, as one call.

        For the ledger's hot reads, which fetch raw rows. On SQLite the stored
        text always has LEDGER_PLACES decimals (every write goes through
        process_bind_param), so ``Decimal`` alone gives the same value and
        exponent; elsewhere it is process_result_value itself.
        """
        if dialect.name == "sqlite":
            return Decimal
        instance = cls()
        return lambda value: instance.process_result_value(value, dialect)  # type: ignore[return-value]


class UTCDateTime(types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC."""

    impl = types.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            # Here: the MySQL dialect's modules cost every SQLite or
            # PostgreSQL process (a command line run) ~15 ms to import.
            from sqlalchemy.dialects import mysql

            # MySQL's DATETIME drops microseconds unless asked for them.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(types.DateTime(timezone=False))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)  # type: ignore[no-any-return]

    @classmethod
    def result_function(cls, dialect: Dialect) -> Callable[[Any], dt.datetime]:
        """What the column's result processing does to a non-null raw value, as one call."""
        utc = dt.timezone.utc
        if dialect.name == "sqlite":
            # SQLAlchemy's SQLite DATETIME stores ISO text and reads it back
            # with fromisoformat.
            parse = dt.datetime.fromisoformat
            return lambda value: parse(value).replace(tzinfo=utc)
        return lambda value: value.replace(tzinfo=utc)  # type: ignore[no-any-return]


# -- CHECK constraints on amounts -------------------------------------------------------


def non_negative(*columns: str) -> str:
    """SQL of a CHECK that the Money columns are all ``>= 0``.

    On SQLite the text column compares with ``0`` as text (the column's TEXT
    affinity applies to the literal): a stored ``-...`` sorts below ``'0'``
    and is refused, a zero-padded non-negative amount is not.
    """
    return " AND ".join(f"{column} >= 0" for column in columns)


class AmountsAddUp(ColumnElement[bool]):
    """SQL of a CHECK that Money columns are non-negative and add up exactly to
    another: ``a + b = total``.

    PostgreSQL and MariaDB add NUMERIC exactly. SQLite would add the text
    amounts as floats, so there each amount is split into its integer part
    and its six decimals, both read as exact 64-bit integers: the decimals'
    sum carries into the integers' (integer division), and what is left of
    it must be the whole's decimals. Amounts stay below ``money.MAX_AMOUNT``
    (10**18), so four integer parts add up below 2**63.
    """

    inherit_cache = False
    type = types.Boolean()

    def __init__(self, parts: Sequence[str], whole: str) -> None:
        self.parts = tuple(parts)
        self.whole = whole


@compiles(AmountsAddUp)
def _exact_sum(element: AmountsAddUp, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{non_negative(element.whole, *element.parts)} "
            f"AND {' + '.join(element.parts)} = {element.whole}")


_SQLITE_UNITS = _SQLITE_WIDTH - LEDGER_PLACES - 1  # digits before the point
_SUBUNITS = 10 ** LEDGER_PLACES


def _sqlite_units(column: str) -> str:
    return f"CAST(substr({column}, 1, {_SQLITE_UNITS}) AS INTEGER)"


def _sqlite_subunits(column: str) -> str:
    return f"CAST(substr({column}, {_SQLITE_UNITS + 2}, {LEDGER_PLACES}) AS INTEGER)"


@compiles(AmountsAddUp, "sqlite")
def _sqlite_exact_sum(element: AmountsAddUp, compiler: SQLCompiler, **kw: Any) -> str:
    units = " + ".join(_sqlite_units(c) for c in element.parts)
    subunits = "(" + " + ".join(_sqlite_subunits(c) for c in element.parts) + ")"
    return (f"{non_negative(element.whole, *element.parts)} "
            f"AND {units} + {subunits} / {_SUBUNITS} = {_sqlite_units(element.whole)} "
            f"AND {subunits} % {_SUBUNITS} = {_sqlite_subunits(element.whole)}")
