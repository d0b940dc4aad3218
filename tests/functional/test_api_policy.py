"""Every route x every persona, through keystonemiddleware (AuthTokenFixture), over a socket.

The expected statuses are the policy table of DESIGN.md section 4 with the
default rules: a project reader reads, a project member acts, an admin may do
anything (on any project with ``?project_id=``), the ``service`` role
confirms payments; another project's credit or order is a 404, never a 403.
A refused request writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ovh_credit_plugin import models
from ovh_credit_plugin.service import inputs
from tests.support.api import (
    PERSONAS,
    PROJECT,
    Tokens,
    auth_token_fixture,
    call,
    standalone,
)
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Policy does not depend on the database: SQLite only here."""
    return str(request.param)


@dataclass(frozen=True)
class Objects:
    credit_id: int  # project A's purchased credit
    paid_order: str
    pending_order: str


def seed(ledger: Ledger) -> Objects:
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        paid = service.create_order(PROJECT, "20.00")
        paid = service.pay_order(paid.id)
        pending = service.create_order(PROJECT, "30.00")
        assert paid.credit_id is not None
        # Its settlement, read by the settlement routes.
        service.settle_invoice(models.Invoice.model_validate({
            "id": "INV-1", "project_id": PROJECT, "currency": "EUR",
            "issued_at": inputs.now().isoformat(),
            "lines": [{"id": "l1", "product": "compute", "amount": "5.00"}]}))
        return Objects(paid.credit_id, paid.id, pending.id)
    finally:
        service.close()


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str  # {credit}, {paid}, {pending} filled in from the seeded objects
    body: dict[str, Any] | None
    # persona -> expected status
    expected: dict[str, int]
    writes: bool = False  # a success changes the ledger


def _expect(reader: int, member: int, admin: int, other: int, service: int) -> dict[str, int]:
    return {"reader": reader, "member": member, "admin": admin, "other": other,
            "service": service}


ROUTES = [
    Route("list credits", "GET", "credits", None, _expect(200, 200, 200, 200, 403)),
    Route("list credits of A", "GET", f"credits?project_id={PROJECT}", None,
          _expect(200, 200, 200, 403, 403)),
    Route("show credit", "GET", "credits/{credit}", None, _expect(200, 200, 200, 404, 403)),
    Route("forecast", "GET", "forecast", None, _expect(200, 200, 200, 200, 403)),
    Route("forecast of A", "GET", f"forecast?project_id={PROJECT}", None,
          _expect(200, 200, 200, 403, 403)),
    Route("void credit", "POST", "credits/{credit}/void", {"reason": "charge-back"},
          _expect(403, 403, 200, 403, 403), writes=True),
    Route("activate voucher", "POST", "vouchers", {"code": "WELCOME-2026"},
          _expect(403, 201, 201, 201, 403), writes=True),
    Route("activate voucher on A", "POST", f"vouchers?project_id={PROJECT}",
          {"code": "WELCOME-2026"}, _expect(403, 201, 201, 403, 403), writes=True),
    Route("check voucher", "GET", "vouchers/WELCOME-2026", None,
          _expect(403, 200, 200, 200, 403)),
    Route("create order", "POST", "orders", {"amount": "25.00"},
          _expect(403, 201, 201, 201, 403), writes=True),
    Route("create order on A", "POST", f"orders?project_id={PROJECT}", {"amount": "25.00"},
          _expect(403, 201, 201, 403, 403), writes=True),
    Route("list orders", "GET", "orders", None, _expect(200, 200, 200, 200, 403)),
    Route("list orders of A", "GET", f"orders?project_id={PROJECT}", None,
          _expect(200, 200, 200, 403, 403)),
    Route("show order", "GET", "orders/{paid}", None, _expect(200, 200, 200, 404, 403)),
    Route("cancel order", "POST", "orders/{pending}/cancel", None,
          _expect(403, 200, 200, 404, 403), writes=True),
    Route("pay order", "POST", "orders/{pending}/payment",
          {"amount": "30.00", "currency": "EUR"}, _expect(403, 403, 200, 403, 200),
          writes=True),
    # The admin's and the other project's own projects settled no INV-1: 404.
    Route("show settlement", "GET", "settlements?invoice=INV-1", None,
          _expect(200, 200, 404, 404, 403)),
    Route("show settlement of A", "GET", f"settlements?invoice=INV-1&project_id={PROJECT}",
          None, _expect(200, 200, 200, 403, 403)),
    Route("show settlement by key", "GET", f"settlements?key=invoice/{PROJECT}/INV-1", None,
          _expect(200, 200, 200, 404, 403)),
    Route("list OVH credit ids", "GET", "ovh/cloud/project/{project}/credit", None,
          _expect(200, 200, 200, 403, 403)),
    Route("show OVH credit", "GET", "ovh/cloud/project/{project}/credit/{credit}", None,
          _expect(200, 200, 200, 404, 403)),
]

CASES = [pytest.param(route, persona, id=f"{route.name}-{persona}")
         for route in ROUTES for persona in PERSONAS]


@pytest.fixture
def tokens() -> Iterator[Tokens]:
    with auth_token_fixture() as made:
        yield made


@pytest.mark.parametrize(("route", "persona"), CASES)
def test_route_by_persona(ledger: Ledger, tokens: Tokens, route: Route, persona: str) -> None:
    objects = seed(ledger)
    path = route.path.format(credit=objects.credit_id, paid=objects.paid_order,
                             pending=objects.pending_order, project=PROJECT)
    expected = route.expected[persona]
    before = ledger.checksum()
    with standalone(ledger, auth="keystone") as url:
        response = call(route.method, f"{url}/v1/{path}", headers=tokens.headers(persona),
                        json_body=route.body)
    assert response.status_code == expected, response.text
    assert response.headers["X-Openstack-Request-Id"].startswith("req-")
    document = response.json()
    if expected >= 400:
        (error,) = document["errors"]
        assert error["status"] == expected
        assert error["code"] == {403: "cloud_credit.forbidden",
                                 404: "cloud_credit.not_found"}[expected]
        assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
        assert ledger.checksum() == before  # refused: nothing written
        return
    acting_on = PROJECT if "project_id=" in path else PERSONAS[persona].project_id
    if route.name.startswith("list credits"):
        assert [c["project_id"] for c in document["credits"]] == (
            [PROJECT] if acting_on == PROJECT else [])
    elif route.name.startswith("forecast"):
        assert [c["credit_id"] for c in document["credits"]] == (
            [objects.credit_id] if acting_on == PROJECT else [])
    elif route.name.startswith("list orders"):
        assert {o["project_id"] for o in document["orders"]} == (
            {PROJECT} if acting_on == PROJECT else set())
    elif route.name == "list OVH credit ids":
        assert document == [objects.credit_id]
    elif route.name == "show OVH credit":
        assert (document["id"], document["bill"]) == (objects.credit_id, objects.paid_order)
    elif route.name.startswith("show settlement"):
        assert (document["project_id"], document["invoice_id"]) == (PROJECT, "INV-1")
        assert [a["explanation"]["place"] for a in document["allocations"]] == [1]
    elif route.method == "POST" and route.name.startswith(("activate", "create")):
        assert document["project_id"] == acting_on
        assert response.headers["Location"].startswith(f"{url}/v1/")
    elif "{" in route.path:
        assert document["project_id"] == PROJECT
    assert (ledger.checksum() != before) == route.writes


def test_the_table_covers_every_served_route() -> None:
    from ovh_credit_plugin.api.controllers import served_routes

    covered = {(r.method, r.path.split("?")[0]
                .replace("{credit}", "{credit_id}").replace("{project}", "{project_id}")
                .replace("{paid}", "{order_id}").replace("{pending}", "{order_id}")
                .replace("WELCOME-2026", "{code}")) for r in ROUTES}
    assert covered == served_routes()
