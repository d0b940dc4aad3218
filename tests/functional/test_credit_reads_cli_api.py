"""What the REST API and the command line answer about voids, over a socket and argv.

A void reason the ledger cannot hold (a NUL, which PostgreSQL refuses in text)
is a 400 ``invalid_request`` on every backend, not a 500 on PostgreSQL and a
stored NUL on SQLite; nothing is voided.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ovh_credit_plugin.service import inputs
from tests.support.api import ADMIN_PROJECT, PROJECT, call, standalone
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def admin() -> dict[str, str]:
    return {"X-Project-Id": ADMIN_PROJECT, "X-User-Id": "root", "X-Roles": "admin",
            "Content-Type": "application/json"}


def bought(ledger: Ledger) -> int:
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        paid = service.pay_order(service.create_order(PROJECT, "20.00", at=T0).id, at=T0)
        assert paid.credit_id is not None
        return paid.credit_id
    finally:
        service.close()


def test_a_void_reason_with_a_nul_is_a_bad_request_and_voids_nothing(ledger: Ledger) -> None:
    credit_id = bought(ledger)
    with standalone(ledger) as url:
        refused = call("POST", f"{url}/v1/credits/{credit_id}/void", headers=admin(),
                       data=b'{"reason": "charge-back\\u0000"}')
        shown = call("GET", f"{url}/v1/credits/{credit_id}", headers=admin())
    assert refused.status_code == 400, refused.text
    error = refused.json()["errors"][0]
    assert error["code"] == "cloud_credit.invalid_request"
    assert "reason" in error["detail"]
    assert shown.status_code == 200, shown.text
    assert (shown.json()["status"], shown.json()["voided"]) == ("active", "0.00")
    assert [e["type"] for e in shown.json()["entries"]] == ["grant"]


def test_the_command_line_refuses_a_reason_that_is_not_utf8(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "20.00")
    credit_id = str(cli.ok("order", "pay", order["id"])["credit_id"])
    # A non-UTF-8 argv byte reaches Python as a lone surrogate.
    refused = cli("credit", "void", credit_id, "--reason", "fraud \udcff")
    assert refused.code != 0 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "void reason" in refused.stderr
    assert cli.ok("credit", "show", credit_id)["status"] == "active"
