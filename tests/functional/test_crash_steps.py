"""Crash safety: ``kill -9`` inside every money-moving step, then the operator's recovery.

``test_crash.py`` kills batch settlement; this module kills the other steps
that move money, each on SQLite, PostgreSQL and MariaDB:

* **voucher activation** (``ovh-credit voucher activate PROJECT CODE``) with the
  HTTP voucher catalog on loopback (``tests/support/catalog_server.py``), for a
  voucher the catalog redeems and for one it refuses at the redemption (used
  up by another project between our GET and our POST);
* **payment confirmation** (``ovh-credit order pay ORDER_ID``);
* **void** (``ovh-credit credit void CREDIT_ID --reason ...``);
* **the expiry job** (``CreditService.expire`` in batches of 3, so that a run is
  several transactions; the recovery is the real ``ovh-credit expire``).

The victim is the real code in a ``forkserver`` child (``tests/support/victims.py``,
started in milliseconds like ``test_crash.py``'s), killed with a real SIGKILL at
one of these points, in turn:

* ``statement``: right after its N-th statement that changes or locks rows
  (INSERT, UPDATE, DELETE, SELECT ... FOR UPDATE), N drawn among those a clean
  run of the same step executes: the child stops itself (SIGSTOP) there, through
  SQLAlchemy events installed only in that child;
* ``time``: after a random delay over a clean run's duration (start-up, reads,
  the catalog, the transactions, exit), the parent stops the child (SIGSTOP);
* ``statement of the recovery``: after a quarter of the kills, the recovery
  command itself is killed once at one of its row-changing statements, before
  the recovery runs again to its end;
* ``catalog`` (activation only): while the loopback catalog holds the GET or the
  POST (the server received it, and, drawn at random, committed the redemption
  before holding or not): the kill lands while the request is in flight.

**Whether the kill landed inside an open transaction** is asked of the database
while the victim is stopped, just before the SIGKILL (the stop makes the answer
exact: nothing moves between the look and the kill):

* PostgreSQL: a backend of the victim's database (other than the probe's) with
  ``pg_stat_activity.xact_start`` set;
* MariaDB: a row of ``information_schema.innodb_trx`` whose thread serves the
  victim's database;
* SQLite: a RESERVED lock, i.e. a probe connection's ``BEGIN IMMEDIATE`` with a
  zero timeout fails as ``database is locked`` (the ledger starts every write
  transaction with ``BEGIN IMMEDIATE``; a read-only transaction is not seen).

The share of kills inside a transaction is printed per step and backend
(``pytest -s``) and must be above zero for every step; docs/testing.md gives
the figures observed. A kill right after a row-changing statement must find
a transaction open (no money-moving write runs in autocommit); a kill while
the catalog holds a request must not (no transaction waits on the network).

After each kill, the recovery the docs give an operator: the same command again
(``voucher activate``: "running the same activation again finishes it";
``order pay``: the provider re-sends the confirmation, here twice; ``credit
void`` with the same reason; ``expire`` again), then ``ovh-credit audit`` must
exit 0, and the outcome must be the expected one: one purchased credit per
paid order; one voucher credit per redemption the catalog holds for the
project (read from the catalog server itself), none for a voucher it refused,
no activation left pending; a voided credit voided once (one void entry); one
expiry entry per credit, nothing left available, pending orders lapsed.

Kills per step and backend: 6 for activation and 4 for the other steps
(``OVH_CREDIT_CRASH=long``: 30 each; ``OVH_CREDIT_CRASH_STEP_KILLS=N`` sets any
count). ``OVH_CREDIT_CRASH_SEED`` replays the choices of a run (printed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from tests.support import victims, workload
from tests.support.catalog_server import CatalogServer, Fault, running
from tests.support.clock import TEST_NOW
from tests.support.ledgers import PURCHASE_LIMITS, ServerPool

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 2, 1, tzinfo=UTC)
LONG = os.environ.get("OVH_CREDIT_CRASH") == "long"
#: One seed for the module's tests (each step and backend draws from its own stream).
SEED = int(os.environ.get("OVH_CREDIT_CRASH_SEED") or random.randrange(2**31))
STEPS = ("activation", "payment", "void", "expiry")
EXPIRY_BATCH = 3
#: The share of kills after which the recovery is killed too, before it runs again.
RECOVERY_KILLED = 0.25

pytestmark = pytest.mark.timeout(900)


def kills_for(step: str) -> int:
    if os.environ.get("OVH_CREDIT_CRASH_STEP_KILLS"):
        return int(os.environ["OVH_CREDIT_CRASH_STEP_KILLS"])
    if LONG:
        return 30
    return 6 if step == "activation" else 4


# -- looking at the victim's transaction ---------------------------------------------


#: InnoDB answers INNODB_TRX from a buffer it refills only when the buffer's last
#: read is more than 0.1 s old (MySQL's and MariaDB's "Persistence and Consistency of
#: InnoDB Transaction and Locking Information"), while PROCESSLIST is read live. A
#: probe sooner after the previous one saw the previous victim's transaction, joined
#: with a processlist that no longer held it: "no transaction open" (a CI failure).
INNODB_TRX_REFILL = 0.15


class Probe:
    """Asks the database whether another connection to the ledger has a transaction open."""

    def __init__(self, backend: str, url: str, pool: ServerPool) -> None:
        self.backend = backend
        self.url = url
        self.engine: sa.Engine | None = None
        self._innodb_trx_read = 0.0
        self.reader: sa.Engine
        if backend == "sqlite":
            self.reader = sa.create_engine(url, poolclass=sa.pool.NullPool)
        else:
            database = sa.engine.make_url(url).database
            assert database
            self.user = pool.get(backend).user  # the ledger's user: the processes we kill
            self.engine = sa.create_engine(pool.get(backend).admin_url_for(database),
                                           pool_size=1)
            self.reader = self.engine

    def open_transaction(self) -> bool:
        if self.engine is None:
            path = self.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                assert "locked" in str(error), error
                return True
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
            return False
        return self._others(transactions=True) > 0

    def _others(self, *, transactions: bool) -> int:
        assert self.engine is not None
        if self.backend == "postgresql":
            query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                     " AND usename = %(user)s AND pid <> pg_backend_pid()")
            if transactions:
                query += " AND xact_start IS NOT NULL"
        elif transactions:
            query = ("SELECT count(*) FROM information_schema.innodb_trx t"
                     " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                     " WHERE p.db = DATABASE() AND p.user = %(user)s")
            time.sleep(max(0.0, self._innodb_trx_read + INNODB_TRX_REFILL - time.monotonic()))
        else:
            # The template's admin connection may sit in this database: the
            # ledger's user is who counts.
            query = ("SELECT count(*) FROM information_schema.processlist"
                     " WHERE db = DATABASE() AND user = %(user)s")
        with self.engine.connect() as conn:
            found = int(conn.exec_driver_sql(query, {"user": self.user}).scalar_one())
        if transactions and self.backend != "postgresql":
            self._innodb_trx_read = time.monotonic()
        return found

    def wait_quiet(self) -> None:
        """Until the server has let go of every connection of the processes that ended
        (a killed one's backend finds its socket closed a moment later)."""
        if self.engine is None:
            return
        deadline = time.monotonic() + 60
        while self._others(transactions=False):
            assert time.monotonic() < deadline, "a dead process's connection stays open"
            time.sleep(0.005)

    def close(self) -> None:
        self.reader.dispose()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return "gone"


def _stopped(process: Any) -> bool:
    """Until the process is stopped (True) or has ended (False)."""
    while process.exitcode is None:
        state = _state(process.pid)
        if state in ("T", "t"):
            return True
        if state in ("Z", "X", "gone"):
            return False
        time.sleep(0.0005)
    return False


# -- the harness ----------------------------------------------------------------------


@dataclass
class Tally:
    kills: int = 0
    in_transaction: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)
    in_transaction_by_mode: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    finished_first: int = 0  # runs that ended before the planned kill point
    seconds: float = 0.0

    def share(self) -> float:
        return self.in_transaction / self.kills if self.kills else 0.0


@dataclass
class Clean:
    """What a clean run of a step did: its duration, its row-changing statements."""

    seconds: float
    changing: int
    statements: int
    first_sql: float  # seconds from the start to its first statement


class Harness:
    def __init__(self, backend: str, url: str, config: Path, tmp_path: Path, pool: ServerPool,
                 rng: random.Random) -> None:
        self.backend = backend
        self.url = url
        self.config = config
        self.log = tmp_path / "victims.log"
        self.context = workload.fork_context()
        self.probe = Probe(backend, url, pool)
        self.rng = rng
        self.tally = Tally()
        self.runs = 0

    def service(self) -> Any:
        return workload.service_from_config(self.config)

    def argv(self, *args: str) -> list[str]:
        return ["--config-file", str(self.config), "--now", TEST_NOW.isoformat(), *args]

    def start(self, job: tuple[Any, ...], stop_after: int | None = None, *,
              log: Path | None = None) -> tuple[Any, Any]:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(target=victims.run,
                                       args=(job, str(log or self.log), writer, stop_after))
        process.start()
        writer.close()
        return process, reader

    def run(self, job: tuple[Any, ...]) -> int:
        """Run ``job`` to its end (a clean run or a recovery); its exit status."""
        process, reader = self.start(job)
        process.join(timeout=300)
        reader.close()
        assert process.exitcode is not None, "a recovery run did not end"
        return int(process.exitcode)

    def cli(self, *args: str) -> int:
        return self.run(("cli", self.argv(*args)))

    def cli_output(self, *args: str) -> str:
        """What a successful CLI run printed (stdout and stderr)."""
        self.runs += 1
        log = self.log.with_name(f"run-{self.runs}.log")
        process, reader = self.start(("cli", self.argv(*args)), log=log)
        process.join(timeout=300)
        reader.close()
        assert process.exitcode == 0, log.read_text()[-3000:]
        return log.read_text()

    def clean(self, job: tuple[Any, ...]) -> Clean:
        began = time.monotonic()
        process, reader = self.start(job)
        messages = _drain(reader, process, until="sql")
        first_sql = time.monotonic() - began
        messages += _drain(reader, process)
        process.join(timeout=300)
        seconds = time.monotonic() - began
        assert process.exitcode is not None
        sql = [m for m in messages if m[0] == "sql"]
        return Clean(seconds, sum(1 for m in sql if m[2]), len(sql), first_sql)

    def kill(self, process: Any, reader: Any, mode: str, *, delay: float = 0.0,
             from_sql: bool = False,
             arrived: threading.Event | None = None,
             look: Callable[[], None] | None = None) -> bool | None:
        """Stop the victim at its kill point, ask the database, SIGKILL it.

        Returns whether a transaction was open, or None when the run ended
        before its kill point (nothing killed).
        """
        if mode.startswith("statement"):
            while not any(m[0] == "stopped" for m in _drain(reader, process, until="stopped")):
                if process.exitcode is not None:
                    break
        elif mode == "time":
            if from_sql:  # somewhere in its work with the ledger, not in its start-up
                _drain(reader, process, until="sql")
            time.sleep(delay)
            if process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGSTOP)
        else:
            assert arrived is not None
            while not arrived.wait(0.05) and process.exitcode is None:
                pass
            if arrived.is_set() and process.exitcode is None:
                os.kill(process.pid, signal.SIGSTOP)
        if not _stopped(process):
            process.join(timeout=300)
            reader.close()
            self.tally.finished_first += 1
            return None
        inside = self.probe.open_transaction()
        if look is not None:
            look()
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=60)
        reader.close()
        # Its transaction must be gone before the next probe (and the next run).
        self.probe.wait_quiet()
        assert process.exitcode == -signal.SIGKILL, process.exitcode
        if mode.startswith("statement"):
            # A row changed or locked and not committed: only inside a transaction
            # (a write in autocommit would be committed, alone, at once).
            assert inside, f"no transaction open after a row-changing statement ({mode})"
        self.tally.kills += 1
        self.tally.in_transaction += inside
        if mode == "time":
            mode = "time from the first statement" if from_sql else "time from the start"
        self.tally.by_mode[mode] += 1
        self.tally.in_transaction_by_mode[mode] += inside
        return inside

    def audit(self, what: str) -> None:
        assert self.cli("audit", "-f", "json") == 0, (
            f"audit after {what}: {self.log.read_text()[-3000:]}")

    def rows(self, query: Any) -> list[Any]:
        """The ledger's rows, read by the test (on a server: as the administrator, whose
        connections the probe does not count)."""
        with self.probe.reader.connect() as conn:
            return list(conn.execute(query))

    def close(self) -> None:
        self.probe.close()


def _drain(reader: Any, process: Any, *, until: str | None = None) -> list[tuple[Any, ...]]:
    """The child's messages, until ``until`` arrives or the child has ended."""
    messages = []
    while True:
        try:
            ready = reader.poll(0.05)
        except (OSError, EOFError):
            return messages
        if ready:
            try:
                message = reader.recv()
            except (EOFError, OSError):
                return messages
            messages.append(message)
            if message[0] == until or message[0] == "exit":
                return messages
        elif process.exitcode is not None:
            return messages


def config_text(url: str, catalog: CatalogServer | None) -> str:
    text = (
        "[cloud_credit]\n"
        f"connection = {url}\n"
        "payment_url_template = https://pay.example/orders/{order_id}\n"
        "sqlite_busy_timeout = 120\n"
        + PURCHASE_LIMITS
    )
    if catalog is not None:
        text += ("[voucher_catalog]\n"
                 "driver = http\n"
                 f"endpoint = {catalog.url}\n"
                 "timeout = 120\n")
    return text




def iso(moment: dt.datetime) -> str:
    return workload.iso(moment)


# -- the steps ------------------------------------------------------------------------

C, E, ORD, A = (schema.credits.c, schema.ledger_entries.c, schema.orders.c,
                schema.voucher_activations.c)


def entries_of(h: Harness, credit_id: int, kind: str) -> int:
    return len(h.rows(sa.select(E.id).where(E.credit_id == credit_id, E.type == kind)))


def paid_order(service: Any, project: str, at: dt.datetime) -> Any:
    order = service.create_order(project, "100.00", currency="EUR", at=at)
    return service.pay_order(order.id, at=at + dt.timedelta(minutes=5))


class Step:
    modes: tuple[str, ...] = ("statement", "time")

    def __init__(self, h: Harness) -> None:
        self.h = h

    def prepare(self, number: int) -> Any:
        raise NotImplementedError

    def job(self, state: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def recover(self, state: Any) -> None:
        raise NotImplementedError

    def check(self, state: Any, what: str) -> None:
        raise NotImplementedError

    def scenario(self, state: Any) -> str:
        return "-"

    def recovery_job(self, state: Any) -> tuple[Any, ...]:
        """The operator's command (the one :meth:`recover` runs first)."""
        return self.job(state)


class Payment(Step):
    def prepare(self, number: int) -> Any:
        service = self.h.service()
        try:
            return service.create_order(f"pay-{number}", "100.00", currency="EUR", at=T0).id
        finally:
            service.close()

    def job(self, state: Any) -> tuple[Any, ...]:
        return ("cli", self.h.argv("order", "pay", state, "--at", iso(T0 + dt.timedelta(hours=1)),
                                   "-f", "json"))

    def recover(self, state: Any) -> None:
        # The payment provider re-sends its confirmation (here: twice).
        for _ in range(2):
            assert self.h.run(self.job(state)) == 0, self.h.log.read_text()[-3000:]

    def check(self, state: Any, what: str) -> None:
        credits = self.h.rows(sa.select(C.id, C.total, C.available).where(
            C.kind == "purchased", C.source == state))
        assert len(credits) == 1, f"{what}: order {state} has credits {credits}"
        order = self.h.rows(sa.select(ORD.status, ORD.credit_id).where(ORD.id == state))
        assert [tuple(r) for r in order] == [("paid", credits[0].id)], what
        assert credits[0].total == Decimal("100.00") == credits[0].available, what
        assert entries_of(self.h, credits[0].id, "grant") == 1, what


class Void(Step):
    REASON = "charge-back"

    def prepare(self, number: int) -> Any:
        service = self.h.service()
        try:
            return paid_order(service, f"void-{number}", T0).credit_id
        finally:
            service.close()

    def job(self, state: Any) -> tuple[Any, ...]:
        return ("cli", self.h.argv("credit", "void", str(state), "--reason", self.REASON,
                                   "--at", iso(T0 + dt.timedelta(hours=2)), "-f", "json"))

    def recover(self, state: Any) -> None:
        assert self.h.run(self.job(state)) == 0, self.h.log.read_text()[-3000:]

    def check(self, state: Any, what: str) -> None:
        (credit,) = self.h.rows(sa.select(C.total, C.voided, C.available, C.void_reason,
                                               C.voided_at).where(C.id == state))
        assert credit.voided_at is not None and credit.void_reason == self.REASON, what
        assert credit.voided == credit.total and credit.available == 0, what
        assert entries_of(self.h, state, "void") == 1, what


class Expiry(Step):
    def prepare(self, number: int) -> Any:
        service = self.h.service()
        try:
            at = T0 + dt.timedelta(days=number)
            for index in range(8):
                paid_order(service, f"exp-{number}-{index % 3}", at)
            return [service.create_order(f"exp-{number}-{index}", "20.00", currency="EUR",
                                         at=at).id for index in range(2)]
        finally:
            service.close()

    def job(self, state: Any) -> tuple[Any, ...]:
        return ("expire", str(self.h.config), EXPIRY_BATCH)

    def recovery_job(self, state: Any) -> tuple[Any, ...]:
        return ("cli", self.h.argv("expire", "-f", "json"))

    def recover(self, state: Any) -> None:
        assert self.h.run(self.recovery_job(state)) == 0, self.h.log.read_text()[-3000:]

    def check(self, state: Any, what: str) -> None:
        credits = self.h.rows(sa.select(C.id, C.total, C.expired, C.available))
        expiries = Counter(r.credit_id for r in self.h.rows(
            sa.select(E.credit_id).where(E.type == "expiry")))
        for credit in credits:
            assert credit.available == 0 and credit.expired == credit.total, (what, credit)
            assert expiries[credit.id] == 1, (what, credit.id, expiries[credit.id])
        statuses = self.h.rows(sa.select(ORD.status).where(ORD.id.in_(state)))
        assert [r.status for r in statuses] == ["expired", "expired"], what


@dataclass
class Activation:
    project: str
    code: str
    refused: bool
    rival: str


class VoucherActivation(Step):
    modes = ("statement", "catalog", "time")

    def __init__(self, h: Harness, catalog: CatalogServer) -> None:
        super().__init__(h)
        self.catalog = catalog

    def prepare(self, number: int) -> Any:
        code = f"KILL-{number:04d}"
        self.catalog.vouchers[code] = {
            "code": code, "amount": "12.50", "currency": "EUR", "max_redemptions": 1,
            "validity_days": 30, "description": "kill -9 test",
        }
        # Every third voucher is used up by another project between our GET and our POST:
        # the catalog refuses our redemption.
        state = Activation(f"va-{number}", code, number % 3 == 1, f"rival-{number}")
        if state.refused:
            self.catalog.inject(Fault("hold", method="GET", path=code,
                                      before_reply=lambda: self.rival_redeems(state)))
        return state

    def rival_redeems(self, state: Activation) -> None:
        redeemed = self.catalog.redemptions_of(state.code)
        if not any(r["project_id"] == state.rival for r in redeemed):
            status, _ = self.catalog.redeem(state.code, {"project_id": state.rival,
                                                         "idempotency_key": state.rival})
            assert status == 201, status

    def arm(self, state: Activation, method: str, work_first: bool) -> threading.Event:
        """The catalog holds this activation's next ``method`` request."""
        arrived = threading.Event()
        fault = Fault("hold", method=method, path=state.code, work_first=work_first,
                      arrived=arrived, release=threading.Event())
        if state.refused and method == "GET":
            fault.before_reply = lambda: self.rival_redeems(state)
            self.catalog.clear_faults()  # this one replaces the plain hook
        self.catalog.inject(fault)
        return arrived

    def phase(self, state: Activation) -> str:
        calls = [c for c in self.catalog.calls() if state.code in c.path]
        gets = [c for c in calls if c.method == "GET"]
        posts = [c for c in calls if c.method == "POST"
                 and c.body.get("project_id") == state.project]
        if posts:
            return "after the POST was sent"
        if gets:
            return "after the GET was sent"
        return "before the catalog"

    def after_kill(self, state: Activation) -> None:
        self.catalog.clear_faults()  # releases a held request too
        if state.refused:
            self.rival_redeems(state)  # the voucher is used up, whatever the victim saw

    def job(self, state: Any) -> tuple[Any, ...]:
        return ("cli", self.h.argv("voucher", "activate", state.project, state.code,
                                   "-f", "json"))

    def recover(self, state: Any) -> None:
        # docs/voucher-catalog.md: the operator lists the half-done activations,
        # "Running the same activation again finishes it" (the customer's retry
        # does the same). A redemption the catalog holds without a credit in the
        # ledger must be listed: it is how the operator learns of it.
        listed = json.loads(self.h.cli_output("voucher", "pending", "--show-codes",
                                              "-f", "json"))
        ours = [r for r in self.catalog.redemptions_of(state.code)
                if r["project_id"] == state.project]
        granted = self.h.rows(sa.select(C.id).where(
            C.project_id == state.project, C.kind == "voucher", C.source == state.code))
        if ours and not granted:
            assert {"project_id": state.project, "code": state.code} in [
                {"project_id": r["project_id"], "code": r["code"]} for r in listed
            ], f"redeemed at the catalog, not granted, not listed as pending: {listed}"
        code = self.h.run(self.job(state))
        if state.refused:
            assert code != 0, "a voucher the catalog refused was activated"
        else:
            assert code == 0, self.h.log.read_text()[-3000:]

    def check(self, state: Any, what: str) -> None:
        ours = [r for r in self.catalog.redemptions_of(state.code)
                if r["project_id"] == state.project]
        assert len(ours) == (0 if state.refused else 1), (what, ours)
        credits = self.h.rows(sa.select(C.id, C.total).where(
            C.project_id == state.project, C.kind == "voucher", C.source == state.code))
        assert len(credits) == len(ours), f"{what}: credits {credits}, redemptions {ours}"
        assert all(c.total == Decimal("12.50") for c in credits), what
        activations = self.h.rows(sa.select(A.status, A.redemption_id).where(
            A.project_id == state.project))
        assert [tuple(a) for a in activations] == [("granted", r["id"]) for r in ours], (
            f"{what}: activations {activations} (none may stay pending)")
        if state.refused:
            # Nothing holds the project: its currency is not stuck on the voucher's.
            service = self.h.service()
            try:
                service.create_order(state.project, "10.00", currency="USD", at=T0)
            finally:
                service.close()

    def check_all(self) -> None:
        """Over every round: one voucher credit per redemption the catalog holds for us."""
        with self.catalog.lock:
            redeemed = sorted((r["project_id"], r["code"]) for r in
                              self.catalog.redemptions.values()
                              if not r["project_id"].startswith("rival-"))
        granted = sorted(tuple(r) for r in self.h.rows(sa.select(C.project_id, C.source)
                                                 .where(C.kind == "voucher")))
        assert granted == redeemed

    def scenario(self, state: Any) -> str:
        return "refused" if state.refused else "redeemed"


# -- the test -------------------------------------------------------------------------


@pytest.fixture
def catalog() -> Iterator[CatalogServer]:
    with running(vouchers=[]) as server:
        yield server


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_inside_a_money_step(
    step: str, backend: str, server_pool: ServerPool, catalog: CatalogServer, tmp_path: Path
) -> None:
    seed = SEED
    target = kills_for(step)
    print(f"\nkill -9 inside {step} on {backend}: {target} kills, seed {seed} "
          f"(OVH_CREDIT_CRASH_SEED={seed} replays it)")
    rng = random.Random(f"{seed}-{step}-{backend}")
    template = server_pool.template(backend)
    url = template.clone()
    config = tmp_path / "ovh-credit.conf"
    config.write_text(config_text(url, catalog if step == "activation" else None))
    h = Harness(backend, url, config, tmp_path, server_pool, rng)
    steps: dict[str, Callable[[], Step]] = {
        "activation": lambda: VoucherActivation(h, catalog),
        "payment": lambda: Payment(h),
        "void": lambda: Void(h),
        "expiry": lambda: Expiry(h),
    }
    began = time.monotonic()
    try:
        run_step(steps[step](), h, target, f"{step} on {backend} (seed {seed})")
    finally:
        h.close()
        template.drop(url)
    h.tally.seconds = round(time.monotonic() - began, 1)
    tally = h.tally
    print(f"{step} on {backend}: {tally.in_transaction}/{tally.kills} kills inside an open "
          f"transaction ({tally.share():.0%}); by mode {dict(tally.by_mode)}, inside "
          f"{dict(tally.in_transaction_by_mode)}; phases {dict(tally.phases)}; "
          f"{tally.finished_first} runs ended before their kill point; {tally.seconds} s")
    assert tally.kills >= target
    assert tally.in_transaction > 0, f"no kill of {step} landed inside a transaction: {tally}"


def run_step(step: Step, h: Harness, target: int, label: str) -> None:
    # Clean runs (one per scenario) give the kill points: their duration and
    # their row-changing statements; recovering a finished run changes nothing.
    cleans: dict[str, Clean] = {}
    number = 0
    while len(cleans) < (2 if isinstance(step, VoucherActivation) else 1):
        state = step.prepare(number)
        clean = h.clean(step.job(state))
        if isinstance(step, VoucherActivation):
            step.after_kill(state)
        step.recover(state)
        step.check(state, f"{label}: clean run {number}")
        h.audit(f"clean run {number}")
        assert clean.changing > 0, clean
        cleans.setdefault(step.scenario(state), clean)
        number += 1
    if isinstance(step, VoucherActivation):
        step.check_all()

    tries = 0
    first_mode = h.rng.randrange(len(step.modes))
    while h.tally.kills < target:
        tries += 1
        assert tries <= 4 * target, f"{label}: too many runs ended before their kill point"
        state = step.prepare(number)
        clean = cleans[step.scenario(state)]
        mode = step.modes[(first_mode + tries) % len(step.modes)]
        arrived = None
        look = None
        stop_after = None
        if mode == "statement":
            stop_after = h.rng.randint(1, clean.changing)
        if isinstance(step, VoucherActivation):
            look = lambda state=state: h.tally.phases.update([step.phase(state)])  # noqa: E731
            if mode == "catalog":
                method = h.rng.choice(("GET", "POST"))
                work_first = h.rng.random() < 0.5
                arrived = step.arm(state, method, work_first)
                held = f"while the catalog held the {method}" + (
                    " (redemption committed)" if method == "POST" and work_first else "")
                look = lambda held=held: h.tally.phases.update([held])  # noqa: E731
        process, reader = h.start(step.job(state), stop_after)
        # A time kill: half of them anywhere from the start (mostly the start-up
        # of the CLI), half from the run's first statement on.
        from_sql = h.rng.random() < 0.5
        delay = h.rng.uniform(0, clean.seconds - clean.first_sql if from_sql else clean.seconds)
        inside = h.kill(process, reader, mode, delay=delay, from_sql=from_sql, arrived=arrived,
                        look=look)
        what = f"{label}: run {number}, {mode} kill"
        if isinstance(step, VoucherActivation):
            step.after_kill(state)
        if mode == "catalog" and inside is not None:
            assert not inside, f"{what}: a transaction was open while the catalog held a request"
        if inside is not None and h.rng.random() < RECOVERY_KILLED:
            # The recovery dies too, once, at one of its row-changing statements.
            process, reader = h.start(step.recovery_job(state), h.rng.randint(1, clean.changing))
            h.kill(process, reader, "statement of the recovery")
            if isinstance(step, VoucherActivation):
                step.after_kill(state)
        # The operator's recovery, then the audit and the outcome.
        step.recover(state)
        h.audit(what)
        step.check(state, what)
        number += 1
    if isinstance(step, VoucherActivation):
        step.check_all()
