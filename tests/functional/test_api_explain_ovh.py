"""Over a socket: a settlement with why each credit paid (``GET {base}/settlements``), and
credits in OVH's ``cloud.Credit`` shape (``GET {base}/ovh/cloud/project/{id}/credit``).

Which persona may call these is in test_api_policy.py; here, what they answer.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from ovh_credit_plugin import models
from ovh_credit_plugin.service import inputs
from tests.support.api import OTHER, PROJECT, call, standalone
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)
YEN_PROJECT = "e" * 32


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def reader(project: str = PROJECT) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": "alice", "X-Roles": "reader"}


def ok(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["errors"][0]["code"])


def seed(ledger: Ledger, *lines: tuple[str, str, str]) -> dict[str, int]:
    """PROJECT: the GPU-only voucher, 20.00 purchased, then invoice INV-1 of ``lines``."""
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        voucher = service.activate_voucher(PROJECT, "GPU-ONLY", at=T0)
        order = service.create_order(PROJECT, "20.00", at=T0)
        paid = service.pay_order(order.id, at=T0)
        assert paid.credit_id is not None
        if lines:
            service.settle_invoice(models.Invoice.model_validate({
                "id": "INV-1", "project_id": PROJECT, "currency": "EUR",
                "issued_at": AT.isoformat(),
                "lines": [{"id": i, "product": p, "amount": a} for i, p, a in lines]}), at=AT)
        return {"voucher": voucher.id, "bought": paid.credit_id}
    finally:
        service.close()


# -- settlements -----------------------------------------------------------------------


def test_a_settlement_says_per_line_which_credit_paid_and_why(ledger: Ledger) -> None:
    ids = seed(ledger, ("c", "compute", "3.00"), ("g", "gpu", "2.00"))
    with standalone(ledger) as url:
        shown = ok(call("GET", f"{url}/v1/settlements?invoice=INV-1", headers=reader()))
        by_key = ok(call("GET", f"{url}/v1/settlements?key=invoice/{PROJECT}/INV-1",
                         headers=reader()))
        plain = ok(call("GET", f"{url}/v1/settlements?invoice=INV-1&explain=false",
                        headers=reader()))
    assert by_key == shown
    assert (shown["total"], shown["credit_applied"], shown["amount_due"]) == (
        "5.00", "5.00", "0.00")
    assert [(a["line_id"], a["credit_id"], a["amount"], a["explanation"]["place"],
             a["explanation"]["reason"], a["explanation"]["skipped"])
            for a in shown["allocations"]] == [
        ("g", ids["voucher"], "2.00", 1, "order", []),
        ("c", ids["bought"], "3.00", 2, "scope",
         [{"credit_id": ids["voucher"], "cause": "not_covered", "products": []}]),
    ]
    assert shown["allocations"][0]["explanation"]["order_key"] == {
        "kind": "voucher", "valid_until": "2027-01-01T00:00:00Z",
        "created_at": "2026-01-31T10:00:00Z", "credit_id": ids["voucher"]}
    assert plain["allocations"] == [
        {k: v for k, v in a.items() if k != "explanation"} for a in shown["allocations"]]


@pytest.mark.parametrize(("query", "status"), [
    ("", 400),  # neither invoice nor key
    ("?invoice=INV-1&key=invoice/x/INV-1", 400),  # both
    ("?invoice=INV-1&explain=yes", 400),
    (f"?key=invoice/{PROJECT}/INV-1&project_id={PROJECT}", 400),
    ("?invoice=bad%20id", 400),
    ("?invoice=INV-2", 404),
    ("?key=invoice/nobody/INV-1", 404),
])
def test_bad_or_unknown_settlement_requests(ledger: Ledger, query: str, status: int) -> None:
    seed(ledger, ("c", "compute", "1.00"))
    with standalone(ledger) as url:
        code = error(call("GET", f"{url}/v1/settlements{query}", headers=reader()), status)
    assert code == {400: "cloud_credit.invalid_request", 404: "cloud_credit.not_found"}[status]


# -- the OVH-shaped view ---------------------------------------------------------------


def ovh(url: str, path: str, project: str = PROJECT) -> requests.Response:
    return call("GET", f"{url}/v1/ovh/cloud/project/{project}/credit{path}",
                headers=reader(project))


def test_ids_then_each_credit_in_ovhs_shape(ledger: Ledger) -> None:
    ids = seed(ledger, ("c", "compute", "0.10"))
    with standalone(ledger) as url:
        listed = ok(ovh(url, ""))
        bought = ok(ovh(url, f"/{ids['bought']}"))
        voucher = ok(ovh(url, f"/{ids['voucher']}"))
    assert listed == [ids["voucher"], ids["bought"]]  # consumption order
    order_id = bought.pop("bill")
    assert len(order_id) == 36
    assert bought == {
        "id": ids["bought"], "description": bought["description"], "voucher": None,
        "products": [],
        "total_credit": {"currencyCode": "EUR", "text": "20.00 €", "value": 20.0},
        "used_credit": {"currencyCode": "EUR", "text": "0.10 €", "value": 0.1},
        "available_credit": {"currencyCode": "EUR", "text": "19.90 €", "value": 19.9},
        "validity": {"from": "2026-01-31T10:00:00Z", "to": "2027-02-28T10:00:00Z"},
    }
    assert (voucher["voucher"], voucher["bill"], voucher["products"]) == (
        "GPU-ONLY", None, ["gpu"])
    assert voucher["validity"] == {"from": "2026-01-31T10:00:00Z",
                                   "to": "2027-01-01T00:00:00Z"}


def test_money_values_are_exact_json_numbers_at_the_currencys_decimals(ledger: Ledger) -> None:
    """0.10 is written 0.10 (never through a float: 0.1, 0.09999999999999998...)."""
    ids = seed(ledger, ("c", "compute", "0.10"))
    with standalone(ledger) as url:
        text = ovh(url, f"/{ids['bought']}").text
    assert '"value": 0.10}' in text and '"value": 19.90}' in text and '"value": 20.00}' in text
    document = json.loads(text, parse_float=Decimal)
    assert document["used_credit"]["value"] == Decimal("0.10")
    assert str(document["available_credit"]["value"]) == "19.90"


def test_sub_cent_balances_round_so_available_is_never_overstated(ledger: Ledger) -> None:
    ids = seed(ledger)
    service = ledger.service(clock=inputs.now)
    try:
        service.settle_invoice(models.Invoice.model_validate({
            "id": "RATED", "project_id": PROJECT, "currency": "EUR",
            "issued_at": AT.isoformat(),
            "lines": [{"id": "c", "product": "compute", "amount": "0.004"}]}), at=AT)
    finally:
        service.close()
    with standalone(ledger) as url:
        document = json.loads(ovh(url, f"/{ids['bought']}").text, parse_float=Decimal)
    # 0.004 used, 19.996 available: up and down to the cent, adding up to the total.
    assert [document[name]["value"] for name in ("total_credit", "used_credit",
                                                 "available_credit")] == [
        Decimal("20.00"), Decimal("0.01"), Decimal("19.99")]
    assert document["available_credit"]["text"] == "19.99 €"


def test_a_currency_without_decimals_and_a_credit_without_end(ledger: Ledger) -> None:
    service = ledger.service(clock=inputs.now)
    try:
        credit = service.activate_voucher(YEN_PROJECT, "YEN-1000", at=T0)
    finally:
        service.close()
    with standalone(ledger) as url:
        text = ovh(url, f"/{credit.id}", YEN_PROJECT).text
    document = json.loads(text, parse_float=Decimal)
    assert document["total_credit"] == {"currencyCode": "JPY", "text": "1000 JPY",
                                        "value": 1000}
    assert '"value": 1000}' in text
    assert document["validity"]["to"] is None


def test_another_projects_credit_is_answered_as_a_missing_one(ledger: Ledger) -> None:
    """Neither a credit of another project nor the project owning a credit can be probed:
    one answer, but for the id, as for ``{base}/credits/{id}``."""
    ids = seed(ledger)
    service = ledger.service(clock=inputs.now)
    try:
        theirs = service.activate_voucher(OTHER, "WELCOME-2026", at=T0).id
    finally:
        service.close()
    missing = max(theirs, *ids.values()) + 1000
    admin = {"X-Project-Id": "ops", "X-User-Id": "root", "X-Roles": "admin,reader"}
    with standalone(ledger) as url:
        def detail(path: str, headers: dict[str, str]) -> str:
            response = call("GET", f"{url}/v1/ovh/cloud/project/{path}", headers=headers)
            assert error(response, 404) == "cloud_credit.not_found"
            return str(response.json()["errors"][0]["detail"])

        assert detail(f"{PROJECT}/credit/{missing}", reader()) == f"no credit {missing}"
        # Another project's credit, under the caller's project or under its own.
        assert detail(f"{PROJECT}/credit/{theirs}", reader()) == f"no credit {theirs}"
        assert detail(f"{OTHER}/credit/{theirs}", reader()) == f"no credit {theirs}"
        # An admin may read both projects: a path naming another project than the
        # credit's does not say whose it is either.
        bought = ids["bought"]
        assert detail(f"{OTHER}/credit/{bought}", admin) == f"no credit {bought}"
        assert detail(f"{OTHER}/credit/{missing}", admin) == f"no credit {missing}"
        assert detail(f"{PROJECT}/credit/{theirs}",
                      {**reader(), "Accept-Language": "fr"}) == f"crédit {theirs} introuvable"


def test_wrong_paths_ids_and_methods(ledger: Ledger) -> None:
    ids = seed(ledger)
    admin = {"X-Project-Id": "ops", "X-User-Id": "root", "X-Roles": "admin,reader"}
    with standalone(ledger) as url:
        base = f"{url}/v1/ovh/cloud/project"
        # A credit of another project than the path's: not found, even for an admin.
        assert error(call("GET", f"{base}/{OTHER}/credit/{ids['bought']}", headers=admin),
                     404) == "cloud_credit.not_found"
        assert error(ovh(url, "/12x"), 404) == "cloud_credit.not_found"
        assert error(ovh(url, "/999999"), 404) == "cloud_credit.not_found"
        assert error(call("GET", f"{base}/{PROJECT}/credits", headers=reader()),
                     404) == "cloud_credit.not_found"
        assert error(call("GET", f"{url}/v1/ovh/cloud/project", headers=reader()),
                     404) == "cloud_credit.not_found"
        assert error(call("POST", f"{base}/{PROJECT}/credit", headers=reader(),
                          json_body={"code": "WELCOME-2026"}),
                     405) == "cloud_credit.method_not_allowed"
        assert error(ovh(url, "?limit=2"), 400) == "cloud_credit.invalid_request"
