"""Money and UTCDateTime columns on a real SQLite file (ledger/types.py).

SQLite has no exact decimal type: amounts are fixed-width zero-padded text,
so the tests check the two things that makes non-obvious: values come back
exactly, and SQL comparisons/ordering of that text agree with ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Engine

from ovh_credit_plugin.ledger.database import create_engine
from ovh_credit_plugin.ledger.types import Money, UTCDateTime

UTC = dt.timezone.utc
LARGEST = Decimal("999999999999999999.999999")  # money.MAX_AMOUNT is exclusive
# The autouse cleanup fixture runs once per test; property tests clear the table themselves.
NO_FIXTURE_CHECK = [HealthCheck.function_scoped_fixture]

metadata = sa.MetaData()
amounts = sa.Table(
    "amounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("a", Money(), nullable=True),
    sa.Column("b", Money(), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=True),
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("money") / "money.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(amounts.delete())


def _clear(conn: sa.Connection) -> None:
    conn.execute(amounts.delete())


def _insert(engine: Engine, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(amounts.insert().values(**values))


def _raw(engine: Engine, column: str) -> Any:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT {column} FROM amounts").scalar_one()


micro_amounts = st.one_of(
    st.integers(0, 10**24 - 1).map(lambda n: Decimal(n).scaleb(-6)),
    st.integers(0, 10**4).map(lambda n: Decimal(n).scaleb(-6)),  # near zero
    st.integers(0, 10**6).map(lambda n: LARGEST - Decimal(n).scaleb(-6)),  # near the top
    st.integers(0, 10**18 - 1).map(Decimal),  # whole numbers (exponent 0)
    st.sampled_from([Decimal(0), Decimal("0.000001"), Decimal(10**15), LARGEST,
                     Decimal("1E+3"), Decimal("12.50"), Decimal("0.1")]),
)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "value",
    [LARGEST, Decimal(10**15), Decimal("0.000001"), Decimal(0), Decimal("12.5"),
     Decimal("1E+3"), Decimal("123456789.123456")],
)
def test_round_trip_is_exact(engine: Engine, value: Decimal) -> None:
    _insert(engine, id=1, a=value)
    with engine.connect() as conn:
        back = conn.execute(sa.select(amounts.c.a)).scalar_one()
    assert isinstance(back, Decimal)
    assert back == value
    assert back.as_tuple().exponent == -6  # always at ledger scale
    # Stored as fixed-width text, never as a float.
    raw = _raw(engine, "a")
    assert isinstance(raw, str)
    assert len(raw) == 29
    assert Decimal(raw) == value
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT typeof(a) FROM amounts").scalar_one() == "text"


def test_null_round_trip(engine: Engine) -> None:
    _insert(engine, id=1, a=None, at=None)
    with engine.connect() as conn:
        row = conn.execute(sa.select(amounts.c.a, amounts.c.at)).one()
    assert row == (None, None)


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example is a database round trip.
@settings(max_examples=150, deadline=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(value=micro_amounts)
def test_round_trip_property(engine: Engine, value: Decimal) -> None:
    with engine.begin() as conn:
        _clear(conn)
        conn.execute(amounts.insert().values(id=1, a=value))
        assert conn.execute(sa.select(amounts.c.a)).scalar_one() == value


# --------------------------------------------------------------------------- ordering


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example is a database round trip.
@settings(max_examples=300, deadline=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(x=micro_amounts, y=micro_amounts)
def test_sql_comparisons_agree_with_decimal(engine: Engine, x: Decimal, y: Decimal) -> None:
    with engine.begin() as conn:
        _clear(conn)
        conn.execute(amounts.insert().values(id=1, a=x, b=y))
        row = conn.execute(
            sa.select(
                amounts.c.a > amounts.c.b,
                amounts.c.a < amounts.c.b,
                amounts.c.a == amounts.c.b,
                amounts.c.a > y,  # column against a bound Money parameter
                amounts.c.a >= y,
                amounts.c.a == y,
                amounts.c.a > Decimal(0),  # as the store writes `available > ZERO`
            )
        ).one()
        assert tuple(bool(v) for v in row) == (x > y, x < y, x == y, x > y, x >= y, x == y, x > 0)
        count = conn.execute(
            sa.select(sa.func.count()).select_from(amounts).where(amounts.c.a > amounts.c.b)
        ).scalar_one()
        assert count == (1 if x > y else 0)


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example is a database round trip.
@settings(max_examples=100, deadline=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(values=st.lists(micro_amounts, min_size=0, max_size=12))
def test_order_by_agrees_with_decimal(engine: Engine, values: list[Decimal]) -> None:
    with engine.begin() as conn:
        _clear(conn)
        for i, value in enumerate(values):
            conn.execute(amounts.insert().values(id=i + 1, a=value))
        ordered = conn.execute(
            sa.select(amounts.c.a).order_by(amounts.c.a, amounts.c.id)
        ).scalars().all()
        assert ordered == sorted(values)
        top = conn.execute(sa.select(sa.func.max(amounts.c.a))).scalar_one()
        assert top == (max(values) if values else None)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "value",
    [1.5, 0.0, 10, "12.50", Decimal("-0.000001"), Decimal(-1), Decimal("0.0000001"),
     Decimal("1.1234567"), Decimal("NaN"), Decimal("Infinity"), Decimal(10) ** 30],
)
def test_binding_refuses_non_ledger_values(engine: Engine, value: Any) -> None:
    with pytest.raises(sa.exc.StatementError):
        _insert(engine, id=1, a=value)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(amounts)).scalar_one() == 0


def test_binding_float_raises_type_error(engine: Engine) -> None:
    with pytest.raises(sa.exc.StatementError) as info:
        _insert(engine, id=1, a=0.1)
    assert isinstance(info.value.orig, TypeError)


def test_negative_zero_is_refused_or_stored_as_zero(engine: Engine) -> None:
    try:
        _insert(engine, id=1, a=Decimal("-0"), b=Decimal(0))
    except sa.exc.StatementError:
        return
    with engine.connect() as conn:
        assert conn.execute(sa.select(amounts.c.a == amounts.c.b)).scalar_one()
    assert _raw(engine, "a") == "0000000000000000000000.000000"


# --------------------------------------------------------------------------- datetimes


def test_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(sa.exc.StatementError) as info:
        _insert(engine, id=1, at=dt.datetime(2026, 1, 31, 10, 0))
    assert isinstance(info.value.orig, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 1, 31, 10, 0, 0, 123456, tzinfo=UTC),
        dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2026, 7, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    ],
)
def test_aware_datetime_comes_back_utc_aware(engine: Engine, value: dt.datetime) -> None:
    _insert(engine, id=1, at=value)
    with engine.connect() as conn:
        back = conn.execute(sa.select(amounts.c.at)).scalar_one()
    assert back == value
    assert back.tzinfo is not None
    assert back.utcoffset() == dt.timedelta(0)
    assert back.microsecond == value.microsecond


def test_datetime_comparison_uses_utc_instant(engine: Engine) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    _insert(engine, id=1, at=dt.datetime(2026, 1, 31, 10, 30, tzinfo=paris))  # 09:30Z
    with engine.connect() as conn:
        earlier = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
        assert conn.execute(
            sa.select(sa.func.count()).select_from(amounts).where(amounts.c.at < earlier)
        ).scalar_one() == 1


# --------------------------------------------------------------------------- the bind fast path


def _bind_reference(value: Decimal) -> str | None:
    """What Money stored before its fast path: quantize, check, format; None when refused."""
    context = decimal.Context(prec=60)
    exact = value.quantize(Decimal("0.000001"), context=context)
    if exact != value or exact < 0 or exact >= Decimal(10) ** 22:
        return None
    return format(exact.copy_abs(), "029f")


def _sqlite_bind() -> Any:
    dialect = sqlite_dialect()
    processor = Money().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    return processor


any_exponent_amounts = st.builds(
    lambda sign, digits, exponent: Decimal(f"{sign}{digits}E{exponent}"),
    st.sampled_from(["", "", "", "-"]),
    st.integers(0, 10**30),
    st.integers(-9, 3),
)


def _check_bind(value: Decimal) -> None:
    # The SQLite bind reads an amount already at the ledger's exponent from
    # its text and quantizes the rest: both must store the same text and
    # refuse the same values.
    processor = _sqlite_bind()
    expected = _bind_reference(value)
    if expected is None:
        with pytest.raises((ValueError, decimal.InvalidOperation)):
            processor(value)
    else:
        assert processor(value) == expected


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example binds one value, no database.
@settings(max_examples=3000, deadline=None)
@given(value=st.one_of(micro_amounts, any_exponent_amounts))
# Pinned: the negative zero the ledger once stored as "-0.000000" (ecda4ac).
@example(value=Decimal("-0"))
@example(value=Decimal("-0E-9"))
def test_bind_text_is_the_quantized_fixed_width_text(value: Decimal) -> None:
    _check_bind(value)


@pytest.mark.parametrize("text", ["0.000000", "-0.000000", "1E+3", "1.5", "0.0000001", "-1.000000",
                                  "9999999999999999999999.999999", "1E-6", "10E-7",
                                  "10000000000000000000000.000000"])
def test_bind_text_edge_cases(text: str) -> None:
    _check_bind(Decimal(text))
