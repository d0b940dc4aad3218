"""Stateful property test of the credit service against a model, on each backend.

A ``hypothesis.stateful.RuleBasedStateMachine`` drives a :class:`CreditService`
through random programs: create orders (valid and invalid amounts, wrong
currencies), pay them (replays, wrong amounts, wrong currency, after they
lapse or were cancelled), cancel them, activate vouchers from the file
catalog (unknown, revoked, expired, used-up, scoped, other-currency codes),
settle invoices one by one and in batches (with duplicates, replays and
conflicting replays), run the expiry job, void credits and move time forward,
now and then to exactly a credit's end or one microsecond before it, and
settle invoices issued at a credit's edges (start, end, and the microsecond
before each). The model states the validity rule once, as DESIGN.md writes it
(``valid_from <= t < valid_until``), and derives eligibility, expiry, status
and a voucher's own end from it (:func:`within_validity`, :func:`ended`).

A model keeps what each credit, order and settlement must be. After every
step (``@invariant``): ``audit`` is clean; every credit's figures (total,
used, expired, voided, available), validity, scope and status equal the
model's, in consumption order; orders' statuses equal the model's; no
settlement was applied twice (one debit entry per allocation of each
recorded settlement). Each settlement is checked when it is made: its
allocations are eligible (project, currency, validity at ``issued_at``,
scope, not voided), within each line and credit, ``amount_due = total -
credit_applied >= 0``, the credit applied is the maximum a flow network
allows (no usable credit left idle) and each credit's share is the
lexicographically first one in consumption order (vouchers first, soonest
end, oldest, id), computed by an independent max-flow oracle.

Each example starts on an empty ledger: a copy of a migrated SQLite file;
on PostgreSQL and MariaDB one database whose ledger tables are emptied.

Profiles: ``OVH_CREDIT_STATEFUL_EXAMPLES=N`` runs N programs per backend
(long profile: 1000); by default CI runs 40 on SQLite and 12 on PostgreSQL and
MariaDB, 30 steps each. ``OVH_CREDIT_STATEFUL_STEPS`` changes the steps.

Replaying a failure: hypothesis prints the failing program step by step and
a ``@reproduce_failure('<version>', b'<blob>')`` line (``print_blob``); run
again with ``OVH_CREDIT_STATEFUL_REPRODUCE='<version>:<blob>'`` (the blob as
printed, without ``b''``) and ``-k <backend>``. ``OVH_CREDIT_STATEFUL_SEED=N``
fixes hypothesis' seed. The example database (``.hypothesis/``) also replays
the last failure first on the next run.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    invariant,
    multiple,
    rule,
)

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import add_months
from tests.support import workload
from tests.support.ledgers import ServerPool, new_database_url

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
ZERO = Decimal(0)
FAR = dt.datetime.max.replace(tzinfo=UTC)
PROJECTS = ("p1", "p2", "y1")
PRODUCTS = ("compute", "storage", "gpu")
VOUCHERS: dict[str, dict[str, Any]] = {
    v["code"]: v for v in [
        {"code": "WELCOME-2026", "amount": "50.00", "currency": "EUR", "status": "active",
         "validity_days": 90, "products": []},
        {"code": "GPU-ONLY", "amount": "20.00", "currency": "EUR", "status": "active",
         "valid_until": "2027-01-01T00:00:00Z", "products": ["gpu"], "max_redemptions": 1},
        {"code": "STORAGE-5", "amount": "5.25", "currency": "EUR", "status": "active",
         "validity_days": 30, "products": ["storage", "compute"]},
        {"code": "COMPUTE-YEAR", "amount": "25.00", "currency": "EUR", "status": "active",
         "validity_days": 365, "products": ["compute"]},
        {"code": "LIMITED-2", "amount": "15.50", "currency": "EUR", "status": "active",
         "valid_until": "2026-06-01T00:00:00Z", "validity_days": 60, "products": [],
         "max_redemptions": 2},
        {"code": "YEN-1000", "amount": "1000", "currency": "JPY", "status": "active",
         "validity_days": 120, "products": []},
        {"code": "REVOKED-1", "amount": "10.00", "currency": "EUR", "status": "revoked",
         "products": []},
    ]
}
CODES = (*VOUCHERS, "UNKNOWN-42")

# -- profile ---------------------------------------------------------------------------


def examples_for(backend: str) -> int:
    if os.environ.get("OVH_CREDIT_STATEFUL_EXAMPLES"):
        return int(os.environ["OVH_CREDIT_STATEFUL_EXAMPLES"])
    return 40 if backend == "sqlite" else 12


STEPS = int(os.environ.get("OVH_CREDIT_STATEFUL_STEPS") or 30)


# -- a fresh ledger per example --------------------------------------------------------


class Ledgers:
    """Hands each example an empty ledger and a service on it."""

    def __init__(self, backend: str, pool: ServerPool, directory: Path) -> None:
        self.backend = backend
        self.vouchers = {"vouchers": list(VOUCHERS.values())}
        # SQLite files on the session's tmpfs scratch when there is one (fsync is free).
        scratch = Path(getattr(pool, "scratch", directory))
        if backend == "sqlite":
            directory = Path(tempfile.mkdtemp(prefix="stateful-", dir=scratch))
        self.directory = directory
        url = new_database_url(backend, pool, directory)
        workload.migrate(url)
        if backend == "sqlite":
            self.template = Path(url.removeprefix("sqlite:///"))
        self.url = url
        self.shared: Any = None
        if backend != "sqlite":
            config = workload.write_ledger_files(directory / "shared", url,
                                                 vouchers=self.vouchers)
            self.shared = workload.service_from_config(config)

    def fresh(self) -> tuple[Any, str]:
        if self.backend == "sqlite":
            name = self.directory / f"example-{uuid.uuid4().hex[:8]}"
            path = name.with_suffix(".sqlite")
            shutil.copyfile(self.template, path)
            url = f"sqlite:///{path}"
            config = workload.write_ledger_files(name, url, vouchers=self.vouchers)
            return workload.service_from_config(config), url
        self.shared.database.write(workload.wipe_ledger)
        return self.shared, self.url

    def release(self, service: Any, url: str) -> None:
        if self.backend == "sqlite":
            service.close()
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        if self.backend == "sqlite":
            shutil.rmtree(self.directory, ignore_errors=True)


# -- the model ---------------------------------------------------------------------


@dataclass
class MOrder:
    id: str
    project: str
    amount: Decimal
    currency: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    paid: Any = None  # the first successful confirmation's answer


# -- the rules, as DESIGN.md states them --------------------------------------------
# One statement of a credit's validity, that eligibility, expiry, status and a
# voucher's own end all follow; never the code's comparisons copied one by one
# (the code has one in SQL for the expiry job, one for status, one in allocation).


def within_validity(valid_from: dt.datetime, valid_until: dt.datetime | None,
                    at: dt.datetime) -> bool:
    """DESIGN.md 2.8: credit may pay at ``at`` when ``valid_from <= at < valid_until``;
    no end is no end."""
    return valid_from <= at and not ended(valid_until, at)


def ended(valid_until: dt.datetime | None, at: dt.datetime) -> bool:
    """DESIGN.md 2.9, "past ``valid_until``": the half-open validity of 2.8 is over at
    ``at``, so it is over from ``valid_until`` itself on (at ``valid_until``, 2.8's
    ``at < valid_until`` no longer holds). The expiry job records the balance of such
    a credit, a customer reads it as expired, and a voucher past its catalog end is
    refused (2.5)."""
    if valid_until is None:
        return False
    still_valid = at < valid_until  # 2.8's upper bound, as written there
    return not still_valid


@dataclass
class MCredit:
    id: int
    project: str
    kind: str
    currency: str
    total: Decimal
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    created_at: dt.datetime
    products: frozenset[str]
    used: Decimal = ZERO
    expired: Decimal = ZERO
    voided: Decimal = ZERO
    available: Decimal = ZERO
    voided_at: dt.datetime | None = None
    void_reason: str | None = None

    def usable_at(self, at: dt.datetime) -> bool:
        return (self.voided_at is None and self.available > ZERO
                and within_validity(self.valid_from, self.valid_until, at))

    def past_its_end(self, at: dt.datetime) -> bool:
        return ended(self.valid_until, at)

    def covers(self, product: str) -> bool:
        return not self.products or product in self.products

    def order_key(self) -> tuple[int, dt.datetime, dt.datetime, int]:
        return (0 if self.kind == "voucher" else 1, self.valid_until or FAR, self.created_at,
                self.id)

    def status(self, at: dt.datetime) -> str:
        if self.voided_at is not None:
            return "voided"
        if self.past_its_end(at):
            return "expired" if self.expired > ZERO or self.available > ZERO else "exhausted"
        return "exhausted" if self.available == ZERO else "active"


@dataclass
class Model:
    now: dt.datetime = T0
    currencies: dict[str, str] = field(default_factory=dict)
    orders: dict[str, MOrder] = field(default_factory=dict)
    credits: dict[int, MCredit] = field(default_factory=dict)
    # (project, code) -> the credit its activation granted
    activations: dict[tuple[str, str], int] = field(default_factory=dict)
    redemptions: dict[str, int] = field(default_factory=dict)
    settlements: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> answer
    invoices: dict[str, models.Invoice] = field(default_factory=dict)  # key -> invoice
    counter: int = 0


def max_flow(lines: Sequence[Any], credits: Sequence[MCredit]) -> Decimal:
    """Edmonds-Karp on source -> credits -> lines they cover -> sink (exact decimals)."""
    n_credits, n_lines = len(credits), len(lines)
    size = n_credits + n_lines + 2
    source, sink = size - 2, size - 1
    capacity: list[dict[int, Decimal]] = [{} for _ in range(size)]

    def edge(a: int, b: int, cap: Decimal) -> None:
        capacity[a][b] = capacity[a].get(b, ZERO) + cap
        capacity[b].setdefault(a, ZERO)

    infinite = sum((line.amount for line in lines), ZERO) + 1
    for ci, credit in enumerate(credits):
        edge(source, ci, credit.available)
        for li, line in enumerate(lines):
            if credit.covers(line.product):
                edge(ci, n_credits + li, infinite)
    for li, line in enumerate(lines):
        edge(n_credits + li, sink, line.amount)
    total = ZERO
    while True:
        parent = {source: source}
        queue = [source]
        while queue and sink not in parent:
            node = queue.pop(0)
            for nxt, cap in capacity[node].items():
                if cap > ZERO and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if sink not in parent:
            return total
        push, node = infinite, sink
        while node != source:
            push = min(push, capacity[parent[node]][node])
            node = parent[node]
        node = sink
        while node != source:
            capacity[parent[node]][node] -= push
            capacity[node][parent[node]] += push
            node = parent[node]
        total += push


def expected_shares(invoice: models.Invoice, eligible: list[MCredit]) -> dict[int, Decimal]:
    """Each credit's share: the lexicographically first maximal allocation.

    With credits in consumption order, credit k takes what the first k credits
    can pay minus what the first k-1 can (the greedy of a polymatroid).
    """
    shares = {}
    before = ZERO
    for k in range(1, len(eligible) + 1):
        flow = max_flow(invoice.lines, eligible[:k])
        if flow != before:
            shares[eligible[k - 1].id] = flow - before
        before = flow
    return shares


# -- the machine -------------------------------------------------------------------


def amounts(currency: str) -> st.SearchStrategy[Decimal]:
    if currency == "JPY":
        return st.integers(1, 3000).map(Decimal)
    return st.one_of(
        st.integers(1, 6000).map(lambda n: Decimal(n).scaleb(-2)),
        st.integers(1, 40_000_000).map(lambda n: Decimal(n).scaleb(-6)),
    )


# Settlement time of an invoice, in hours from now: mostly around now (where the
# credit is), sometimes long before (no credit was valid then).
HOURS = st.one_of(st.integers(0, 96), st.integers(-24 * 100, 48))
lines_strategy = st.lists(
    st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 6000), st.booleans()),
    min_size=1, max_size=3,
)


#: Where a credit's validity changes its answer, and the instant before.
EDGES = ("before-start", "start", "before-end", "end")
TICK = dt.timedelta(microseconds=1)


def edge_of(credit: MCredit, edge: str) -> dt.datetime | None:
    if edge in ("before-start", "start"):
        return credit.valid_from - (TICK if edge == "before-start" else dt.timedelta(0))
    if credit.valid_until is None:
        return None
    return credit.valid_until - (TICK if edge == "before-end" else dt.timedelta(0))


class LedgerMachine(RuleBasedStateMachine):
    ledgers: ClassVar[Ledgers]

    orders = Bundle("orders")
    credits = Bundle("credits")
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        self.service, self.url = self.ledgers.fresh()
        self.model = Model()
        self.turn = 0

    def teardown(self) -> None:
        self.ledgers.release(self.service, self.url)

    # helpers ---------------------------------------------------------------------

    def currency_of(self, project: str) -> str:
        return self.model.currencies.get(project) or ("JPY" if project == "y1" else "EUR")

    def holds_currency(self, project: str) -> bool:
        """Whether something holds the project's currency: a credit (in any state), an
        order still pending in the ledger (a lapsed one until the expiry job lapses
        it), an activation. Otherwise another currency releases it."""
        return (
            any(c.project == project for c in self.model.credits.values())
            or any(o.project == project and o.status == "pending"
                   for o in self.model.orders.values())
            or any(p == project for p, _code in self.model.activations)
        )

    def new_invoice(
        self, project: str, raw_lines: list[tuple[str, int, bool]], hours: int,
        currency: str | None = None, issued_at: dt.datetime | None = None,
    ) -> models.Invoice:
        self.model.counter += 1
        currency = currency or self.currency_of(project)
        lines = []
        for n, (product, number, fine) in enumerate(raw_lines, start=1):
            if currency == "JPY":
                amount = Decimal(number % 3000 + 1)
            elif fine:
                amount = Decimal(number * 1237 % 40_000_000 + 1).scaleb(-6)
            else:
                amount = Decimal(number).scaleb(-2)
            lines.append({"id": f"l{n}", "product": product, "amount": str(amount)})
        return models.Invoice.model_validate({
            "id": f"inv-{self.model.counter}", "project_id": project, "currency": currency,
            "issued_at": issued_at or self.model.now + dt.timedelta(hours=hours),
            "lines": lines,
        })

    def check_settlement(self, invoice: models.Invoice, result: models.Settlement) -> None:
        """A new settlement against the model, then applied to the model."""
        key = f"invoice/{invoice.project_id}/{invoice.id}"
        assert not result.replayed, key
        total = sum((line.amount for line in invoice.lines), ZERO)
        assert result.total == total
        assert result.credit_applied == sum((a.amount for a in result.allocations), ZERO)
        assert result.amount_due == total - result.credit_applied >= ZERO
        at = invoice.issued_at
        project_currency = self.model.currencies.get(invoice.project_id)
        mismatch = project_currency not in (None, invoice.currency) and self.holds_currency(
            invoice.project_id)
        assert result.note == ("currency_mismatch" if mismatch else None), (result, mismatch)
        if mismatch:
            note("settlement: currency mismatch")
        eligible = sorted(
            (c for c in self.model.credits.values()
             if c.project == invoice.project_id and c.currency == invoice.currency
             and project_currency == invoice.currency and c.usable_at(at)),
            key=MCredit.order_key,
        )
        by_line: dict[str, Decimal] = {}
        by_credit: dict[int, Decimal] = {}
        products = {line.id: line for line in invoice.lines}
        for share in result.allocations:
            credit = self.model.credits[share.credit_id]
            assert credit in eligible, (share, credit)
            assert share.kind == credit.kind
            assert share.amount > ZERO
            assert credit.covers(products[share.line_id].product), share
            by_line[share.line_id] = by_line.get(share.line_id, ZERO) + share.amount
            by_credit[credit.id] = by_credit.get(credit.id, ZERO) + share.amount
        for line_id, paid in by_line.items():
            assert paid <= products[line_id].amount
        for credit_id, paid in by_credit.items():
            assert paid <= self.model.credits[credit_id].available
        assert result.credit_applied == max_flow(invoice.lines, eligible), "credit left idle"
        assert by_credit == expected_shares(invoice, eligible), "not in consumption order"
        note("settlement: credit applied" if by_credit else "settlement: no credit")
        if len(by_credit) > 1:
            note("settlement: several credits")
        if any(self.model.credits[c].products for c in by_credit):
            note("settlement: a scoped voucher paid")
        for credit_id, paid in by_credit.items():
            credit = self.model.credits[credit_id]
            credit.available -= paid
            credit.used += paid
        self.model.settlements[key] = _shape(result)
        self.model.invoices[key] = invoice

    # orders ----------------------------------------------------------------------

    @rule(target=orders, project=st.sampled_from(PROJECTS),
          amount=st.one_of(st.integers(500, 50000).map(lambda n: Decimal(n).scaleb(-2)),
                           st.sampled_from([Decimal("4.99"), Decimal("100000.01"),
                                            Decimal("10.001"), Decimal("12.5"),
                                            Decimal(7), Decimal(100000)])),
          currency=st.sampled_from([None, "EUR", "JPY"]))
    def create_order(self, project: str, amount: Decimal, currency: str | None) -> Any:
        created = self._create(project, amount, currency)
        return multiple() if created is None else created

    @rule(target=credits, project=st.sampled_from(PROJECTS),
          cents=st.integers(500, 30000))
    def buy_credit(self, project: str, cents: int) -> Any:
        """Create and pay an order in one step (the common path, made frequent)."""
        amount = Decimal(cents)
        if self.model.currencies.get(project) != "JPY":
            amount = amount.scaleb(-2)  # EUR, or the default currency to come
        order_id = self._create(project, amount, None)
        assert order_id is not None
        return self.pay(order_id, "amount")

    def _create(self, project: str, amount: Decimal, currency: str | None) -> str | None:
        code = currency or self.model.currencies.get(project) or "EUR"
        places = 0 if code == "JPY" else 2
        expected: set[type[Exception]] = set()
        exact = amount == amount.quantize(Decimal(1).scaleb(-places))
        if not exact or not Decimal(5) <= amount <= Decimal(100000):
            expected.add(exceptions.InvalidAmount)
        known = self.model.currencies.get(project)
        if known is not None and known != code and not expected and self.holds_currency(project):
            expected.add(exceptions.CurrencyMismatch)
        try:
            order = self.service.create_order(project, amount, currency=currency,
                                              at=self.model.now)
        except exceptions.CreditError as error:
            assert type(error) in expected, (error, expected)
            return None
        assert not expected, (order, expected)
        assert (order.project_id, order.amount, order.currency, order.status) == (
            project, amount, code, "pending")
        assert order.expires_at == self.model.now + dt.timedelta(days=7)
        assert order.payment_url.endswith(order.id)
        self.model.currencies[project] = code
        self.model.orders[order.id] = MOrder(order.id, project, amount, code, "pending",
                                             self.model.now, order.expires_at)
        return order.id

    @rule(target=credits, order_id=orders,
          variant=st.sampled_from(["plain", "amount", "wrong-amount", "wrong-currency"]))
    def pay(self, order_id: str, variant: str) -> Any:
        order = self.model.orders[order_id]
        now = self.model.now
        kwargs: dict[str, Any] = {}
        expected: type[Exception] | None = None
        if variant == "amount":
            kwargs = {"amount": str(order.amount), "currency": order.currency}
        elif variant == "wrong-amount":
            kwargs = {"amount": order.amount + Decimal(1)}
            expected = exceptions.InvalidAmount
        elif variant == "wrong-currency":
            kwargs = {"currency": "JPY" if order.currency == "EUR" else "EUR"}
            expected = exceptions.CurrencyMismatch
        if expected is None and order.status != "paid" and (
            order.status in ("cancelled", "expired") or now >= order.expires_at
        ):
            expected = exceptions.InvalidState
        try:
            paid = self.service.pay_order(order_id, at=now, **kwargs)
        except exceptions.CreditError as error:
            assert type(error) is expected, (error, expected, order)
            return multiple()
        assert expected is None, (paid, expected)
        if order.paid is not None:  # a replay: the same answer
            assert paid.model_dump() == order.paid.model_dump()
            return multiple()
        assert paid.status == "paid" and paid.paid_at == now and paid.credit_id is not None
        note("order paid")
        order.status, order.paid = "paid", paid
        self.model.credits[paid.credit_id] = MCredit(
            paid.credit_id, order.project, "purchased", order.currency, order.amount,
            valid_from=now, valid_until=add_months(now, 13), created_at=now,
            products=frozenset(), available=order.amount)
        return paid.credit_id

    @rule(order_id=orders)
    def cancel(self, order_id: str) -> None:
        order = self.model.orders[order_id]
        fails = order.status != "cancelled" and (
            order.status != "pending" or self.model.now >= order.expires_at)
        try:
            cancelled = self.service.cancel_order(order_id, at=self.model.now)
        except exceptions.InvalidState:
            assert fails, order
            return
        assert not fails and cancelled.status == "cancelled", (cancelled, order)
        order.status = "cancelled"

    # vouchers --------------------------------------------------------------------

    @rule(target=credits, project=st.sampled_from(PROJECTS), code=st.sampled_from(CODES))
    def activate(self, project: str, code: str) -> Any:
        now = self.model.now
        voucher = VOUCHERS.get(code)
        expected: type[Exception] | None = None
        until = None
        if (project, code) in self.model.activations:
            # Activated before: that credit again, nothing new, no failed attempt.
            again = self.service.activate_voucher(project, code, at=now)
            assert again.id == self.model.activations[(project, code)], again
            return multiple()
        if voucher is None:
            expected = exceptions.VoucherRefused
        else:
            until = (workload.parse_time(voucher["valid_until"])
                     if voucher.get("valid_until") else None)
            limit = voucher.get("max_redemptions")
            if voucher["status"] != "active" or ended(until, now) or (
                limit is not None and self.model.redemptions.get(code, 0) >= limit
            ):
                expected = exceptions.VoucherRefused
            elif (self.model.currencies.get(project, voucher["currency"]) != voucher["currency"]
                  and self.holds_currency(project)):
                # A currency nothing holds any more is released for the voucher.
                expected = exceptions.CurrencyMismatch
        try:
            credit = self.service.activate_voucher(project, code, at=now)
        except exceptions.CreditError as error:
            assert type(error) is expected, (error, expected)
            return multiple()
        assert expected is None and voucher is not None, (credit, expected)
        ends = [d for d in (until, now + dt.timedelta(days=voucher["validity_days"])
                            if voucher.get("validity_days") else None) if d is not None]
        amount = Decimal(voucher["amount"])
        assert (credit.kind, credit.source, credit.total, credit.available) == (
            "voucher", code, amount, amount)
        assert credit.valid_from == now and credit.valid_until == (min(ends) if ends else None)
        note("voucher activated")
        self.model.activations[(project, code)] = credit.id
        self.model.redemptions[code] = self.model.redemptions.get(code, 0) + 1
        self.model.currencies[project] = voucher["currency"]
        self.model.credits[credit.id] = MCredit(
            credit.id, project, "voucher", voucher["currency"], amount, valid_from=now,
            valid_until=credit.valid_until, created_at=now,
            products=frozenset(voucher["products"]), available=amount)
        return credit.id

    @rule(target=credits, credit_id=credits, code=st.sampled_from(CODES))
    def activate_where_credit_is(self, credit_id: int, code: str) -> Any:
        """A second credit on a project that has one: mixes kinds, ends and scopes."""
        return self.activate(self.model.credits[credit_id].project, code)

    # settlement ------------------------------------------------------------------

    @rule(target=settled, project=st.sampled_from(PROJECTS), raw=lines_strategy,
          hours=HOURS, odd_currency=st.booleans())
    def settle_one(
        self, project: str, raw: list[tuple[str, int, bool]], hours: int, odd_currency: bool
    ) -> Any:
        currency = None
        if odd_currency and hours % 5 == 0:  # now and then, the wrong currency
            currency = "JPY" if self.currency_of(project) == "EUR" else "EUR"
        invoice = self.new_invoice(project, raw, hours, currency)
        # Another currency than the project's is settled too: no credit, a note.
        result = self.service.settle_invoice(invoice, at=self.model.now)
        self.check_settlement(invoice, result)
        return invoice

    @rule(target=settled, credit_id=credits, raw=lines_strategy, hours=HOURS)
    def settle_where_credit_is(
        self, credit_id: int, raw: list[tuple[str, int, bool]], hours: int
    ) -> Any:
        """An invoice of a project that has (or had) credit, made frequent."""
        return self.settle_one(self.model.credits[credit_id].project, raw, hours, False)

    @rule(target=settled, credit_id=credits, raw=lines_strategy,
          edge=st.sampled_from(EDGES))
    def settle_at_an_edge(
        self, credit_id: int, raw: list[tuple[str, int, bool]], edge: str
    ) -> Any:
        """An invoice issued where a credit's eligibility changes its answer: at its
        start, one microsecond before it, at its end, one microsecond before that."""
        credit = self.model.credits[credit_id]
        issued_at = edge_of(credit, edge)
        if issued_at is None:
            return multiple()
        note(f"settlement at a credit's edge: {edge}")
        invoice = self.new_invoice(credit.project, raw, 0, issued_at=issued_at)
        result = self.service.settle_invoice(invoice, at=self.model.now)
        self.check_settlement(invoice, result)
        return invoice

    @rule(target=settled, project=st.sampled_from(PROJECTS),
          batch=st.lists(st.tuples(lines_strategy, HOURS),
                         min_size=1, max_size=5),
          duplicate=st.booleans(), replay=st.booleans(), size=st.integers(1, 6))
    def settle_batch(
        self, project: str, batch: list[tuple[list[tuple[str, int, bool]], int]],
        duplicate: bool, replay: bool, size: int,
    ) -> Any:
        invoices = [self.new_invoice(project, raw, hours) for raw, hours in batch]
        sent = list(invoices)
        if duplicate:
            sent.insert(len(sent) // 2 + 1, invoices[0])
        old = [k for k in self.model.invoices if k.startswith(f"invoice/{project}/")]
        if replay and old:
            sent.insert(1, self.model.invoices[old[len(old) // 2]])
        results = list(self.service.settle_invoices(sent, batch_size=size,
                                                    at=self.model.now))
        assert len(results) == len(sent)
        for invoice, result in zip(sent, results, strict=True):
            # Only replays and new invoices are sent: nothing is refused.
            assert isinstance(result, models.Settlement), result
            key = f"invoice/{invoice.project_id}/{invoice.id}"
            if key in self.model.settlements:
                note("batch: replay")
                assert result.replayed, key
                assert _shape(result) == self.model.settlements[key]
            else:
                self.check_settlement(invoice, result)
        return multiple(*invoices)

    @rule(invoice=settled)
    def replay(self, invoice: models.Invoice) -> None:
        key = f"invoice/{invoice.project_id}/{invoice.id}"
        result = self.service.settle_invoice(invoice, at=self.model.now)
        assert result.replayed
        assert _shape(result) == self.model.settlements[key]

    @rule(invoice=settled, how=st.sampled_from(["amount", "line", "time", "product"]))
    def conflicting_replay(self, invoice: models.Invoice, how: str) -> None:
        lines = list(invoice.lines)
        changes: dict[str, Any] = {}
        if how == "amount":
            lines[0] = lines[0].model_copy(update={"amount": lines[0].amount + Decimal(1)})
        elif how == "line":
            lines.append(lines[0].model_copy(update={"id": "extra"}))
        elif how == "product":
            lines[0] = lines[0].model_copy(update={"product": "other"})
        else:
            changes["issued_at"] = invoice.issued_at + dt.timedelta(seconds=1)
        changed = invoice.model_copy(update={"lines": lines, **changes})
        note("conflicting replay")
        with pytest.raises(exceptions.SettlementConflict):
            self.service.settle_invoice(changed, at=self.model.now)

    # expiry, voids, time ---------------------------------------------------------

    @rule()
    def expire(self) -> None:
        now = self.model.now
        summary = self.service.expire(at=now)
        lapsed = [o for o in self.model.orders.values()
                  if o.status == "pending" and o.expires_at <= now]
        expiring = [c for c in self.model.credits.values()
                    if c.past_its_end(now) and c.available > ZERO and c.voided_at is None]
        amounts_by_currency: dict[str, Decimal] = {}
        for credit in expiring:
            amounts_by_currency[credit.currency] = (
                amounts_by_currency.get(credit.currency, ZERO) + credit.available)
        note(f"expiry: {'some' if expiring else 'no'} credit expired")
        assert summary.orders_lapsed == len(lapsed)
        assert summary.credits_expired == len(expiring)
        assert summary.amount_expired == amounts_by_currency
        for order in lapsed:
            order.status = "expired"
        for credit in expiring:
            credit.expired += credit.available
            credit.available = ZERO

    @rule(credit_id=credits, reason=st.sampled_from(["fraud", "charge-back", "  "]),
          now=st.integers(0, 2))
    def void(self, credit_id: int, reason: str, now: int) -> None:
        if now:  # rarer than other rules: a voided credit takes no further part
            return
        credit = self.model.credits[credit_id]
        try:
            voided = self.service.void_credit(credit_id, reason=reason, at=self.model.now)
        except exceptions.InvalidInput:
            assert not reason.strip()
            return
        except exceptions.InvalidState:
            # Voided before, for another reason (the same reason is a replay).
            assert credit.voided_at is not None and credit.void_reason != reason.strip()
            return
        assert reason.strip()
        assert voided.status == "voided" and voided.available == ZERO
        if credit.voided_at is not None:
            # A retry, or an operator re-running the command: nothing changes.
            assert credit.void_reason == reason.strip()
            note("void replayed")
            return
        if credit.past_its_end(self.model.now):
            # Lost to expiry, as the expiry job would record it; the void loses nothing.
            credit.expired += credit.available
            credit.available = ZERO
            note("void past the credit's end")
        credit.voided += credit.available
        credit.available = ZERO
        credit.voided_at = self.model.now
        credit.void_reason = reason.strip()
        note("credit voided")

    @rule(credit_id=credits, edge=st.sampled_from(EDGES[2:]), run_expiry=st.booleans())
    def advance_to_an_end(self, credit_id: int, edge: str, run_expiry: bool) -> None:
        """Time moves to exactly a credit's end, or one microsecond before it: where
        expiry and status change their answer (steps of hours and days never land
        there); the expiry job runs there half the time."""
        moment = edge_of(self.model.credits[credit_id], edge)
        if moment is not None and moment > self.model.now:
            note(f"time moved to a credit's edge: {edge}")
            self.model.now = moment
            if run_expiry:
                self.expire()

    @rule(step=st.sampled_from([dt.timedelta(hours=1), dt.timedelta(days=1),
                                dt.timedelta(days=8), dt.timedelta(days=35),
                                dt.timedelta(days=100), dt.timedelta(days=400)]))
    def advance_time(self, step: dt.timedelta) -> None:
        self.model.now += step

    # invariants --------------------------------------------------------------------

    @invariant()
    def ledger_matches_the_model(self) -> None:
        """Audit, every row against the model, and one project through the API."""
        report = self.service.audit()
        assert report.ok, report.violations
        now = self.model.now

        def rows(conn: Any) -> tuple[list[Any], list[Any], int, int]:
            entries = schema.ledger_entries
            debits = conn.execute(sa.select(sa.func.count()).select_from(entries)
                                  .where(entries.c.type == "debit")).scalar_one()
            settlements = conn.execute(sa.select(sa.func.count())
                                       .select_from(schema.settlements)).scalar_one()
            return (list(conn.execute(sa.select(schema.credits))),
                    list(conn.execute(sa.select(schema.orders))), int(debits), int(settlements))

        credits, orders, debits, settlements = self.service.database.read(rows)
        # No settlement applied twice: one row per settled key, one debit per allocation.
        assert settlements == len(self.model.settlements)
        assert debits == sum(len(s["allocations"]) for s in self.model.settlements.values())
        assert {row.id for row in credits} == set(self.model.credits)
        for row in credits:
            model = self.model.credits[row.id]
            assert (row.project_id, row.kind, row.currency) == (model.project, model.kind,
                                                                model.currency)
            assert (row.total, row.used, row.expired, row.voided, row.available) == (
                model.total, model.used, model.expired, model.voided, model.available
            ), row.id
            assert row.available >= ZERO
            assert (row.valid_from, row.valid_until) == (model.valid_from, model.valid_until)
            assert (row.voided_at is None) == (model.voided_at is None)
        assert {row.id: row.status for row in orders} == {
            o.id: o.status for o in self.model.orders.values()}

        # The API's view of one project (in turn): order, status, scope, lapsed orders.
        self.turn += 1
        project = PROJECTS[self.turn % len(PROJECTS)]
        found = self.service.list_credits(project, at=now)
        mine = sorted((c for c in self.model.credits.values() if c.project == project),
                      key=MCredit.order_key)
        assert [c.id for c in found] == [c.id for c in mine]
        for credit, model in zip(found, mine, strict=True):
            assert credit.status == model.status(now), credit.id
            assert frozenset(credit.products) == model.products
            # As of now: an expired credit's remainder shows as expired, job run or not.
            lost = model.available if model.status(now) == "expired" else ZERO
            assert (credit.available, credit.expired) == (model.available - lost,
                                                          model.expired + lost)
        for order in self.service.list_orders(project, at=now):
            model_order = self.model.orders[order.id]
            status = model_order.status
            if status == "pending" and now >= model_order.expires_at:
                status = "expired"
            assert order.status == status, (order, model_order)
            assert order.credit_id == (model_order.paid.credit_id
                                       if model_order.paid else None)


STATS: collections.Counter[str] = collections.Counter()


def note(what: str) -> None:
    """Count what the programs exercised (printed at the end, hypothesis' events too)."""
    STATS[what] += 1
    if hypothesis.currently_in_test_context():
        hypothesis.event(what)


def _shape(result: models.Settlement) -> dict[str, Any]:
    shown = result.model_dump(mode="json")
    shown.pop("replayed")
    return shown


# -- the test -------------------------------------------------------------------------


@pytest.fixture
def ledgers(backend: str, server_pool: ServerPool, tmp_path: Path) -> Iterator[Ledgers]:
    made = Ledgers(backend, server_pool, tmp_path)
    yield made
    made.close()


def test_service_behaves_like_its_model(ledgers: Ledgers) -> None:
    machine = type(f"LedgerMachine_{ledgers.backend}", (LedgerMachine,), {"ledgers": ledgers})
    config = settings(
        max_examples=examples_for(ledgers.backend),
        stateful_step_count=STEPS,
        # An example is a program of STEPS steps against a real database: seconds,
        # not hypothesis' 200 ms default.
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )
    test = get_state_machine_test(machine, settings=config)
    if os.environ.get("OVH_CREDIT_STATEFUL_REPRODUCE"):
        version, blob = os.environ["OVH_CREDIT_STATEFUL_REPRODUCE"].split(":", 1)
        test = hypothesis.reproduce_failure(version, blob.encode())(test)
    if os.environ.get("OVH_CREDIT_STATEFUL_SEED"):
        test = hypothesis.seed(int(os.environ["OVH_CREDIT_STATEFUL_SEED"]))(test)
    STATS.clear()
    test()
    print(f"\n{ledgers.backend}: {dict(sorted(STATS.items()))}")
