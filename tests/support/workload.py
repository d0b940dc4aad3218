"""A multi-process "bank" workload on one shared ledger, and the checks that prove it.

N worker *processes* share a set of projects and, until a deadline, settle
overlapping invoices (the same invoice ids in several workers, in batches of
random sizes, replays, conflicting replays), confirm payments (every order is
paid by several workers, some with a wrong amount; contested orders are
cancelled by others at the same time), activate vouchers from the file
catalog (one with ``max_redemptions``), void credits and run the expiry job,
with simulated ``at`` times that move forward. Afterwards the parent settles
every invoice of the plan once more and checks the ledger against what the
workers were told (see :func:`verify`).

Run it on its own (the pytest module ``test_workload.py`` calls the same code)::

    python -m tests.support.workload run --url sqlite:////tmp/wl.sqlite \\
        --processes 8 --duration 60 --seed 1234

``run`` migrates the (empty) database at ``--url``, writes the plan, config
and vouchers under ``--workdir`` (a temporary directory by default), starts
``--processes`` workers, each ``python -m tests.support.workload worker
--plan PLAN --index I``, releases them together, waits, then verifies and
prints a JSON report. Exit status 0: every check passed.

The module also holds small helpers shared by the other proofs of issue 5
(config files, migration, wiping a ledger, a preloaded ``forkserver``).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime as dt
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support.clock import TEST_NOW
from tests.support.ledgers import PURCHASE_LIMITS

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
ZERO = Decimal(0)
ROOT = Path(__file__).resolve().parents[2]

PRODUCTS = ("compute", "storage", "gpu", "network")
LIMITED_CODE = "LIMITED-3"
LIMITED_MAX = 3
VOUCHERS: dict[str, list[dict[str, Any]]] = {
    "vouchers": [
        {"code": "WELCOME-2026", "amount": "50.00", "currency": "EUR", "status": "active",
         "validity_days": 90, "products": [], "description": "Welcome voucher"},
        {"code": LIMITED_CODE, "amount": "15.00", "currency": "EUR", "status": "active",
         "validity_days": 60, "products": [], "max_redemptions": LIMITED_MAX,
         "description": "First three projects"},
        {"code": "GPU-ONLY", "amount": "20.00", "currency": "EUR", "status": "active",
         "valid_until": "2026-09-01T00:00:00Z", "products": ["gpu"],
         "description": "GPU trial"},
        {"code": "YEN-1000", "amount": "1000", "currency": "JPY", "status": "active",
         "validity_days": 120, "products": []},
        {"code": "REVOKED-1", "amount": "10.00", "currency": "EUR", "status": "revoked"},
    ]
}
CODES = tuple(v["code"] for v in VOUCHERS["vouchers"])

# Projects whose outcome no interleaving can change (the independent model of
# :func:`_check_outcomes`): the parent gives each one unscoped voucher that never
# ends before the workers start, nothing else ever grants, voids or re-rates
# their credit, and the workers settle their invoices with all the others. Every
# invoice is settled once, each at a time when the voucher is valid and unexpired,
# so each project is applied exactly min(voucher, invoiced), whatever the order:
# "covered" holds more than its invoices (every invoice paid in full), "short"
# less (used up to the cent).
FIXED_PROJECTS = {"wl-covered": "covered", "wl-short": "short"}
FIXED_INVOICES = 20


def fixed_code(project: str) -> str:
    return f"NO-END-{FIXED_PROJECTS[project].upper()}"

# CloudKitty-like periods per project, re-rated again and again (Worker.rerate).
RERATED_PERIODS = 3
# The moment of the last, concurrent expiry run: after every credit's end.
END = T0 + dt.timedelta(days=2000)

# Batch settlements each worker makes at least, however long that takes.
MIN_BATCHES = 5
# Per profile: worker processes, seconds, invoices in the plan.
PROFILES = {"short": (4, 6.0, 500), "long": (8, 60.0, 6000)}


# -- helpers shared by the issue-5 proofs --------------------------------------------


def write_ledger_files(
    workdir: Path, url: str, *, vouchers: dict[str, Any] | None = None, extra: str = ""
) -> Path:
    """A config file (file voucher catalog, no throttling to speak of); returns its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    vouchers_path = workdir / "vouchers.json"
    vouchers_path.write_text(json.dumps(vouchers or VOUCHERS))
    config = workdir / "ovh-credit.conf"
    config.write_text(
        "[cloud_credit]\n"
        f"connection = {url}\n"
        "payment_url_template = https://pay.example/orders/{order_id}\n"
        "voucher_max_failed_attempts = 1000000\n"
        "sqlite_busy_timeout = 120\n"
        + PURCHASE_LIMITS
        + f"{extra}"
        "[voucher_catalog]\n"
        "driver = file\n"
        f"file_path = {vouchers_path}\n"
    )
    return config


def migrate(url: str) -> None:
    from ovh_credit_plugin.ledger import migration
    from ovh_credit_plugin.ledger.database import create_engine

    engine = create_engine(url)
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()


def service_from_config(config: Path | str) -> Any:
    from oslo_config import cfg

    from ovh_credit_plugin.conf import register_opts
    from ovh_credit_plugin.service import CreditService

    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[], default_config_files=[str(config)])
    return CreditService.from_conf(conf, clock=lambda: TEST_NOW)


def ledger_tables() -> list[Any]:
    """Every ledger table, children first (the order to empty them in)."""
    from ovh_credit_plugin.ledger import schema

    return list(reversed(schema.metadata.sorted_tables))


def wipe_ledger(conn: Any) -> None:
    """Empty every ledger table (keeps the schema and its alembic version)."""
    import sqlalchemy as sa

    tables = ledger_tables()
    if conn.dialect.name == "postgresql":
        names = ", ".join(conn.dialect.identifier_preparer.quote(t.name) for t in tables)
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        return
    for table in tables:
        conn.execute(sa.delete(table))


def fork_context() -> Any:
    """A ``forkserver`` context whose server has the plugin (and the CLI) imported.

    Children start in milliseconds with their own interpreter state and open
    their own database connections: real processes, cheaply.
    """
    context = multiprocessing.get_context("forkserver")
    # "__main__" too (pytest's, or a script's): otherwise every child imports it again.
    context.set_forkserver_preload(
        ["__main__", "ovh_credit_plugin.service", "ovh_credit_plugin.cli.app",
         "ovh_credit_plugin.ledger.migration", "ovh_credit_plugin.catalog.file",
         "sqlalchemy.dialects.postgresql.psycopg", "sqlalchemy.dialects.mysql.pymysql",
         "psycopg", "pymysql", "tests.support.workload", "tests.support.victims",
         "ovh_credit_plugin.catalog.http"]
    )
    return context


def confirm_payment(
    config: str, order_id: str, amount: str, currency: str, at: dt.datetime,
    barrier: Any, results: Any,
) -> None:
    """One webhook delivery of a payment, in its own process (``test_confirmations``)."""
    try:
        service = service_from_config(config)
        service.database.ensure_schema()
        barrier.wait(timeout=300)
        order = service.pay_order(order_id, amount=amount, currency=currency, at=at)
        results.put(("ok", json.dumps(order.model_dump(mode="json"), sort_keys=True),
                     os.getpid()))
        service.close()
    except BaseException as error:  # reported to the parent, whatever it is
        results.put(("error", f"{type(error).__name__}: {error}", os.getpid()))


def cli_child(argv: list[str], log: str) -> None:
    """The ``ovh-credit`` CLI run in a forked child, its output going to ``log``.

    Ends with ``os._exit``: nothing of the parent's (atexit, buffers) runs twice.
    """
    from ovh_credit_plugin.cli.app import main as cli_main

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        code = cli_main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the plan -----------------------------------------------------------------------


@dataclass
class Plan:
    url: str
    config: str
    workdir: str
    seed: int
    processes: int
    duration: float
    span_days: float
    projects: dict[str, str]
    orders: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    # One config per database URL (Galera: one per node); worker I uses
    # configs[I % len(configs)]. Empty: every worker uses ``config``.
    configs: list[str] = field(default_factory=list)
    # A node of the cluster goes down during the run (test_galera): workers
    # retry an operation the database could not serve (see Worker.attempt).
    tolerate_unavailable: bool = False
    # FIXED_PROJECTS' vouchers: project -> amount granted by the parent (decimal string).
    fixed: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))


def _amount(rng: random.Random, currency: str, low: int, high: int, *, rated: bool) -> str:
    if currency == "JPY":
        return str(rng.randint(low, high * 20))
    if rated:
        return str(Decimal(rng.randint(1, high * 1_000_000)).scaleb(-6))
    return str(Decimal(rng.randint(low * 100, high * 100)).scaleb(-2))


def make_plan(
    url: str, workdir: Path, *, seed: int, processes: int, duration: float, invoices: int,
    urls: Sequence[str] = (), tolerate_unavailable: bool = False,
) -> Plan:
    """Migrate the ledger, create the projects and orders, write the plan.

    ``urls``: the same database through several servers (Galera nodes), ``url``
    among them or not; the workers are spread over them.
    """
    rng = random.Random(seed)
    span_days = 540.0
    fixed_invoices, fixed, vouchers = _fixed_projects(random.Random(seed + 1), span_days)
    config = write_ledger_files(workdir, url, vouchers=vouchers)
    configs = [str(write_ledger_files(workdir / f"url-{n}", other, vouchers=vouchers))
               for n, other in enumerate(urls)]
    migrate(url)
    projects = {f"wl-p{n}": "EUR" for n in range(6)} | {f"wl-j{n}": "JPY" for n in range(2)}
    service = service_from_config(config)
    orders = []
    try:
        for project in fixed:
            service.activate_voucher(project, fixed_code(project), at=T0)
        for project, currency in projects.items():
            for _ in range(10):
                created = T0 + dt.timedelta(days=rng.uniform(0, span_days))
                amount = (str(rng.randint(1000, 30000)) if currency == "JPY"
                          else str(Decimal(rng.randint(500, 15000)).scaleb(-2)))
                order = service.create_order(project, amount, currency=currency, at=created)
                orders.append({
                    "id": order.id, "project_id": project, "amount": amount,
                    "currency": currency, "created_at": iso(created),
                    "pay_at": iso(created + dt.timedelta(hours=rng.uniform(0.5, 150))),
                    "contested": rng.random() < 0.2,
                })
    finally:
        service.close()
    orders.sort(key=lambda o: o["created_at"])
    orders[0]["contested"] = False  # every worker pays it at once (Worker.rush)
    documents = []
    for n in range(invoices):
        project = rng.choice(list(projects))
        currency = projects[project]
        issued = T0 + dt.timedelta(days=rng.uniform(0, span_days + 30))
        lines = [
            {"id": f"l{k}", "product": rng.choice(PRODUCTS),
             "amount": _amount(rng, currency, 1, 40, rated=rng.random() < 0.25)}
            for k in range(1, rng.randint(1, 4) + 1)
        ]
        documents.append({"id": f"inv-{n:05d}", "project_id": project, "currency": currency,
                          "issued_at": iso(issued), "lines": lines})
    documents.extend(fixed_invoices)
    documents.sort(key=lambda d: d["issued_at"])
    plan = Plan(url=url, config=str(config), workdir=str(workdir), seed=seed,
                processes=processes, duration=duration, span_days=span_days,
                projects=projects, orders=orders, invoices=documents, configs=configs,
                tolerate_unavailable=tolerate_unavailable, fixed=fixed)
    plan.save(workdir / "plan.json")
    return plan


def _fixed_projects(
    rng: random.Random, span_days: float
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """FIXED_PROJECTS' invoices, the amount of each one's voucher, and the catalog
    with those vouchers added (single-use, so that no worker can take them)."""
    invoices, fixed = [], {}
    catalog = [dict(v) for v in VOUCHERS["vouchers"]]
    for project, kind in FIXED_PROJECTS.items():
        total = ZERO
        for n in range(FIXED_INVOICES):
            lines = [{"id": f"l{k}", "product": rng.choice(PRODUCTS),
                      "amount": _amount(rng, "EUR", 1, 40, rated=rng.random() < 0.25)}
                     for k in range(1, rng.randint(1, 3) + 1)]
            total += sum((dec(line["amount"]) for line in lines), ZERO)
            issued = T0 + dt.timedelta(days=rng.uniform(0, span_days + 30))
            invoices.append({"id": f"fix-{n:03d}", "project_id": project, "currency": "EUR",
                             "issued_at": iso(issued), "lines": lines})
        # Whole cents: more than every invoice together, or a third of them.
        amount = (total + 7 if kind == "covered" else total / 3).quantize(Decimal("0.01"))
        fixed[project] = str(amount)
        catalog.append({"code": fixed_code(project), "amount": str(amount), "currency": "EUR",
                        "status": "active", "valid_until": None, "validity_days": None,
                        "products": [], "max_redemptions": 1,
                        "description": f"never ends ({kind})"})
    return invoices, fixed, {"vouchers": catalog}


def invoice_key(document: dict[str, Any]) -> str:
    return f"invoice/{document['project_id']}/{document['id']}"


# -- a worker -----------------------------------------------------------------------


class Worker:
    """One worker process: random operations on the shared ledger until the deadline."""

    def __init__(self, plan: Plan, index: int, out: Path) -> None:
        from ovh_credit_plugin import models

        self.plan = plan
        self.index = index
        self.rng = random.Random(plan.seed * 1000 + index)
        self.out = out.open("w", encoding="utf-8")
        self.service = service_from_config(
            plan.configs[index % len(plan.configs)] if plan.configs else plan.config)
        self.service.database.ensure_schema()
        self.invoices = [models.Invoice.model_validate(d) for d in plan.invoices]
        self.invoice_times = [parse_time(d["issued_at"]) for d in plan.invoices]
        self.order_times = [parse_time(o["created_at"]) for o in plan.orders]
        self.settled: dict[str, Any] = {}  # key -> invoice this worker saw settled
        self.credits: list[int] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.started = 0.0
        self.now: dt.datetime | None = None  # an operation's frozen time (attempt)
        self.retried = False

    def log(self, **event: Any) -> None:
        event["w"] = self.index
        if self.retried:
            # Done again after the database could not serve it: an earlier
            # try may have committed (a COMMIT lost with the node).
            event["retried"] = True
        self.out.write(json.dumps(event, default=str) + "\n")

    def sim_now(self) -> dt.datetime:
        if self.now is not None:
            return self.now
        fraction = min(1.0, (time.monotonic() - self.started) / self.plan.duration)
        return T0 + dt.timedelta(days=self.plan.span_days * fraction)

    def _window(self, times: list[dt.datetime], before: float, after: float) -> range:
        now = self.sim_now()
        low = bisect.bisect_left(times, now - dt.timedelta(days=before))
        high = bisect.bisect_right(times, now + dt.timedelta(days=after))
        if high <= low:
            low, high = max(0, low - 5), min(len(times), low + 5)
        return range(low, high)

    def run(self, go: Path) -> None:
        (go.parent / f"ready-{self.index}").touch()
        while not go.exists():
            time.sleep(0.002)
        self.started = time.monotonic()
        deadline = self.started + self.plan.duration
        # Retried like every operation: on a loaded machine the rush can still be
        # running when a node is killed (test_galera's outage, 2 s after go).
        self.attempt(self.rush_voucher)
        self.attempt(self.rush_payment)
        operations = [
            (self.settle_batch, 30), (self.settle_one, 18), (self.replay, 10),
            (self.conflict, 5), (self.pay, 17), (self.cancel, 4), (self.activate, 8),
            (self.expire, 5), (self.void, 1), (self.read, 2), (self.rerate, 6),
        ]
        functions = [f for f, _ in operations]
        weights = [w for _, w in operations]
        # At least MIN_BATCHES batches each, deadline or not: on a loaded machine the
        # run lasts longer rather than do too little to prove anything (and fail
        # test_workload's count of what it did).
        while time.monotonic() < deadline or self.counts["settle_batch"] < MIN_BATCHES:
            operation = self.rng.choices(functions, weights)[0]
            name = operation.__name__
            try:
                self.attempt(operation)
            except Exception as error:  # anything not expected by the operation itself
                self.log(op="unexpected", during=name, error=type(error).__name__,
                         message=str(error), traceback=traceback.format_exc())
            self.counts[name] += 1
        # All together once more: expiry jobs racing over the same credits.
        (go.parent / f"finished-{self.index}").touch()
        end = go.parent / "end"
        while not end.exists():
            time.sleep(0.002)
        self.expire(at=END)
        self.counts["expire"] += 1
        self.log(op="done", counts=dict(self.counts))
        self.out.close()
        self.service.close()

    def attempt(self, operation: Any) -> None:
        """Run ``operation``; when the plan tolerates it, again with the same arguments
        (the same random draws, the same simulated time) for as long as the database
        cannot serve it (a node down, rejoining), as a host retries a failed call.
        """
        if not self.plan.tolerate_unavailable:
            operation()
            return
        state, self.now = self.rng.getstate(), self.sim_now()
        give_up = time.monotonic() + 120
        try:
            while True:
                try:
                    operation()
                    return
                except Exception as error:
                    if not unavailable(error) or time.monotonic() > give_up:
                        raise
                    self.log(op="unavailable", during=operation.__name__,
                             error=type(error).__name__, message=str(error)[:300])
                    self.retried = True
                    self.rng.setstate(state)
                    time.sleep(0.2)
        finally:
            self.now, self.retried = None, False

    # operations -----------------------------------------------------------------

    def rush_voucher(self) -> None:
        """All workers at once: the limited voucher on different projects..."""
        from ovh_credit_plugin import exceptions

        euro = sorted(p for p, c in self.plan.projects.items() if c == "EUR")
        project = euro[self.index % len(euro)]
        try:
            credit = self.service.activate_voucher(project, LIMITED_CODE, at=T0)
        except exceptions.VoucherRefused as error:
            self.log(op="activate", project=project, code=LIMITED_CODE, ok=False,
                     error=type(error).__name__, message=error.reason)
        else:
            self.credits.append(credit.id)
            self.log(op="activate", project=project, code=LIMITED_CODE, ok=True,
                     result=credit.model_dump(mode="json"))

    def rush_payment(self) -> None:
        """... and one payment confirmed by all of them."""
        order = self.plan.orders[0]
        paid = self.service.pay_order(order["id"], amount=dec(order["amount"]),
                                      at=parse_time(order["pay_at"]))
        self.log(op="pay", order=order["id"], wrong=False, ok=True,
                 result=paid.model_dump(mode="json"))

    def _pick_invoices(self, count: int) -> list[Any]:
        window = self._window(self.invoice_times, 20, 10)
        return [self.invoices[self.rng.choice(window)] for _ in range(count)]

    def _record(self, invoice: Any, settlement: Any) -> None:
        key = f"invoice/{invoice.project_id}/{invoice.id}"
        self.settled[key] = invoice
        self.log(op="settle", key=key, result=settlement.model_dump(mode="json"))

    def settle_batch(self) -> None:
        batch = self._pick_invoices(self.rng.randint(2, 16))
        size = self.rng.randint(1, len(batch))
        for invoice, settlement in zip(
            batch, self.service.settle_invoices(batch, batch_size=size), strict=True
        ):
            self._record(invoice, settlement)

    def settle_one(self) -> None:
        invoice = self._pick_invoices(1)[0]
        self._record(invoice, self.service.settle_invoice(invoice))

    def replay(self) -> None:
        if not self.settled:
            return
        invoice = self.settled[self.rng.choice(sorted(self.settled))]
        settlement = self.service.settle_invoice(invoice)
        if not settlement.replayed:
            self.log(op="unexpected", during="replay", error="NotReplayed",
                     message=f"{invoice.id} settled again", traceback="")
        self._record(invoice, settlement)

    def conflict(self) -> None:
        from ovh_credit_plugin import exceptions

        if not self.settled:
            return
        invoice = self.settled[self.rng.choice(sorted(self.settled))]
        lines = list(invoice.lines)
        if self.rng.random() < 0.5:
            first = lines[0]
            lines[0] = first.model_copy(update={"amount": first.amount + Decimal(1)})
        else:
            lines.append(lines[0].model_copy(update={"id": "extra"}))
        changed = invoice.model_copy(update={"lines": lines})
        try:
            self.service.settle_invoice(changed)
        except exceptions.SettlementConflict:
            self.log(op="conflict", key=f"invoice/{invoice.project_id}/{invoice.id}")
            return
        self.log(op="unexpected", during="conflict", error="NoConflict",
                 message=f"{invoice.id} with new content was accepted", traceback="")

    def _pick_order(self) -> dict[str, Any]:
        window = self._window(self.order_times, 8, 1)
        return self.plan.orders[self.rng.choice(window)]

    def pay(self) -> None:
        from ovh_credit_plugin import exceptions

        order = self._pick_order()
        wrong = self.rng.random() < 0.1
        amount = dec(order["amount"]) + (Decimal(1) if wrong else ZERO)
        try:
            paid = self.service.pay_order(order["id"], amount=amount,
                                          currency=order["currency"],
                                          at=parse_time(order["pay_at"]))
        except (exceptions.InvalidAmount, exceptions.InvalidState) as error:
            self.log(op="pay", order=order["id"], wrong=wrong, ok=False,
                     error=type(error).__name__, message=str(error))
            return
        self.credits.append(paid.credit_id)
        self.log(op="pay", order=order["id"], wrong=wrong, ok=True,
                 result=paid.model_dump(mode="json"))

    def cancel(self) -> None:
        from ovh_credit_plugin import exceptions

        contested = [o for o in (self._pick_order() for _ in range(4)) if o["contested"]]
        if not contested:
            return
        order = contested[0]
        at = parse_time(order["created_at"]) + dt.timedelta(hours=self.rng.uniform(0, 150))
        try:
            cancelled = self.service.cancel_order(order["id"], at=at)
        except exceptions.InvalidState as error:
            self.log(op="cancel", order=order["id"], ok=False, error=type(error).__name__,
                     message=str(error))
            return
        self.log(op="cancel", order=order["id"], ok=True,
                 result=cancelled.model_dump(mode="json"))

    def activate(self) -> None:
        from ovh_credit_plugin import exceptions

        project = self.rng.choice(sorted(self.plan.projects))
        code = self.rng.choice(CODES)
        try:
            credit = self.service.activate_voucher(project, code, at=self.sim_now())
        except (exceptions.VoucherRefused, exceptions.CurrencyMismatch) as error:
            reason = getattr(error, "reason", str(error))
            self.log(op="activate", project=project, code=code, ok=False,
                     error=type(error).__name__, message=reason)
            return
        self.credits.append(credit.id)
        self.log(op="activate", project=project, code=code, ok=True,
                 result=credit.model_dump(mode="json"))

    def expire(self, at: dt.datetime | None = None) -> None:
        summary = self.service.expire(at=at or self.sim_now(),
                                      batch_size=self.rng.choice([3, 500]))
        self.log(op="expire", at=iso(summary.at), orders_lapsed=summary.orders_lapsed,
                 credits_expired=summary.credits_expired,
                 amount_expired={c: str(a) for c, a in summary.amount_expired.items()})

    def void(self) -> None:
        from ovh_credit_plugin import exceptions

        if not self.credits:
            return
        credit_id = self.rng.choice(self.credits)
        try:
            # A reason of its own: voiding again with the same reason is a replay
            # (it returns the voided credit), which this would count as a second void.
            reason = f"workload {self.index}, void {self.rng.randrange(10**9)}"
            credit = self.service.void_credit(credit_id, reason=reason, at=self.sim_now())
        # Already voided; or this worker's clock is behind the credit's grant.
        except (exceptions.InvalidState, exceptions.InvalidInput) as error:
            self.log(op="void", credit=credit_id, ok=False, error=type(error).__name__,
                     message=str(error))
            return
        self.log(op="void", credit=credit_id, ok=True, result=credit.model_dump(mode="json"))

    def rerate(self) -> None:
        """A CloudKitty-like period re-rated with new prices: reverse and apply anew."""
        from ovh_credit_plugin import allocation, money
        from ovh_credit_plugin.service import Charge, fingerprint

        project = self.rng.choice(sorted(self.plan.projects))
        currency = self.plan.projects[project]
        period = self.rng.randrange(RERATED_PERIODS)
        start = T0 + dt.timedelta(days=self.plan.span_days * period / RERATED_PERIODS)
        lines = [
            allocation.Line(product, product,
                            money.ledger(dec(_amount(self.rng, currency, 1, 30, rated=True))))
            for product in sorted(self.rng.sample(PRODUCTS, self.rng.randint(1, 3)))
        ]
        charge = Charge(key=f"cloudkitty/{project}/{iso(start)}", project_id=project,
                        invoice_id=f"period-{period}", currency=currency, at=start,
                        lines=lines, fingerprint=fingerprint(currency, start, lines))
        settlement = self.service.settle([charge], on_change="replace")[0]
        self.log(op="rerate", key=charge.key, result=settlement.model_dump(mode="json"))

    def read(self) -> None:
        project = self.rng.choice(sorted(self.plan.projects))
        for credit in self.service.list_credits(project, at=self.sim_now()):
            if credit.available < ZERO or credit.total != (
                credit.used + credit.expired + credit.voided + credit.available
            ):
                self.log(op="unexpected", during="read", error="BadCredit",
                         message=repr(credit), traceback="")


# What a client hears from a node that is down, rejoining or cut off: no
# connection, a connection lost, "WSREP has not yet prepared node", an error
# during COMMIT, a conflict retried until the attempts ran out.
_UNAVAILABLE_CODES = frozenset({2002, 2003, 2006, 2013, 1047, 1180, 1213})


def unavailable(error: BaseException) -> bool:
    import sqlalchemy as sa

    if not isinstance(error, sa.exc.DBAPIError):
        return False
    args = getattr(error.orig, "args", ())
    return error.connection_invalidated or (bool(args) and args[0] in _UNAVAILABLE_CODES)


def worker_main(plan_path: Path, index: int, out: Path) -> int:
    plan = Plan.load(plan_path)
    worker = Worker(plan, index, out)
    worker.run(Path(plan.workdir) / "go")
    return 0


# -- the parent ---------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    processes: int
    duration: float
    elapsed: float = 0.0
    operations: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    settlements: int = 0
    credits: int = 0
    violations: list[str] = field(default_factory=list)


def start_workers(plan: Plan) -> list[subprocess.Popen[bytes]]:
    """``python -m tests.support.workload worker ...`` processes; stderr to worker-I.log."""
    workdir = Path(plan.workdir)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    workers = []
    for index in range(plan.processes):
        with (workdir / f"worker-{index}.log").open("wb") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tests.support.workload", "worker",
                 "--plan", str(workdir / "plan.json"), "--index", str(index),
                 "--out", str(workdir / f"events-{index}.jsonl")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
            ))
    return workers


def run(
    url: str, workdir: Path, *, processes: int, duration: float, seed: int, invoices: int,
    urls: Sequence[str] = (), during: Any = None,
) -> Report:
    """Plan, run the workers, verify. The report lists every violation found.

    ``urls``: spread the workers over these (Galera nodes). ``during``: called
    by the parent once the workers are released (a node killed and restarted);
    the workers then retry what the database could not serve.
    """
    plan = make_plan(url, workdir, seed=seed, processes=processes, duration=duration,
                     invoices=invoices, urls=urls, tolerate_unavailable=during is not None)
    report = Report(seed=seed, processes=processes, duration=duration)
    workers = start_workers(plan)
    try:
        limit = time.monotonic() + 120
        while not all((workdir / f"ready-{i}").exists() for i in range(processes)):
            if any(w.poll() is not None for w in workers) or time.monotonic() > limit:
                raise RuntimeError(f"a worker did not start: see {workdir}/worker-*.log")
            time.sleep(0.01)
        begin = time.monotonic()
        (workdir / "go").touch()
        if during is not None:
            during()
        limit = time.monotonic() + duration + 600
        while not all((workdir / f"finished-{i}").exists() for i in range(processes)):
            if any(w.poll() is not None for w in workers) or time.monotonic() > limit:
                break  # reported below: a worker that does not finish fails the run
            time.sleep(0.01)
        (workdir / "end").touch()
        for index, worker in enumerate(workers):
            code = worker.wait(timeout=duration + 600)
            if code != 0:
                report.violations.append(
                    f"worker {index} exited with {code}: "
                    f"{(workdir / f'worker-{index}.log').read_text()[-2000:]}"
                )
        report.elapsed = round(time.monotonic() - begin, 2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    events = list(read_events(workdir.glob("events-*.jsonl")))
    verify(plan, events, report)
    return report


def read_events(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in sorted(paths):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)


def final_pass(plan: Plan) -> list[dict[str, Any]]:
    """The parent settles every invoice of the plan once more (batches of 100)."""
    from ovh_credit_plugin import models

    service = service_from_config(plan.config)
    try:
        invoices = [models.Invoice.model_validate(d) for d in plan.invoices]
        return [
            {"op": "settle", "w": "parent", "key": f"invoice/{i.project_id}/{i.id}",
             "result": s.model_dump(mode="json")}
            for i, s in zip(invoices, service.settle_invoices(invoices, batch_size=100),
                            strict=True)
        ]
    finally:
        service.close()


def verify(plan: Plan, events: list[dict[str, Any]], report: Report) -> None:
    """Every check of the workload; violations are appended to ``report``."""
    import sqlalchemy as sa

    from ovh_credit_plugin.ledger import schema

    bad = report.violations
    for event in events:
        if event["op"] == "unexpected":
            bad.append(f"worker {event['w']} during {event['during']}: {event['error']}: "
                       f"{event['message']}\n{event['traceback']}")
        if event["op"] == "done":
            for name, count in event["counts"].items():
                report.operations[name] = report.operations.get(name, 0) + count
    done = sum(1 for e in events if e["op"] == "done")
    if done != plan.processes:
        bad.append(f"only {done} of {plan.processes} workers finished their run")
    for event in events:
        if event["op"] in ("pay", "cancel", "activate", "void"):
            name = f"{event['op']}:{'ok' if event['ok'] else event['error']}"
            report.outcomes[name] = report.outcomes.get(name, 0) + 1
        elif event["op"] in ("unavailable", "settle", "rerate", "expire") and (
            event["op"] == "unavailable" or event.get("retried")
        ):
            name = "unavailable" if event["op"] == "unavailable" else f"{event['op']}:retried"
            report.outcomes[name] = report.outcomes.get(name, 0) + 1
    events = events + final_pass(plan)

    engine = sa.create_engine(plan.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = {name: list(conn.execute(sa.select(table)))
                    for name, table in (("settlements", schema.settlements),
                                        ("credits", schema.credits),
                                        ("entries", schema.ledger_entries),
                                        ("orders", schema.orders),
                                        ("activations", schema.voucher_activations),
                                        ("redemptions", schema.catalog_redemptions))}
    finally:
        engine.dispose()
    # The ORM-less rows carry Money as Decimal already through the schema types.
    report.settlements = len(rows["settlements"])
    report.credits = len(rows["credits"])
    _check_settlements(plan, events, rows, bad)
    _check_credits(rows, events, bad)
    _check_orders(plan, events, rows, bad)
    _check_vouchers(plan, events, rows, bad)
    _check_expiry_and_voids(events, rows, bad)
    _check_rerated(events, rows, bad)
    _check_outcomes(plan, rows, bad)
    service = service_from_config(plan.config)
    try:
        audit = service.audit()
    finally:
        service.close()
    bad.extend(f"audit: {v}" for v in audit.violations)


def _check_settlements(
    plan: Plan, events: list[dict[str, Any]], rows: dict[str, list[Any]], bad: list[str]
) -> None:
    answers: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        if event["op"] == "settle":
            answers[event["key"]].append(event["result"])
    keys = {invoice_key(d) for d in plan.invoices}
    recorded = {row.key: row for row in rows["settlements"] if row.key.startswith("invoice/")}
    if set(recorded) != keys:
        bad.append(f"settlement keys differ from the plan's invoices: "
                   f"{len(set(recorded) - keys)} extra, {len(keys - set(recorded))} missing")
    debits: dict[str, list[Any]] = collections.defaultdict(list)
    for entry in rows["entries"]:
        if entry.type == "reversal" and not entry.settlement_key.startswith("cloudkitty/"):
            bad.append(f"reversal entry {entry.id} for an invoice ({entry.settlement_key})")
        if entry.type == "debit":
            debits[entry.settlement_key].append(entry)
    retried = {e["key"] for e in events if e["op"] == "settle" and e.get("retried")}
    for key in sorted(keys):
        results = answers[key]
        fresh = [r for r in results if not r["replayed"]]
        # Settled by a try whose COMMIT was lost with its node: the retry replays.
        if len(fresh) != 1 and not (not fresh and key in retried):
            bad.append(f"{key}: {len(fresh)} answers say 'settled now' (exactly one expected)")
        shapes = {json.dumps({k: v for k, v in r.items() if k != "replayed"}, sort_keys=True)
                  for r in results}
        if len(shapes) != 1:
            bad.append(f"{key}: {len(shapes)} different answers: {sorted(shapes)[:3]}")
        row = recorded.get(key)
        if row is None or not results:
            continue
        answer = results[0]
        applied = dec(answer["credit_applied"])
        if row.credit_applied != applied or row.total != dec(answer["total"]):
            bad.append(f"{key}: recorded {row.credit_applied}/{row.total}, answered "
                       f"{applied}/{answer['total']}")
        if dec(answer["amount_due"]) != dec(answer["total"]) - applied or dec(
            answer["amount_due"]
        ) < ZERO:
            bad.append(f"{key}: amount_due is not total - credit_applied >= 0")
        entries = debits.get(key, [])
        if sum((e.amount for e in entries), ZERO) != applied:
            bad.append(f"{key}: debits sum to {sum((e.amount for e in entries), ZERO)}, "
                       f"credit_applied is {applied}")
        if len(entries) != len(answer["allocations"]):
            bad.append(f"{key}: {len(entries)} debit entries for "
                       f"{len(answer['allocations'])} allocations")
    stray = {k for k in debits if not k.startswith("cloudkitty/")} - keys
    if stray:
        bad.append(f"debits for unknown keys: {sorted(stray)[:5]}")


def _check_credits(rows: dict[str, list[Any]], events: list[dict[str, Any]],
                   bad: list[str]) -> None:
    figures: dict[str, dict[str, Decimal]] = collections.defaultdict(
        lambda: collections.defaultdict(Decimal)
    )
    currency_of = {}
    for credit in rows["credits"]:
        currency_of[credit.id] = credit.currency
        per = figures[credit.currency]
        for name in ("total", "used", "expired", "voided", "available"):
            value = getattr(credit, name)
            if value < ZERO:
                bad.append(f"credit {credit.id}: {name} is negative ({value})")
            per[name] += value
    for currency, per in sorted(figures.items()):
        if per["total"] != per["used"] + per["expired"] + per["voided"] + per["available"]:
            bad.append(f"{currency}: granted {per['total']} != used {per['used']} + expired "
                       f"{per['expired']} + voided {per['voided']} + available "
                       f"{per['available']}")
    from_entries: dict[str, dict[str, Decimal]] = collections.defaultdict(
        lambda: collections.defaultdict(Decimal)
    )
    for entry in rows["entries"]:
        from_entries[currency_of[entry.credit_id]][entry.type] += entry.amount
    for currency, per in sorted(figures.items()):
        ledger = from_entries[currency]
        expected = {"total": ledger["grant"], "used": ledger["debit"] - ledger["reversal"],
                    "expired": ledger["expiry"], "voided": ledger["void"]}
        for name, value in expected.items():
            if per[name] != value:
                bad.append(f"{currency}: credits' {name} is {per[name]}, ledger says {value}")
    applied: dict[str, Decimal] = collections.defaultdict(Decimal)
    for row in rows["settlements"]:
        applied[row.currency] += row.credit_applied
    for currency, per in sorted(figures.items()):
        if applied[currency] != per["used"]:
            bad.append(f"{currency}: settlements applied {applied[currency]}, credits used "
                       f"{per['used']}")
    grants = sum(1 for e in rows["entries"] if e.type == "grant")
    paid = sum(1 for o in rows["orders"] if o.status == "paid")
    granted = sum(1 for a in rows["activations"] if a.status == "granted")
    if not grants == len(rows["credits"]) == paid + granted:
        bad.append(f"{grants} grant entries, {len(rows['credits'])} credits, {paid} paid "
                   f"orders + {granted} activations")


def _check_orders(plan: Plan, events: list[dict[str, Any]], rows: dict[str, list[Any]],
                  bad: list[str]) -> None:
    final = {row.id: row for row in rows["orders"]}
    pays: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    cancels: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        if event["op"] == "pay":
            pays[event["order"]].append(event)
        elif event["op"] == "cancel":
            cancels[event["order"]].append(event)
    for order in plan.orders:
        row = final[order["id"]]
        mine = pays[order["id"]]
        for event in mine:
            if event["wrong"] and (event["ok"] or event["error"] != "InvalidAmount"):
                bad.append(f"order {row.id}: a wrong amount was answered {event}")
        right = [e for e in mine if not e["wrong"]]
        ok = [e for e in right if e["ok"]]
        if row.status == "paid":
            if len(ok) != len(right):
                bad.append(f"order {row.id} is paid but {len(right) - len(ok)} confirmations "
                           "were refused")
            if {e["result"]["credit_id"] for e in ok} - {row.credit_id}:
                bad.append(f"order {row.id}: confirmations name different credits")
            if len({json.dumps(e["result"], sort_keys=True) for e in ok}) > 1:
                bad.append(f"order {row.id}: confirmations answered differently")
            if any(e["ok"] for e in cancels[row.id]):
                bad.append(f"order {row.id} is paid but a cancellation succeeded")
        elif ok:
            bad.append(f"order {row.id} is {row.status} but {len(ok)} confirmations succeeded")
        if row.status == "cancelled" and not any(
            e["ok"] or e.get("retried") for e in cancels[row.id]
        ):
            bad.append(f"order {row.id} is cancelled but no cancellation succeeded")


def _check_vouchers(plan: Plan, events: list[dict[str, Any]], rows: dict[str, list[Any]],
                    bad: list[str]) -> None:
    granted = collections.Counter(a.code for a in rows["activations"] if a.status == "granted")
    redeemed = collections.Counter(r.code for r in rows["redemptions"])
    pending = [a for a in rows["activations"] if a.status != "granted"]
    if pending:
        bad.append(f"{len(pending)} activations left pending without any crash")
    credits: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    tried: set[str] = set()
    for event in events:
        if event["op"] != "activate":
            continue
        if event["ok"]:
            credits[(event["project"], event["code"])].add(event["result"]["id"])
        if event["code"] == LIMITED_CODE and plan.projects[event["project"]] == "EUR":
            tried.add(event["project"])
    for (project, code), ids in sorted(credits.items()):
        if len(ids) != 1:
            bad.append(f"{code} on {project}: activations answered credits {sorted(ids)}")
    for code, count in granted.items():
        if count != redeemed[code]:
            bad.append(f"{code}: {count} granted activations, {redeemed[code]} redemptions")
    expected = min(LIMITED_MAX, len(tried))
    if granted[LIMITED_CODE] != expected or redeemed[LIMITED_CODE] > LIMITED_MAX:
        bad.append(f"{LIMITED_CODE} (max {LIMITED_MAX}): {granted[LIMITED_CODE]} granted, "
                   f"{redeemed[LIMITED_CODE]} redeemed, {len(tried)} EUR projects tried")


def _check_rerated(events: list[dict[str, Any]], rows: dict[str, list[Any]],
                   bad: list[str]) -> None:
    """Re-rated periods: one revision per applied change, net debits == credit applied."""
    applied = collections.Counter(e["key"] for e in events
                                  if e["op"] == "rerate" and not e["result"]["replayed"])
    retried = collections.Counter(e["key"] for e in events
                                  if e["op"] == "rerate" and e.get("retried"))
    net: dict[str, Decimal] = collections.defaultdict(Decimal)
    for entry in rows["entries"]:
        if entry.settlement_key and entry.settlement_key.startswith("cloudkitty/"):
            net[entry.settlement_key] += (entry.amount if entry.type == "debit"
                                          else -entry.amount)
    recorded = {r.key: r for r in rows["settlements"] if r.key.startswith("cloudkitty/")}
    if set(recorded) != set(applied):
        bad.append(f"re-rated periods recorded {len(recorded)}, answered {len(applied)}")
    for key, row in sorted(recorded.items()):
        if not applied[key] <= row.revision <= applied[key] + retried[key]:
            bad.append(f"{key}: revision {row.revision} after {applied[key]} applied changes")
        if net[key] != row.credit_applied:
            bad.append(f"{key}: net debits {net[key]}, credit_applied {row.credit_applied}")


def _check_outcomes(plan: Plan, rows: dict[str, list[Any]], bad: list[str]) -> None:
    """What the money rules say must have happened, whatever the interleaving.

    Per project, what its settlements applied is what its credits were used
    for. FIXED_PROJECTS: applied exactly min(voucher, invoiced), each
    settlement of the covered one in full, their never-ending credit never
    expired. After the last expiry run (at END): every credit whose end has
    passed holds nothing (:func:`ended_with_a_balance`).
    """
    applied: dict[str, Decimal] = collections.defaultdict(Decimal)
    for row in rows["settlements"]:
        applied[row.project_id] += row.credit_applied
    used: dict[str, Decimal] = collections.defaultdict(Decimal)
    for credit in rows["credits"]:
        used[credit.project_id] += credit.used
    for project in sorted(set(applied) | set(used)):
        if applied[project] != used[project]:
            bad.append(f"{project}: settlements applied {applied[project]}, its credits were "
                       f"used for {used[project]}")
    invoiced: dict[str, Decimal] = collections.defaultdict(Decimal)
    for document in plan.invoices:
        invoiced[document["project_id"]] += sum(
            (dec(line["amount"]) for line in document["lines"]), ZERO)
    for project, granted in sorted(plan.fixed.items()):
        expected = min(dec(granted), invoiced[project])
        if applied[project] != expected:
            bad.append(f"{project}: {applied[project]} credit applied, the model expects "
                       f"min(voucher {granted}, invoiced {invoiced[project]}) = {expected}")
        mine = [(c.total, c.available, c.expired) for c in rows["credits"]
                if c.project_id == project]
        if mine != [(dec(granted), dec(granted) - expected, ZERO)]:
            bad.append(f"{project}: credits (total, available, expired) {mine}, the model "
                       f"expects one of {granted} with {dec(granted) - expected} left")
        if FIXED_PROJECTS[project] == "covered":
            unpaid = [r.key for r in rows["settlements"]
                      if r.project_id == project and r.amount_due != ZERO]
            if unpaid:
                bad.append(f"{project}: invoices left to pay although its credit covers them "
                           f"all: {unpaid[:5]}")
    bad.extend(ended_with_a_balance(rows["credits"], at=END))


def ended_with_a_balance(credits: Iterable[Any], *, at: dt.datetime) -> list[str]:
    """After an expiry run at ``at``: credits whose end has passed (DESIGN.md 2.8-2.9:
    over once ``at < valid_until`` no longer holds) that still hold a balance."""
    return [f"credit {c.id} ended at {iso(c.valid_until)} but holds {c.available} after "
            f"the expiry job ran at {iso(at)}"
            for c in credits
            if c.valid_until is not None and not at < c.valid_until and c.available != ZERO]


def _check_expiry_and_voids(events: list[dict[str, Any]], rows: dict[str, list[Any]],
                            bad: list[str]) -> None:
    reported: dict[str, Decimal] = collections.defaultdict(Decimal)
    reported_count = 0
    for event in events:
        if event["op"] == "expire":
            reported_count += event["credits_expired"]
            for currency, amount in event["amount_expired"].items():
                reported[currency] += dec(amount)
    currency_of = {c.id: c.currency for c in rows["credits"]}
    recorded: dict[str, Decimal] = collections.defaultdict(Decimal)
    # A void of a credit past its end records the expiry first, in the void's
    # transaction and at its time (service/credits.py: as the job would have):
    # that one is in no job's summary.
    voided = {(e.credit_id, e.created_at) for e in rows["entries"] if e.type == "void"}
    expiries = []
    for entry in rows["entries"]:
        if entry.type != "expiry":
            continue
        if entry.amount <= ZERO:
            bad.append(f"expiry entry {entry.id} of credit {entry.credit_id} records "
                       f"{entry.amount}")
        if (entry.credit_id, entry.created_at) not in voided:
            expiries.append(entry)
            recorded[currency_of[entry.credit_id]] += entry.amount
    # An expiry whose COMMIT was lost with its node is in the ledger, not in
    # the summary of the retry (docs/operations.md): then only a lower bound.
    if any(e["op"] == "expire" and e.get("retried") for e in events):
        if any(reported[c] > recorded[c] for c in reported) or reported_count > len(expiries):
            bad.append(f"expiry jobs reported {dict(reported)} ({reported_count} credits) "
                       f"expired, more than the ledger records: {dict(recorded)} "
                       f"({len(expiries)})")
    else:
        if dict(reported) != dict(recorded):
            bad.append(f"expiry jobs reported {dict(reported)} expired, the ledger records "
                       f"{dict(recorded)}")
        if reported_count != len(expiries):
            bad.append(f"expiry jobs reported {reported_count} credits expired, the ledger "
                       f"has {len(expiries)} expiry entries")
    voids = collections.Counter(e["credit"] for e in events if e["op"] == "void" and e["ok"])
    for credit_id, count in voids.items():
        if count != 1:
            bad.append(f"credit {credit_id} was voided {count} times")
    # A re-rated period giving back debits of a voided credit voids them again at once.
    void_entries = collections.Counter(
        e.credit_id for e in rows["entries"]
        if e.type == "void" and e.note != "reversal on a voided credit"
    )
    if dict(void_entries) != dict(voids):
        bad.append(f"void entries {dict(void_entries)} != successful voids {dict(voids)}")


# -- command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.workload")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="plan, run the workers, verify")
    run_parser.add_argument("--url", required=True, help="an empty database (SQLAlchemy URL)")
    run_parser.add_argument("--workdir", type=Path)
    run_parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    run_parser.add_argument("--processes", type=int)
    run_parser.add_argument("--duration", type=float)
    run_parser.add_argument("--invoices", type=int)
    run_parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**31))
    worker_parser = commands.add_parser("worker", help="one worker (started by 'run')")
    worker_parser.add_argument("--plan", type=Path, required=True)
    worker_parser.add_argument("--index", type=int, required=True)
    worker_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "worker":
        return worker_main(args.plan, args.index, args.out)
    processes, duration, invoices = PROFILES[args.profile]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovh-credit-workload-"))
    report = run(args.url, workdir, processes=args.processes or processes,
                 duration=args.duration or duration, seed=args.seed,
                 invoices=args.invoices or invoices)
    print(json.dumps(report.__dict__, indent=2))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
