"""Exact money on every database: what goes in comes back identical.

Three levels, on SQLite (fixed-width text), PostgreSQL and MariaDB
(``NUMERIC(28, 6)``):

- the ``Money`` column itself: values from one micro-unit to just below
  ``10**22`` bound with executemany, read back equal and at scale 6, stored as
  the driver's exact type (``Decimal``; text on SQLite), compared and ordered
  numerically by the database;
- the service and the CLI: an order and a credit of ``10**15`` units, an
  invoice of sub-cent lines (``0.000001``...) that uses it up to the last
  micro-unit, read back identical through the service, a replay and the CLI's
  JSON;
- one million debits of ``0.000001`` on one real credit, whose sum must be
  exactly ``1.000000`` wherever it is computed (see
  :func:`test_a_million_micro_debits_sum_exactly`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import allocation, models
from ovh_credit_plugin.ledger import credits, projects, schema, settlements
from ovh_credit_plugin.ledger.types import Money
from ovh_credit_plugin.service import fingerprint
from tests.support.cli import Cli
from tests.support.ledgers import Ledger, ServerPool

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
BIG = Decimal(10) ** 15
MICRO = Decimal("0.000001")

COLUMN_VALUES = [
    Decimal(0),
    MICRO,
    Decimal("0.000009"),
    Decimal("0.1"),
    Decimal("0.999999"),
    Decimal(1),
    Decimal("12.345678"),
    Decimal("123456789.000001"),
    BIG - MICRO,
    BIG,
    BIG + MICRO,
    Decimal("99999999999999999.999999"),
    Decimal(10) ** 18 - MICRO,  # money.MAX_AMOUNT, exclusive
    Decimal(10) ** 22 - MICRO,  # the largest NUMERIC(28, 6)
]


def engine_of(ledger: Ledger) -> sa.Engine:
    return sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)


def test_the_money_column_round_trips_exactly(ledger: Ledger) -> None:
    table = sa.Table(
        "money_roundtrip",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", Money(), nullable=False),
    )
    engine = engine_of(ledger)
    try:
        table.create(engine)
        with engine.begin() as conn:
            # executemany, in an order that is not the numeric one
            rows = [{"id": n, "amount": v} for n, v in enumerate(reversed(COLUMN_VALUES))]
            conn.execute(table.insert(), rows)
        with engine.connect() as conn:
            back = dict(conn.execute(sa.select(table.c.id, table.c.amount)).all())
            for n, value in enumerate(reversed(COLUMN_VALUES)):
                assert back[n] == value, (back[n], value)
                assert back[n].as_tuple().exponent == -6, back[n]
                assert str(back[n]) == f"{value:.6f}"
            # The database orders and compares them numerically (text order on SQLite).
            ordered = conn.execute(sa.select(table.c.amount).order_by(table.c.amount)).scalars()
            assert list(ordered) == COLUMN_VALUES
            above = conn.execute(
                sa.select(table.c.amount).where(table.c.amount > BIG).order_by(table.c.amount)
            ).scalars()
            assert list(above) == [v for v in COLUMN_VALUES if v > BIG]
            equal = conn.execute(sa.select(table.c.id).where(table.c.amount == MICRO)).all()
            assert len(equal) == 1
            # What the driver hands over is exact: Decimal, or SQLite's fixed-width text.
            raw = (
                conn.exec_driver_sql("SELECT amount FROM money_roundtrip ORDER BY amount")
                .scalars()
                .all()
            )
            if ledger.backend == "sqlite":
                assert raw == [f"{v:029.6f}" for v in COLUMN_VALUES]
            else:
                assert all(type(r) is Decimal for r in raw), {type(r) for r in raw}
                assert raw == COLUMN_VALUES
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def test_the_money_column_refuses_what_it_cannot_store_exactly(ledger: Ledger) -> None:
    table = sa.Table(
        "money_refusals",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", Money()),
    )
    engine = engine_of(ledger)
    try:
        table.create(engine)
        refused: list[Any] = [
            Decimal("0.0000001"),  # a 7th decimal would be rounded away
            Decimal(-1),
            Decimal(10) ** 22,  # beyond NUMERIC(28, 6)
            1.5,  # floats are not money
            Decimal("NaN"),
        ]
        for value in refused:
            with pytest.raises(sa.exc.StatementError), engine.begin() as conn:
                conn.execute(table.insert().values(amount=value))
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def test_huge_and_sub_cent_amounts_round_trip_through_the_service_and_the_cli(
    ledger: Ledger, cli: Cli
) -> None:
    service = ledger.service(purchase_min_amount="5", purchase_max_amount=str(BIG))
    try:
        order = service.create_order("big", str(BIG), at=T0)
        assert order.amount == BIG
        paid = service.pay_order(order.id, amount=BIG, currency="EUR", at=T0)
        assert paid.credit_id is not None
        [credit] = service.list_credits("big", at=T0)
        assert (credit.total, credit.available) == (BIG, BIG)

        lines = ["0.000001", "0.000009", "12.345678", "999999999999987.654312"]
        assert sum(map(Decimal, lines)) == BIG  # the invoice uses the credit up exactly
        invoice = models.Invoice.model_validate(
            {
                "id": "INV-BIG",
                "project_id": "big",
                "currency": "EUR",
                "issued_at": "2026-03-01T00:00:00Z",
                "lines": [
                    {"id": f"l{n}", "product": "compute", "amount": amount}
                    for n, amount in enumerate(lines)
                ],
            }
        )
        settled = service.settle_invoice(invoice, at=T0)
        replay = service.settle_invoice(invoice, at=T0)  # read back from the database
        for result in (settled, replay):
            assert (result.total, result.credit_applied, result.amount_due) == (BIG, BIG, 0)
            assert [str(a.amount) for a in result.allocations] == [
                f"{Decimal(x):.6f}" for x in lines
            ]
        assert replay.replayed is True
        shown, entries = service.show_credit(paid.credit_id, at=T0)
        assert (shown.total, shown.used, shown.available) == (BIG, BIG, 0)
        assert [e.amount for e in entries] == [BIG, *map(Decimal, lines)]
        assert service.audit().ok
    finally:
        service.close()

    # The CLI's JSON: decimal strings, every digit kept.
    listed = cli.ok("credit", "list", "big")
    assert (listed[0]["total"], listed[0]["used"]) == (
        "1000000000000000.00",
        "1000000000000000.00",
    )
    shown_json = cli.ok("credit", "show", str(paid.credit_id))
    assert [e["amount"] for e in shown_json["entries"]] == ["1000000000000000.00", *lines]
    replayed = cli.ok("settle", "-", stdin=invoice.model_dump_json())
    assert [a["amount"] for a in replayed[0]["allocations"]] == lines
    assert replayed[0]["credit_applied"] == "1000000000000000.00"
    orders = cli.ok("order", "list", "big")
    assert orders[0]["amount"] == "1000000000000000.00"


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [
        ("EUR", "99999.99", "99999.99"),
        ("JPY", "99999", "99999"),
        ("KWD", "99999.999", "99999.999"),
    ],
)
def test_every_currency_decimal_round_trips(
    ledger: Ledger, cli: Cli, currency: str, amount: str, shown: str
) -> None:
    order = cli.ok("order", "create", "p1", amount, "--currency", currency)
    assert order["amount"] == shown
    paid = cli.ok("order", "pay", order["id"], "--amount", amount, "--currency", currency)
    credit = cli.ok("credit", "show", str(paid["credit_id"]))
    assert json.dumps(credit).count(f'"{shown}"') >= 2  # total and available


# -- one million debits of 0.000001 ---------------------------------------------------------

MILLION = 1_000_000


def _insert_micro_debits(
    ledger: Ledger, engine: sa.Engine, server_pool: ServerPool, credit_id: int, key: str
) -> None:
    """A million debit entries of 0.000001 on one credit, generated by the database.

    The amount is bound once, through the Money type (so it is stored in the
    column's own format); the rows come from the database's own generator:
    ``generate_series`` (PostgreSQL), the ``seq_1_to_N`` sequence engine
    (MariaDB), a recursive CTE (SQLite). Binding a million parameters from
    Python would take ten times longer and prove nothing more. Foreign keys
    are not checked for these rows (the credit exists; its foreign key is
    tested in test_constraints): a million probes would double the time.
    """
    generators = {
        "postgresql": "SELECT n FROM generate_series(1, :count) AS g(n)",
        "mariadb": f"SELECT seq AS n FROM seq_1_to_{MILLION}",
        "sqlite": "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g "
        "WHERE n < :count) SELECT n FROM g",
    }
    statement = sa.text(
        "INSERT INTO cloud_credit_ledger_entries "
        "(credit_id, type, amount, settlement_key, line_id, note, created_at) "
        "SELECT :credit_id, 'debit', :amount, :key, 'l1', '', :at "
        f"FROM ({generators[ledger.backend]}) AS s"
    ).bindparams(
        sa.bindparam("amount", type_=Money()),
        sa.bindparam("at", type_=schema.ledger_entries.c.created_at.type),
    )
    params = {"credit_id": credit_id, "amount": MICRO, "key": key, "at": T0}
    if ledger.backend != "mariadb":
        params["count"] = MILLION
    if ledger.backend == "postgresql":
        # Foreign-key triggers are skipped by a replica-role session (superuser).
        server = server_pool.get("postgresql")
        target = sa.make_url(ledger.url).database
        writer = sa.create_engine(server.admin_url_for(target), poolclass=sa.pool.NullPool)
    else:
        writer = engine
    try:
        with writer.begin() as conn:
            if ledger.backend == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif ledger.backend == "mariadb":
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
            else:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            inserted = conn.execute(statement, params).rowcount
            if ledger.backend == "mariadb":
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")
    finally:
        if writer is not engine:
            writer.dispose()
    assert inserted == MILLION


@pytest.mark.audits_ledger
def test_a_million_micro_debits_sum_exactly(
    ledger: Ledger, cli: Cli, server_pool: ServerPool
) -> None:
    """One million debits of 0.000001 on a real credit sum to exactly 1.000000.

    How: a purchased credit of 5.00 is bought and paid through the service.
    Its first settlement, invoice MICRO of one 1.000000 line, is recorded as
    the service records any settlement (settlement row, fingerprint,
    allocations) but with its debit split into a million ledger entries of
    0.000001, inserted in one statement (:func:`_insert_micro_debits`), and
    the credit's cached balances moved by 1.000000. Then:

    - the database's own sum agrees exactly (``SUM`` of ``NUMERIC`` on
      PostgreSQL/MariaDB; on SQLite the fixed-width text summed as integer
      micro-units, since SQLite's ``SUM`` of text goes through float);
    - the service keeps working from those balances to the last micro-unit:
      replaying MICRO returns the recorded 1.000000, and a second invoice of
      exactly the 4.000000 left takes the credit to 0 (exhausted);
    - then ``ovh-credit audit`` (the service's audit: it re-adds every ledger
      entry in Decimal and compares with the credits' cached ``used`` and the
      settlements' ``credit_applied``) must find no violation among 1,000,002
      entries: a single lost micro-unit, or any float on the way, would. (It
      is the ledger fixture's closing audit, run here to read its counts: the
      fixture does not run it a second time, ``audits_ledger``.)
    """
    service = ledger.service()
    engine = engine_of(ledger)
    try:
        order = service.create_order("micro", "5", at=T0)
        credit_id = service.pay_order(order.id, at=T0).credit_id
        assert credit_id is not None
        issued = dt.datetime(2026, 3, 1, tzinfo=UTC)
        key = "invoice/micro/MICRO"
        line = allocation.Line("l1", "compute", Decimal("1.000000"))

        started = time.monotonic()
        _insert_micro_debits(ledger, engine, server_pool, credit_id, key)
        credits, settlements = schema.credits, schema.settlements
        with engine.begin() as conn:
            if ledger.backend == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.execute(
                credits.update()
                .where(credits.c.id == credit_id)
                .values(used=Decimal("1.000000"), available=Decimal("4.000000"))
            )
            conn.execute(
                settlements.insert().values(
                    key=key,
                    project_id="micro",
                    invoice_id="MICRO",
                    currency="EUR",
                    total=Decimal(1),
                    credit_applied=Decimal(1),
                    amount_due=Decimal(0),
                    fingerprint=fingerprint("EUR", issued, [line]),
                    allocations=json.dumps([["l1", credit_id, "purchased", "1.000000"]]),
                    revision=1,
                    settled_at=issued,
                    created_at=T0,
                    updated_at=T0,
                )
            )
        inserted = time.monotonic() - started

        entries = schema.ledger_entries
        with engine.connect() as conn:
            where = (entries.c.credit_id == credit_id) & (entries.c.type == "debit")
            if ledger.backend == "sqlite":
                micro_units = sa.func.sum(
                    sa.cast(
                        sa.func.replace(sa.cast(entries.c.amount, sa.Text), ".", ""), sa.Integer
                    )
                )
                total = Decimal(conn.execute(sa.select(micro_units).where(where)).scalar_one())
                total = total.scaleb(-6)
            else:
                total = conn.execute(
                    sa.select(sa.func.sum(entries.c.amount)).where(where)
                ).scalar_one()
            assert total == Decimal("1.000000"), total
            counted = conn.execute(sa.select(sa.func.count()).where(where)).scalar_one()
            assert counted == MILLION

        invoice = {
            "id": "MICRO",
            "project_id": "micro",
            "currency": "EUR",
            "issued_at": "2026-03-01T00:00:00Z",
            "lines": [{"id": "l1", "product": "compute", "amount": "1.000000"}],
        }
        replay = service.settle_invoice(models.Invoice.model_validate(invoice), at=T0)
        assert (replay.replayed, replay.credit_applied) == (True, Decimal(1))
        rest = service.settle_invoice(
            models.Invoice.model_validate(
                {**invoice, "id": "REST", "lines": [{**invoice["lines"][0], "amount": "4.5"}]}
            ),
            at=T0,
        )
        assert (rest.credit_applied, rest.amount_due) == (Decimal(4), Decimal("0.5"))
        [credit] = service.list_credits("micro", at=T0)
        assert (credit.used, credit.available, credit.status) == (Decimal(5), 0, "exhausted")

        started = time.monotonic()
        report = cli.ok("audit")
        audited = time.monotonic() - started
        assert report["ok"] is True, report["violations"][:5]
        # The grant, the million micro-debits and REST's debit of 4.000000.
        assert report["checked"]["ledger_entries"] == MILLION + 2
        print(
            f"\n{ledger.backend}: {MILLION} micro-debits inserted in {inserted:.1f} s, "
            f"audited in {audited:.1f} s"
        )
    finally:
        service.close()
        engine.dispose()


def test_the_settlement_read_of_open_credits_equals_the_typed_read(
    ledger: Ledger, service: Any
) -> None:
    # Settlement reads open credits as raw driver rows and converts them
    # itself (ledger.credits.lock_open_credits); every other read (the whole
    # row, ledger.credits.row) goes through the column types. Both must give
    # the same values, exponents and zones.
    project = "raw-read"
    for amount in ("5.01", "1234.5", "99999.99"):
        order = service.create_order(project, amount, at=T0)
        service.pay_order(order.id, at=T0 + dt.timedelta(microseconds=123457))
    service.activate_voucher(project, "GPU-ONLY", at=T0)  # scoped: products too
    service.settle_invoice(models.Invoice.model_validate({
        "id": "inv-1", "project_id": project, "currency": "EUR",
        "issued_at": "2026-02-01T00:00:00Z",
        "lines": [{"id": "l1", "product": "compute", "amount": "0.000001"}],
    }))
    service.activate_voucher("raw-read-yen", "YEN-1000", at=T0)  # a credit without end
    with service.database.engine.begin() as conn:
        raw = [*credits.lock_open_credits(conn, [project])[project],
               *credits.lock_open_credits(conn, ["raw-read-yen"])["raw-read-yen"]]
        typed = {c.id: credits.row(conn, c.id) for c in raw}
    assert len(raw) == 5
    assert {c.valid_until is None for c in raw} == {True, False}
    for credit in raw:
        expected = typed[credit.id]
        for name in ("id", "project_id", "kind", "currency", "total", "used", "expired",
                     "voided", "available", "valid_from", "valid_until", "created_at",
                     "voided_at"):
            assert getattr(credit, name) == getattr(expected, name), name
        for name in ("total", "used", "expired", "voided", "available"):
            assert str(getattr(credit, name)) == str(getattr(expected, name)), name
        assert credit.products == frozenset(json.loads(expected.products))
        for name in ("valid_from", "valid_until", "created_at"):
            value = getattr(credit, name)
            assert value is None or value.utcoffset() == dt.timedelta(0), name


def test_the_listing_read_of_a_projects_credits_equals_the_typed_read(
    ledger: Ledger, service: Any
) -> None:
    # Listing a project's credits (every GET credits) reads raw driver rows
    # on the driver's cursor and converts them itself (ledger.credits.project_rows);
    # the whole row read through the column types must give the same values,
    # exponents and zones, the nullable columns set and unset.
    project = "listing-read"
    for amount in ("5.01", "1234.5"):
        order = service.create_order(project, amount, at=T0)
        service.pay_order(order.id, at=T0 + dt.timedelta(microseconds=123457))
    service.activate_voucher(project, "GPU-ONLY", at=T0)
    voided = service.list_credits(project, at=T0)[0].id
    service.void_credit(voided, reason="charge-back", at=T0 + dt.timedelta(seconds=1))
    service.activate_voucher("listing-read-yen", "YEN-1000", at=T0)  # a credit without end
    with service.database.engine.connect() as conn:
        listed = [*credits.project_rows(conn, project),
                  *credits.project_rows(conn, "listing-read-yen")]
        assert_equal_to_typed_reads(conn, listed)
    assert len(listed) == 4
    assert {r.voided_at is None for r in listed} == {True, False}
    assert {r.valid_until is None for r in listed} == {True, False}


def assert_equal_to_typed_reads(conn: Any, records: list[credits.CreditRecord]) -> None:
    """Each record has the values, exponents and UTC zones of its row read through
    the column types (``credits.row``)."""
    for record in records:
        expected = credits.row(conn, record.id)
        assert expected is not None
        assert tuple(record) == tuple(expected)
        assert [str(value) for value in record] == [str(value) for value in expected]
        for name in ("valid_from", "valid_until", "created_at", "voided_at"):
            value = getattr(record, name)
            assert value is None or value.utcoffset() == dt.timedelta(0), name


def test_the_credit_a_grant_returns_equals_the_typed_read(ledger: Ledger, service: Any) -> None:
    # A grant (every voucher activation and paid order) answers with the
    # credit it read back raw on the driver's cursor (ledger.credits.grant),
    # not through the column types; both must give the same values,
    # exponents and zones, with and without an end.
    ends = (T0 + dt.timedelta(days=90, microseconds=123457), None)
    with service.database.engine.begin() as conn:
        projects.ensure(conn, "grant-read", "EUR", at=T0)
        granted = [
            credits.grant(conn, project_id="grant-read", kind="voucher", source=f"CODE-{n}",
                          description="welcome", currency="EUR", amount=Decimal(amount),
                          products=("storage", "compute", "storage"), valid_from=T0,
                          valid_until=end, at=T0 + dt.timedelta(microseconds=1))
            for n, (amount, end) in enumerate(zip(("1234.567891", "5.10"), ends, strict=True))
        ]
        assert_equal_to_typed_reads(conn, granted)
    assert len({record.id for record in granted}) == 2
    assert [str(record.total) for record in granted] == ["1234.567891", "5.100000"]
    assert granted[0].products == '["compute", "storage"]'


def test_the_settlement_key_read_on_the_driver_equals_the_typed_read(
    ledger: Ledger, service: Any
) -> None:
    # Settling one invoice (every online settlement) reads its key's recorded
    # settlement raw on the driver's cursor (ledger.settlements.lock_recorded);
    # several keys go through the column types. Both give the same values.
    project = "recorded-read"
    order = service.create_order(project, "5.01", at=T0)
    service.pay_order(order.id, at=T0)
    for invoice, amount in (("inv-1", "1234.567891"), ("inv-2", "0.000001")):
        service.settle_invoice(models.Invoice.model_validate({
            "id": invoice, "project_id": project, "currency": "EUR",
            "issued_at": "2026-02-01T00:00:00Z",
            "lines": [{"id": "l1", "product": "compute", "amount": amount}],
        }))
    table = schema.settlements
    with service.database.engine.begin() as conn:
        keys = list(conn.execute(sa.select(table.c.key).where(table.c.project_id == project)
                                 .order_by(table.c.invoice_id)).scalars())
        one = {key: settlements.lock_recorded(conn, [key])[key] for key in keys}
        typed = settlements.lock_recorded(conn, keys)
    assert set(typed) == set(keys)
    for key in keys:
        assert tuple(one[key]) == tuple(typed[key])
        assert [str(v) for v in one[key]] == [str(v) for v in typed[key]]
    assert one[keys[0]].amount_due == Decimal("1229.557891")
