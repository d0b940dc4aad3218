"""The two rows an activation's transactions lock, always in one order: no deadlock.

A first try of a voucher in another currency than its project's moves the
project (``Vouchers._hold_currency``) while another try of the same code
resumes the intent (``Vouchers._resume``: the claim, then the grant). Each
locks the activation's row and the project's row; taken in opposite orders,
PostgreSQL and MariaDB found a deadlock, and the ledger retried the victim's
transaction: nothing lost, but a wasted round and a retry WARNING in the logs.

Driven step by step on the real servers (SQLite writers never race): the
resume pauses inside its transaction holding its first lock, the first try's
move starts and is seen waiting on a lock, then the resume goes on. The
release of a project's currency, which locks the project's row alone, is
driven against a resume the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.service import CreditService
from tests.service.test_vouchers import (  # noqa: F401 (backend, stub: fixtures)
    StubCatalog,
    backend,
    crash_before_the_get,
    redemptions,
    stub,
)
from tests.support.ledgers import T0, Ledger, ServerPool
from tests.support.locks import race

LOCKED_ACTIVATION = re.compile(
    r"^SELECT .*FROM cloud_credit_voucher_activations WHERE .*FOR UPDATE$")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("resume", ["claim", "grant"])
def test_a_first_try_moving_the_project_waits_for_a_resume_instead_of_deadlocking(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    server_pool: ServerPool, caplog: pytest.LogCaptureFixture, resume: str,
) -> None:
    # Try A of a JPY voucher for a new project writes its intent, holding EUR
    # (the default), and asks the catalog. Meanwhile try B (a second click)
    # resumes the intent and locks its activation's row: in its claim, when
    # its lookup tells JPY (it then moves the project itself), or in its
    # grant, when its lookup was refused (a lagging replica: it sends the key
    # as it is, and the redemption tells JPY). A's lookup answers JPY: A must
    # move the project, and waits for B's lock. B then locks the project's
    # row, commits, and A finds the project moved: one credit, in JPY, for
    # both tries, no transaction retried. Before, A locked the project's row
    # first and then waited for the activation's: a deadlock.
    a_asking, a_may_answer = threading.Event(), threading.Event()
    b_ready: list[bool] = []  # B looked the code up (claim) or redeemed it (grant)

    def get(code: str) -> models.Voucher:
        if threading.current_thread().name == "first try":
            a_asking.set()
            assert a_may_answer.wait(30)
            return stub.inner.get(code)
        if resume == "grant":
            raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)
        answer = stub.inner.get(code)
        b_ready.append(True)
        return answer

    one_at_a_time = threading.Lock()

    def redeem(code: str, **kwargs: Any) -> models.Redemption:
        # The file catalog's first redemption of a code inserts its counter:
        # two at once, and one of them retries (a unique key), which is the
        # catalog's race, not the ledger's. A real catalog answers both.
        with one_at_a_time:
            redemption = stub.inner.redeem(code, **kwargs)
        if threading.current_thread().name == "holder":
            b_ready.append(True)
        return redemption

    stub.on_get, stub.on_redeem = get, redeem
    outcome: dict[str, Any] = {}

    def first_try() -> None:
        try:
            outcome["a"] = service.activate_voucher_outcome("p1", "YEN-1000", at=T0)
        except BaseException as error:
            outcome["a"] = error

    first = threading.Thread(target=first_try, name="first try")
    first.start()
    assert a_asking.wait(30)
    assert service.project_currency("p1") == "EUR"

    def answer_first_try() -> Any:
        a_may_answer.set()
        first.join(60)
        return outcome["a"]

    caplog.set_level(logging.WARNING)
    try:
        resumed, moved = race(
            ledger.backend, server_pool,
            holder=(service.database.engine,
                    lambda: service.activate_voucher_outcome("p1", "YEN-1000", at=T0)),
            waiter=(service.database.engine, answer_first_try),
            holds=lambda statement: bool(b_ready) and bool(LOCKED_ACTIVATION.search(statement)),
        )
    finally:
        a_may_answer.set()
        first.join(60)
    retried = [r.getMessage() for r in caplog.records
               if r.name == "ovh_credit_plugin.ledger.database"]
    # Before: "ledger transaction attempt 1 of 8 failed (OperationalError SQLSTATE
    # 40P01: deadlock); retrying" (MariaDB's 1213 is SQLSTATE 40001).
    assert retried == [], retried
    assert isinstance(resumed, tuple) and isinstance(moved, tuple), (resumed, moved)
    (b_credit, b_created), (a_credit, a_created) = resumed, moved
    if resume == "grant":  # B granted holding the row; A's replay reads it back
        assert (b_created, a_created) == (True, False)
    else:  # both redeem once B's claim commits: either grants, the other reads it back
        assert sorted([b_created, a_created]) == [False, True]
    assert a_credit == b_credit
    assert (b_credit.currency, b_credit.total) == ("JPY", Decimal("1000"))
    assert service.project_currency("p1") == "JPY"
    assert [c.id for c in service.list_credits("p1", at=T0)] == [b_credit.id]
    assert stub.redeems == 2 and redemptions(service, "YEN-1000") == 1
    assert service.pending_activations() == []
    assert [r["event"] for r in service.voucher_attempts("p1", at=T0)] == ["succeeded"]


LOCKED_PROJECT = re.compile(r"^SELECT .*FROM cloud_credit_projects WHERE .*FOR UPDATE$")


@pytest.mark.parametrize("backend", [
    "postgresql", "mariadb",
], indirect=True)
def test_releasing_a_projects_currency_waits_for_a_resume_instead_of_deadlocking(
    service: CreditService, stub: StubCatalog, ledger: Ledger,  # noqa: F811
    server_pool: ServerPool, caplog: pytest.LogCaptureFixture,
) -> None:
    # A refused try of a code releases the project's currency (release_currency,
    # a transaction of its own, after the refusal) while another code's intent is
    # resumed: the release locks the project's row, the resume's claim locks its
    # activation's row and waits for the project's. The release finds the
    # activation holding the currency and keeps it; no transaction is retried.
    crash_before_the_get(service, stub, "WELCOME-2026")
    caplog.set_level(logging.WARNING)
    released, resumed = race(
        ledger.backend, server_pool,
        holder=(service.database.engine, lambda: service.vouchers.release_currency("p1")),
        waiter=(service.database.engine,
                lambda: service.activate_voucher_outcome("p1", "WELCOME-2026", at=T0)),
        holds=lambda statement: bool(LOCKED_PROJECT.search(statement)),
    )
    retried = [r.getMessage() for r in caplog.records
               if r.name == "ovh_credit_plugin.ledger.database"]
    assert retried == [], retried
    assert released is None and isinstance(resumed, tuple), (released, resumed)
    credit, created = resumed
    assert created and credit.total == Decimal("50.00")
    assert service.project_currency("p1") == "EUR"
    assert service.pending_activations() == []
