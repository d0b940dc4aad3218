"""Whole-transaction retries, proven on each backend with the drivers' own errors.

A SQLAlchemy ``before_cursor_execute`` hook raises a real driver exception
(psycopg ``SerializationFailure``/``DeadlockDetected``, pymysql
``OperationalError(1213/1020/1205)``, sqlite3 ``database is locked``) on the
*last* statement of a settlement, a payment confirmation and an expiry
batch: by then the transaction has already locked rows, updated balances
and inserted entries. Each test shows that

- the transaction is run again from its first statement (every attempt's
  statements are a prefix of the successful attempt's), and applied exactly
  once: ledger entries are counted, balances checked, and the ``service``
  fixture audits the ledger when the test ends;
- an error a retry cannot cure is raised at once (one attempt), nothing written;
- attempts are bounded by ``[cloud_credit] max_transaction_attempts``;
- a connection lost between two statements of the transaction (killed from an
  admin connection: ``pg_terminate_backend``, ``KILL CONNECTION``; on SQLite
  the connection closed under the transaction) is retried on a new
  connection, or, with one attempt allowed, fails cleanly: never half-applied.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService
from ovh_credit_plugin.service.voucher_throttle import Unblock
from tests.support.ledgers import Ledger, ServerPool

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
T_SETTLE = dt.datetime(2026, 3, 1, tzinfo=UTC)
T_EXPIRE = dt.datetime(2027, 4, 1, tzinfo=UTC)  # after 13 months

ErrorFactory = Callable[[], BaseException]


def retryable_errors(backend: str) -> dict[str, ErrorFactory]:
    """The errors concurrent writers cause, as each driver raises them."""
    if backend == "postgresql":
        from psycopg import errors

        return {
            "40001 serialization failure": lambda: errors.SerializationFailure(
                "could not serialize access due to concurrent update"
            ),
            "40P01 deadlock": lambda: errors.DeadlockDetected("deadlock detected"),
        }
    if backend == "mariadb":
        import pymysql

        return {
            "1213 deadlock": lambda: pymysql.err.OperationalError(
                1213, "Deadlock found when trying to get lock; try restarting transaction"
            ),
            "1020 Galera/snapshot conflict": lambda: pymysql.err.OperationalError(
                1020, "Record has changed since last read in table 'cloud_credit_credits'"
            ),
            "1205 lock wait timeout": lambda: pymysql.err.OperationalError(
                1205, "Lock wait timeout exceeded; try restarting transaction"
            ),
        }
    return {
        "database is locked": lambda: sqlite3.OperationalError("database is locked"),
        "database table is locked": lambda: sqlite3.OperationalError(
            "database table is locked"
        ),
    }


def fatal_errors(backend: str) -> dict[str, ErrorFactory]:
    """Errors a retry cannot cure."""
    if backend == "postgresql":
        from psycopg import errors

        return {
            "22003 numeric overflow": lambda: errors.NumericValueOutOfRange(
                "numeric field overflow"
            ),
            "42P01 undefined table": lambda: errors.UndefinedTable("relation does not exist"),
        }
    if backend == "mariadb":
        import pymysql

        return {
            "1264 out of range": lambda: pymysql.err.DataError(
                1264, "Out of range value for column 'amount'"
            ),
            "1146 no such table": lambda: pymysql.err.ProgrammingError(
                1146, "Table 'x.cloud_credit_settlements' doesn't exist"
            ),
        }
    return {
        "no such table": lambda: sqlite3.OperationalError("no such table: x"),
        "disk full": lambda: sqlite3.OperationalError("database or disk is full"),
    }


@dataclass
class Recorder:
    """Statements of every transaction on an engine, and failures injected into them."""

    engine: Engine
    transactions: list[list[str]] = field(default_factory=list)
    injected: int = 0

    def __post_init__(self) -> None:
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        self._hooks: list[Callable[..., None]] = []

    def reset(self) -> None:
        """Forget the recorded transactions and stop injecting."""
        self.transactions.clear()
        self.injected = 0
        self._hooks.clear()

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)

    def _begin(self, conn: Any) -> None:
        self.transactions.append([])

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # BEGIN IMMEDIATE (SQLite) is issued by another "begin" listener: not recorded.
        if self.transactions and not statement.startswith("BEGIN"):
            self.transactions[-1].append(_normalize(statement))
        for hook in self._hooks:
            hook(conn, statement)

    def fail(self, pattern: str, make_error: ErrorFactory, *, times: int) -> None:
        """Raise ``make_error()`` from the first ``times`` statements matching ``pattern``."""
        regex = re.compile(pattern, re.IGNORECASE)

        def hook(conn: Any, statement: str) -> None:
            if self.injected < times and regex.search(statement):
                self.injected += 1
                raise make_error()

        self._hooks.append(hook)

    def before(self, pattern: str, action: Callable[[Any], None], *, times: int) -> None:
        """Run ``action(connection)`` before the first ``times`` statements matching it."""
        regex = re.compile(pattern, re.IGNORECASE)

        def hook(conn: Any, statement: str) -> None:
            if self.injected < times and regex.search(statement):
                self.injected += 1
                action(conn)

        self._hooks.append(hook)

    def attempts_with(self, pattern: str) -> list[list[str]]:
        regex = re.compile(pattern, re.IGNORECASE)
        return [t for t in self.transactions if any(regex.search(s) for s in t)]


def _normalize(statement: str) -> str:
    return " ".join(statement.split())


@pytest.fixture
def recorder(service: CreditService) -> Iterator[Recorder]:
    found = Recorder(service.database.engine)
    yield found
    found.close()


def count_entries(ledger: Ledger) -> dict[tuple[int, str], int]:
    """(credit id, entry type) -> number of ledger entries."""
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)
    table = schema.ledger_entries
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.credit_id, table.c.type, sa.func.count()).group_by(
                    table.c.credit_id, table.c.type
                )
            )
            return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}
    finally:
        engine.dispose()


# -- the three operations under test ------------------------------------------------------
# Each: set up (committed before any failure is injected), the operation, the statement the
# failure hits (the transaction's last), and a check that it was applied exactly once.


@dataclass
class Operation:
    name: str
    last_statement: str
    first_statement: str
    prepare: Callable[[CreditService, str], Any]
    run: Callable[[CreditService, Any], Any]
    check: Callable[[CreditService, Ledger, Any, Any], None]


def _paid_credit(service: CreditService, project: str, amount: str = "100") -> int:
    order = service.create_order(project, amount, at=T0)
    paid = service.pay_order(order.id, at=T0)
    assert paid.credit_id is not None
    return paid.credit_id


def _invoice(project: str) -> models.Invoice:
    return models.Invoice.model_validate(
        {
            "id": f"INV-{project}",
            "project_id": project,
            "currency": "EUR",
            "issued_at": "2026-03-01T00:00:00Z",
            "lines": [
                {"id": "l1", "product": "compute", "amount": "10.000001"},
                {"id": "l2", "product": "storage", "amount": "5.5"},
            ],
        }
    )


def _check_settlement(service: CreditService, ledger: Ledger, credit_id: int, result: Any) -> None:
    assert result.credit_applied == Decimal("15.500001")
    assert result.replayed is False
    assert [(a.line_id, a.amount) for a in result.allocations] == [
        ("l1", Decimal("10.000001")),
        ("l2", Decimal("5.5")),
    ]
    counts = count_entries(ledger)
    assert counts[(credit_id, "debit")] == 2  # one per line, not one per attempt
    credit, entries = service.show_credit(credit_id, at=T_SETTLE)
    assert (credit.used, credit.available) == (Decimal("15.500001"), Decimal("84.499999"))
    assert [e.type for e in entries] == ["grant", "debit", "debit"]
    # A replay finds the recorded settlement: nothing was half-recorded.
    assert service.settle_invoice(_invoice(credit.project_id)).replayed is True


def _check_payment(service: CreditService, ledger: Ledger, order_id: str, result: Any) -> None:
    assert result.status == "paid"
    credits = service.list_credits(result.project_id)
    assert [(c.source, c.total) for c in credits] == [(order_id, Decimal(100))]
    assert result.credit_id == credits[0].id
    assert count_entries(ledger)[(credits[0].id, "grant")] == 1
    # A second confirmation changes nothing.
    again = service.pay_order(order_id, at=T0)
    assert again.credit_id == result.credit_id


def _check_expiry(service: CreditService, ledger: Ledger, credit_id: int, result: Any) -> None:
    # Each run finds only this subject's credit: a retried batch counts it once.
    assert (result.credits_expired, result.amount_expired) == (1, {"EUR": Decimal(100)})
    credit, entries = service.show_credit(credit_id, at=T_EXPIRE)
    assert (credit.expired, credit.available, credit.status) == (Decimal(100), 0, "expired")
    assert [e.type for e in entries] == ["grant", "expiry"]
    assert count_entries(ledger)[(credit_id, "expiry")] == 1


def _prepare_order(service: CreditService, project: str) -> str:
    return service.create_order(project, "100", at=T0).id


OPERATIONS = [
    Operation(
        "settlement",
        last_statement=r"^INSERT INTO cloud_credit_settlements",
        first_statement=r"^SELECT .* FROM cloud_credit_settlements",
        prepare=_paid_credit,
        run=lambda service, credit_id: service.settle_invoice(
            _invoice(service.show_credit(credit_id)[0].project_id), at=T_SETTLE
        ),
        check=_check_settlement,
    ),
    Operation(
        "payment confirmation",
        last_statement=r"^UPDATE cloud_credit_orders SET status",
        first_statement=r"^SELECT .* FROM cloud_credit_orders",
        prepare=_prepare_order,
        run=lambda service, order_id: service.pay_order(order_id, at=T0),
        check=_check_payment,
    ),
    Operation(
        "expiry",
        last_statement=r"^INSERT INTO cloud_credit_ledger_entries",
        first_statement=r"^SELECT cloud_credit_credits.id FROM cloud_credit_credits",
        prepare=_paid_credit,
        run=lambda service, credit_id: service.expire(at=T_EXPIRE),
        check=_check_expiry,
    ),
]
OPERATION_IDS = [op.name for op in OPERATIONS]


def _assert_rerun_whole(attempts: list[list[str]], failures: int, first: str) -> None:
    """Every failed attempt started like the successful one and stopped part-way through it."""
    assert len(attempts) == failures + 1, [a[:2] for a in attempts]
    success = attempts[-1]
    for failed in attempts[:-1]:
        assert failed == success[: len(failed)], "a retry must replay the whole transaction"
        assert len(failed) > 2, "the failure hit late in the transaction"
    starts = [a[0] for a in attempts]
    assert all(re.search(first, s, re.IGNORECASE) for s in starts), starts


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_retryable_errors_rerun_the_whole_transaction_and_apply_it_once(
    service: CreditService,
    ledger: Ledger,
    recorder: Recorder,
    operation: Operation,
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = retryable_errors(ledger.backend)
    for n, (kind, make_error) in enumerate(errors.items()):
        subject = operation.prepare(service, f"p-{n}")
        recorder.reset()
        failures = 2
        recorder.fail(operation.last_statement, make_error, times=failures)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ovh_credit_plugin.ledger.database"):
            result = operation.run(service, subject)
        assert recorder.injected == failures, f"{kind}: the failure was never injected"
        retries = [r for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == failures, kind
        _assert_rerun_whole(
            recorder.attempts_with(operation.last_statement), failures, operation.first_statement
        )
        recorder.reset()
        operation.check(service, ledger, subject, result)


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_an_error_a_retry_cannot_cure_is_raised_at_once_and_writes_nothing(
    service: CreditService, ledger: Ledger, recorder: Recorder, operation: Operation
) -> None:
    for n, (kind, make_error) in enumerate(fatal_errors(ledger.backend).items()):
        subject = operation.prepare(service, f"p-{n}")
        before = ledger.checksum()
        recorder.reset()
        recorder.fail(operation.last_statement, make_error, times=10)
        with pytest.raises(sa.exc.DBAPIError) as raised:
            operation.run(service, subject)
        assert type(raised.value.orig) is type(make_error()), kind
        assert recorder.injected == 1, f"{kind} was retried"
        assert len(recorder.attempts_with(operation.last_statement)) == 1
        recorder.reset()
        assert ledger.checksum() == before, f"{kind}: something was written"


@pytest.mark.parametrize("attempts", [1, 3])
def test_attempts_are_bounded_by_max_transaction_attempts(
    ledger: Ledger, attempts: int
) -> None:
    make_error = next(iter(retryable_errors(ledger.backend).values()))
    service = ledger.service(max_transaction_attempts=attempts)
    recorder = Recorder(service.database.engine)
    try:
        credit_id = _paid_credit(service, "p1")
        before = ledger.checksum()
        recorder.fail(r"^INSERT INTO cloud_credit_settlements", make_error, times=1000)
        with pytest.raises(sa.exc.OperationalError) as raised:
            service.settle_invoice(_invoice("p1"), at=T_SETTLE)
        assert type(raised.value.orig) is type(make_error())
        assert recorder.injected == attempts
        assert ledger.checksum() == before
        credit, entries = service.show_credit(credit_id)
        assert (credit.used, [e.type for e in entries]) == (0, ["grant"])
        assert service.audit().ok
    finally:
        recorder.close()
        service.close()


# -- a connection lost in the middle of a transaction ---------------------------------------


def connection_killer(backend: str, server_pool: ServerPool) -> Callable[[Any], None]:
    """Kills the server side of a connection from an admin connection (closes it on SQLite)."""
    if backend == "sqlite":

        def close(conn: Any) -> None:
            conn.connection.dbapi_connection.close()

        return close
    server = server_pool.get(backend)
    if backend == "postgresql":
        import psycopg

        def terminate(conn: Any) -> None:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(
                host=server.host, port=server.port, user=server.admin_user, dbname="postgres",
                autocommit=True,
            ) as admin:
                # The timeout makes it wait until the backend is gone.
                done = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
                assert done is not None and done[0] is True

        return terminate

    import pymysql

    def kill(conn: Any) -> None:
        thread_id = conn.connection.dbapi_connection.thread_id()
        admin = pymysql.connect(
            host=server.host, port=server.port, user=server.admin_user, autocommit=True
        )
        try:
            with admin.cursor() as cur:
                cur.execute(f"KILL CONNECTION {int(thread_id)}")
        finally:
            admin.close()

    return kill


# Between the balance update and the entries: the most harmful place to stop.
KILL_BEFORE = r"^INSERT INTO cloud_credit_ledger_entries"


def test_a_connection_lost_mid_transaction_is_retried_on_a_new_one(
    service: CreditService, ledger: Ledger, recorder: Recorder, server_pool: ServerPool
) -> None:
    credit_id = _paid_credit(service, "p1")
    recorder.reset()
    recorder.before(KILL_BEFORE, connection_killer(ledger.backend, server_pool), times=1)
    settlement = service.settle_invoice(_invoice("p1"), at=T_SETTLE)
    assert recorder.injected == 1
    attempts = recorder.attempts_with(KILL_BEFORE)
    assert len(attempts) == 2
    killed = attempts[0]
    assert any(s.startswith("UPDATE cloud_credit_credits") for s in killed), (
        "the connection must be lost after the balance update"
    )
    _check_settlement(service, ledger, credit_id, settlement)


def test_a_connection_lost_mid_transaction_without_retries_fails_cleanly(
    ledger: Ledger, server_pool: ServerPool
) -> None:
    service = ledger.service(max_transaction_attempts=1)
    recorder = Recorder(service.database.engine)
    try:
        credit_id = _paid_credit(service, "p1")
        before = ledger.checksum()
        recorder.before(KILL_BEFORE, connection_killer(ledger.backend, server_pool), times=1)
        with pytest.raises(sa.exc.DBAPIError) as raised:
            service.settle_invoice(_invoice("p1"), at=T_SETTLE)
        assert raised.value.connection_invalidated
        assert ledger.checksum() == before, "half a settlement was committed"
        # The pool recovers: the same service settles on a new connection.
        settlement = service.settle_invoice(_invoice("p1"), at=T_SETTLE)
        _check_settlement(service, ledger, credit_id, settlement)
        assert service.audit().ok
    finally:
        recorder.close()
        service.close()


# -- a COMMIT whose answer is lost -----------------------------------------------------------


@contextmanager
def commit_answers_lost(
    ledger: Ledger, server_pool: ServerPool, engine: Engine
) -> Iterator[dict[str, int]]:
    """``lost["left"] = n``: the next n COMMITs happen, then their answer is lost.

    PostgreSQL and MariaDB: the server commits, then the connection is killed
    before the client reads the answer. SQLite has no connection to lose: the
    commit is followed by the error a busy database gives, which the retry
    wrapper retries the same way (the transaction is run again, its first
    attempt committed).
    """
    real = engine.dialect.do_commit
    lost = {"left": 0}
    kill = None if ledger.backend == "sqlite" else connection_killer(ledger.backend, server_pool)

    def do_commit(dbapi_connection: Any) -> None:
        real(dbapi_connection)
        if lost["left"] > 0:
            lost["left"] -= 1
            if kill is None:
                raise sqlite3.OperationalError("database is locked")
            # SQLAlchemy may hand its pool's wrapper of the driver's connection.
            raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
            kill(SimpleNamespace(connection=SimpleNamespace(dbapi_connection=raw)))
            dbapi_connection.cursor().execute("SELECT 1")  # the client sees the broken link

    engine.dialect.do_commit = do_commit  # type: ignore[method-assign]
    try:
        yield lost
    finally:
        engine.dialect.do_commit = real  # type: ignore[method-assign]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("operation", ["order", "order with an idempotency key", "void"])
def test_a_commit_whose_answer_is_lost_is_retried_without_doing_it_twice(
    ledger: Ledger, server_pool: ServerPool, operation: str
) -> None:
    """The server commits, then the connection dies before the client reads the answer.

    The retry runs the transaction again: it must find what the first attempt
    did (docs/operations.md, "Retries and backoff"), not do it a second time:
    one order (one payment URL) for one request, one void entry.
    """
    service = ledger.service()
    try:
        credit_id = _paid_credit(service, "p1")
        with commit_answers_lost(ledger, server_pool, service.database.engine) as lost:
            lost["left"] = 1
            if operation.startswith("order"):
                key = "k-1" if operation.endswith("key") else None
                order, created = service.create_order_once("p1", "25", idempotency_key=key,
                                                           at=T0)
                # The order this request made: answered as made (201), and
                # its order.created sent (the attempt that committed sent nothing).
                assert created
                pending = [o.id for o in service.list_orders("p1", at=T0)
                           if o.status == "pending"]
                assert pending == [order.id]
            else:
                credit = service.void_credit(credit_id, reason="charge-back", at=T0)
                assert credit.status == "voided"
                _, entries = service.show_credit(credit_id)
                assert [e.type for e in entries] == ["grant", "void"]
            assert lost["left"] == 0, "no commit answer was lost"
    finally:
        service.close()


def _attempt_rows(ledger: Ledger, project: str) -> list[tuple[bool, str]]:
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)
    table = schema.voucher_attempts
    try:
        with engine.connect() as conn:
            return [(bool(r.succeeded), str(r.reason)) for r in conn.execute(
                sa.select(table).where(table.c.project_id == project).order_by(table.c.id))]
    finally:
        engine.dispose()


# limit 1: the lost answer is the project's last allowed try's; the retry
# counts its own reservation and must still find it by its key, not take the
# project for throttled.
@pytest.mark.parametrize("limit", [2, 1])
def test_a_voucher_try_whose_reservation_commit_is_lost_counts_once(
    ledger: Ledger, server_pool: ServerPool, limit: int
) -> None:
    """The throttle's reservation commits, its answer is lost, the transaction runs again.

    The retry finds the reservation its first attempt committed (the try's
    key is drawn before the transaction) instead of writing a second one,
    which would count this one try as two failures until the window ends.
    """
    service = ledger.service(voucher_max_failed_attempts=limit)
    try:
        # Catalog loaded and schema checked: the next COMMIT is the reservation's.
        service.activate_voucher("p0", "WELCOME-2026", at=T0)
        with commit_answers_lost(ledger, server_pool, service.database.engine) as lost:
            lost["left"] = 1
            with pytest.raises(exceptions.VoucherRefused) as refused:
                service.activate_voucher("p1", "NO-SUCH-1", at=T0)
            assert lost["left"] == 0, "no commit answer was lost"
        assert not isinstance(refused.value, exceptions.TooManyAttempts)
        rows = _attempt_rows(ledger, "p1")
        assert len(rows) == 1, rows
        assert rows[0][0] is False and "unknown voucher" in rows[0][1]
        # One try counted: the limit leaves p1 that many tries less one.
        for n in range(limit - 1):
            with pytest.raises(exceptions.VoucherRefused) as next_try:
                service.activate_voucher("p1", f"NO-SUCH-{n + 2}", at=T0)
            assert not isinstance(next_try.value, exceptions.TooManyAttempts)
        with pytest.raises(exceptions.TooManyAttempts):
            service.activate_voucher("p1", "WELCOME-2026", at=T0)
    finally:
        service.close()


def test_an_unblock_whose_commit_is_lost_is_recorded_once(
    ledger: Ledger, server_pool: ServerPool
) -> None:
    service = ledger.service(voucher_max_failed_attempts=1)
    try:
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p1", "NO-SUCH-1", at=T0)
        with commit_answers_lost(ledger, server_pool, service.database.engine) as lost:
            lost["left"] = 1
            done = service.unblock_vouchers("p1", reason="customer called", operator="ops",
                                            at=T0)
            assert lost["left"] == 0, "no commit answer was lost"
        # The retry finds its own record: it reports the unblock, not "not blocked",
        # every figure as the lost answer had it.
        assert done == Unblock("p1", True, 1, 1, done.id, 1, "customer called", "ops", T0)
        assert done.id is not None
        unblocks = [r for r in service.voucher_attempts("p1", at=T0) if r["event"] == "unblock"]
        assert [(r["unblock_id"], r["cleared"]) for r in unblocks] == [(done.id, 1)]
    finally:
        service.close()
