"""Concurrent requests over a real socket, on SQLite, PostgreSQL and MariaDB.

Each test releases all its clients at once (a barrier), against the
standalone server (noauth: the clients say who they are in headers).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import inputs
from tests.support.api import PROJECT, call, standalone
from tests.support.ledgers import Ledger


def at_once(count: int, request: Callable[[int], Any]) -> list[Any]:
    """``request(i)`` for i in range(count), all started together; their responses."""
    barrier = threading.Barrier(count, timeout=60)

    def run(index: int) -> Any:
        barrier.wait()
        return request(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def rows(ledger: Ledger, table: sa.Table, *where: Any) -> int:
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(table).where(*where)
            ).scalar_one())
    finally:
        engine.dispose()


def member(project: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": f"user-{project}", "X-Roles": "member,reader"}


def test_one_single_use_code_from_fifty_projects_gives_one_credit(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        responses = at_once(50, lambda i: call(
            "POST", f"{url}/v1/vouchers", headers=member(f"race-{i:02d}"),
            json_body={"code": "GPU-ONLY"},
        ))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, [r.text for r in responses if r.status_code >= 500]
    assert {r.json()["errors"][0]["code"] for r in responses if r.status_code == 409} == {
        "cloud_credit.voucher_redeemed"}
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    credits = schema.credits
    assert rows(ledger, credits, credits.c.source == "GPU-ONLY") == 1
    assert rows(ledger, credits, credits.c.project_id == winner["project_id"]) == 1
    assert rows(ledger, schema.catalog_redemptions) == 1


def test_fifty_identical_orders_under_one_idempotency_key_make_one_order(
    ledger: Ledger,
) -> None:
    headers = {**member(PROJECT), "Idempotency-Key": "checkout-7f3a"}
    with standalone(ledger) as url:
        responses = at_once(50, lambda _: call(
            "POST", f"{url}/v1/orders", headers=headers, json_body={"amount": "25.00"},
        ))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 49}, [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.headers["Location"] for r in responses}) == 1
    assert rows(ledger, schema.orders) == 1
    assert rows(ledger, schema.order_keys) == 1


def test_twenty_payment_confirmations_of_one_order_give_one_credit(ledger: Ledger) -> None:
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        order = service.create_order(PROJECT, "40.00")
    finally:
        service.close()
    payer = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}
    with standalone(ledger) as url:
        responses = at_once(20, lambda _: call(
            "POST", f"{url}/v1/orders/{order.id}/payment", headers=payer,
            json_body={"amount": "40.00", "currency": "EUR"},
        ))
    assert Counter(r.status_code for r in responses) == {200: 20}, [r.text for r in responses]
    documents = [r.json() for r in responses]
    assert {(d["status"], d["credit_id"]) for d in documents} == {
        ("paid", documents[0]["credit_id"])}
    assert rows(ledger, schema.credits) == 1
    assert rows(ledger, schema.ledger_entries) == 1  # one grant
