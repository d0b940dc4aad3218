"""The standalone API over a real socket: the customer's actions, pagination,
idempotency, throttling, catalog outages, and the ``ovh-credit-api`` command itself.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ovh_credit_plugin import models
from ovh_credit_plugin.service import inputs
from tests.support.api import OTHER, PROJECT, call, standalone
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def member(project: str = PROJECT) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": "alice", "X-Roles": "member,reader"}


PAYER = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}
ADMIN = {"X-Project-Id": "ops", "X-User-Id": "root", "X-Roles": "admin,member,reader"}
DAY = dt.timedelta(days=1)


def ok(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["X-Openstack-Request-Id"].startswith("req-")
    return response.json()


def error_code(response: requests.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def test_versions_and_the_customers_three_actions(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        versions = ok(call("GET", f"{url}/"))
        assert versions["versions"][0]["links"] == [{"rel": "self", "href": f"{url}/v1/"}]

        # 1. Buy credit: an order, paid by the payment system, becomes a credit.
        created = call("POST", f"{url}/v1/orders", headers=member(), json_body={"amount": "100"})
        order = ok(created, 201)
        assert (order["status"], order["amount"], order["currency"]) == ("pending", "100.00",
                                                                         "EUR")
        assert created.headers["Location"] == f"{url}/v1/orders/{order['id']}"
        assert ok(call("GET", created.headers["Location"], headers=member())) == order
        assert ok(call("GET", f"{url}/v1/credits", headers=member()))["credits"] == []
        paid = ok(call("POST", f"{url}/v1/orders/{order['id']}/payment", headers=PAYER,
                       json_body={"amount": "100.00", "currency": "EUR"}))
        assert paid["status"] == "paid" and paid["credit_id"]

        # 2. Activate a voucher: 201 once, then 200 with the same credit.
        first = call("POST", f"{url}/v1/vouchers", headers=member(),
                     json_body={"code": " welcome-2026 "})
        voucher = ok(first, 201)
        assert first.headers["Location"] == f"{url}/v1/credits/{voucher['id']}"
        again = call("POST", f"{url}/v1/vouchers", headers=member(),
                     json_body={"code": "WELCOME-2026"})
        assert ok(again, 200) == voucher

        # 3. Credits & Vouchers: vouchers first (consumption order), amounts as strings.
        credits = ok(call("GET", f"{url}/v1/credits", headers=member()))
        assert [(c["kind"], c["available"]) for c in credits["credits"]] == [
            ("voucher", "50.00"), ("purchased", "100.00")]
        assert credits["links"] == []
        shown = ok(call("GET", f"{url}/v1/credits/{paid['credit_id']}", headers=member()))
        assert [(e["type"], e["amount"]) for e in shown["entries"]] == [("grant", "100.00")]


def test_pages_follow_next_links_and_filters(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        made = [ok(call("POST", f"{url}/v1/orders", headers=member(),
                        json_body={"amount": f"{10 + i}.00"}), 201)["id"] for i in range(5)]
        ok(call("POST", f"{url}/v1/orders/{made[1]}/cancel", headers=member()))
        seen: list[str] = []
        link: str | None = f"{url}/v1/orders?limit=2"
        pages = 0
        while link is not None and pages < 10:
            page = ok(call("GET", link, headers=member()))
            seen += [o["id"] for o in page["orders"]]
            link = page["links"][0]["href"] if page["links"] else None
            pages += 1
        assert (seen, pages) == (made, 3)
        pending = ok(call("GET", f"{url}/v1/orders?status=pending&limit=1", headers=member()))
        assert [o["id"] for o in pending["orders"]] == [made[0]]
        assert "status=pending" in pending["links"][0]["href"]
        following = ok(call("GET", pending["links"][0]["href"], headers=member()))
        assert [o["id"] for o in following["orders"]] == [made[2]]
        cancelled = ok(call("GET", f"{url}/v1/orders?status=cancelled", headers=member()))
        assert [o["id"] for o in cancelled["orders"]] == [made[1]]

        for made_order in made[2:]:
            ok(call("POST", f"{url}/v1/orders/{made_order}/payment", headers=PAYER,
                    json_body={"amount": f"{10 + made.index(made_order)}.00",
                               "currency": "EUR"}))
        every = ok(call("GET", f"{url}/v1/credits", headers=member()))["credits"]
        first = ok(call("GET", f"{url}/v1/credits?limit=2", headers=member()))
        rest = ok(call("GET", first["links"][0]["href"], headers=member()))
        assert first["credits"] + rest["credits"] == every
        assert rest["links"] == []
        # Voided credits drop out of ?status=active.
        ok(call("POST", f"{url}/v1/credits/{every[0]['id']}/void", headers=ADMIN,
                json_body={"reason": "charge-back"}))
        active = ok(call("GET", f"{url}/v1/credits?status=active", headers=member()))
        assert [c["id"] for c in active["credits"]] == [c["id"] for c in every[1:]]


def test_idempotency_key(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        keyed = {**member(), "Idempotency-Key": "cart-1"}
        first = ok(call("POST", f"{url}/v1/orders", headers=keyed,
                        json_body={"amount": "20.00"}), 201)
        assert ok(call("POST", f"{url}/v1/orders", headers=keyed,
                       json_body={"amount": "20"}), 200) == first
        other = call("POST", f"{url}/v1/orders", headers=keyed, json_body={"amount": "21.00"})
        assert (other.status_code, error_code(other)) == (409,
                                                          "cloud_credit.idempotency_conflict")
        # Keys are per project; without a key every request is an order of its own.
        theirs = ok(call("POST", f"{url}/v1/orders", headers={**member(OTHER),
                         "Idempotency-Key": "cart-1"}, json_body={"amount": "20.00"}), 201)
        assert theirs["id"] != first["id"]
        unkeyed = [ok(call("POST", f"{url}/v1/orders", headers=member(),
                           json_body={"amount": "20.00"}), 201)["id"] for _ in range(2)]
        assert len(set(unkeyed)) == 2


def test_void_is_idempotent_on_its_reason(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        voucher = ok(call("POST", f"{url}/v1/vouchers", headers=member(),
                          json_body={"code": "WELCOME-2026"}), 201)
        path = f"{url}/v1/credits/{voucher['id']}/void"
        voided = ok(call("POST", path, headers=ADMIN, json_body={"reason": "fraud"}))
        assert (voided["status"], voided["voided"]) == ("voided", "50.00")
        assert ok(call("POST", path, headers=ADMIN, json_body={"reason": "fraud"})) == voided
        other = call("POST", path, headers=ADMIN, json_body={"reason": "charge-back"})
        assert (other.status_code, error_code(other)) == (409, "cloud_credit.invalid_state")


def test_throttled_activation_is_429_and_an_outage_503(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        for index in range(5):
            refused = call("POST", f"{url}/v1/vouchers", headers=member(),
                           json_body={"code": f"NOPE-{index:04d}"})
            assert (refused.status_code, error_code(refused)) == (404,
                                                                  "cloud_credit.voucher_unknown")
        throttled = call("POST", f"{url}/v1/vouchers", headers=member(),
                         json_body={"code": "WELCOME-2026"})
        assert (throttled.status_code, error_code(throttled)) == (
            429, "cloud_credit.voucher_throttled")
        assert int(throttled.headers["Retry-After"]) > 0
        # Another project is not held back; a revoked code is 410.
        revoked = call("POST", f"{url}/v1/vouchers", headers=member(OTHER),
                       json_body={"code": "REVOKED-1"})
        assert (revoked.status_code, error_code(revoked)) == (410,
                                                              "cloud_credit.voucher_expired")

        ledger.vouchers.unlink()
        for _ in range(6):  # an outage is not the customer's fault: never throttled
            down = call("POST", f"{url}/v1/vouchers", headers=member(OTHER),
                        json_body={"code": "WELCOME-2026"})
            assert (down.status_code, error_code(down)) == (503,
                                                            "cloud_credit.catalog_unavailable")
            assert int(down.headers["Retry-After"]) > 0


def test_voucher_preview(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        preview = ok(call("GET", f"{url}/v1/vouchers/gpu-only", headers=member()))
        assert preview == {
            "code": "GP…", "amount": "20.00", "currency": "EUR", "valid_from": None,
            "valid_until": "2027-01-01T00:00:00Z", "validity_days": None, "products": ["gpu"],
            "description": "GPU trial", "redeemable": True,
        }
        unknown = call("GET", f"{url}/v1/vouchers/NOPE-1234", headers=member())
        assert (unknown.status_code, error_code(unknown)) == (404,
                                                              "cloud_credit.voucher_unknown")


def test_a_throttled_project_cannot_probe_codes_with_a_preview(ledger: Ledger) -> None:
    """A preview is the project's try: failed ones count, and a throttled project gets 429."""
    with standalone(ledger) as url:
        for index in range(4):
            unknown = call("GET", f"{url}/v1/vouchers/NOPE-{index:04d}", headers=member())
            assert (unknown.status_code, error_code(unknown)) == (
                404, "cloud_credit.voucher_unknown")
        # A redeemable code's preview does not count; a failed activation does.
        ok(call("GET", f"{url}/v1/vouchers/WELCOME-2026", headers=member()))
        refused = call("POST", f"{url}/v1/vouchers", headers=member(),
                       json_body={"code": "NOPE-0009"})
        assert refused.status_code == 404
        for method, path, body in (("GET", "vouchers/WELCOME-2026", None),
                                   ("POST", "vouchers", {"code": "WELCOME-2026"})):
            throttled = call(method, f"{url}/v1/{path}", headers=member(), json_body=body)
            assert (throttled.status_code, error_code(throttled)) == (
                429, "cloud_credit.voucher_throttled")
            detail = throttled.json()["errors"][0]["detail"]
            assert detail.startswith("too many failed voucher attempts on this project: "
                                     "try again after "), detail
            assert 0 < int(throttled.headers["Retry-After"]) <= 3600
        # Another project is not held back.
        ok(call("GET", f"{url}/v1/vouchers/WELCOME-2026", headers=member(OTHER)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_forecast_of_a_voucher_ending_in_20_days(ledger: Ledger) -> None:
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        now = inputs.now()
        # WELCOME-2026 is valid 90 days from activation: it ends in 20 days.
        voucher = service.activate_voucher(PROJECT, "WELCOME-2026", at=now - 70 * DAY).id
        for k in range(1, 31):  # 0.50 a day over the window: 35.00 left
            service.settle_invoice(models.Invoice.model_validate({
                "id": f"I{k}", "project_id": PROJECT, "currency": "EUR",
                "issued_at": (now - k * DAY + dt.timedelta(hours=1)).isoformat(),
                "lines": [{"id": "1", "product": "instance", "amount": "0.50"}]}))
    finally:
        service.close()
    with standalone(ledger) as url:
        forecast = ok(call("GET", f"{url}/v1/forecast", headers=member()))
        assert forecast == {
            "currency": "EUR", "available": "35.00", "burn_rate_per_day": "0.50",
            "window_days": 30, "runs_out_at": None, "amount_at_risk": "25.00",
            "credits": [{"credit_id": voucher, "kind": "voucher",
                         "valid_until": forecast["credits"][0]["valid_until"],
                         "available": "35.00", "expires_unused": "25.00"}],
            "warnings": [{"credit_id": voucher, "days_left": 20, "amount": "25.00"}],
        }
        # Another project holds nothing; an admin reads this one's with ?project_id=.
        assert ok(call("GET", f"{url}/v1/forecast", headers=member(OTHER)))["credits"] == []
        assert ok(call("GET", f"{url}/v1/forecast?project_id={PROJECT}",
                       headers=ADMIN)) == forecast
        for method, path, status, code in (
                ("GET", "forecast?limit=1", 400, "invalid_request"),
                ("GET", "forecast/1", 404, "not_found"),  # one document, nothing under it
                ("POST", "forecast", 405, "method_not_allowed")):
            response = call(method, f"{url}/v1/{path}", headers=member(), json_body={})
            assert (response.status_code, error_code(response)) == (
                status, f"cloud_credit.{code}"), response.text


def test_the_ovh_credit_api_command_serves_until_sigterm(ledger: Ledger, tmp_path: Path
                                                         ) -> None:
    port = _free_port()
    config = tmp_path / "api.conf"
    config.write_text(f"[api]\nauth_strategy = noauth\nbind_port = {port}\n")
    command = [str(Path(sys.executable).with_name("ovh-credit-api")),
               "--config-file", str(ledger.config), "--config-file", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # bounded: until it listens, or 60 s
            try:
                response = requests.get(f"{url}/v1/credits", headers=member(), timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "ovh-credit-api did not start"
                time.sleep(0.1)
        assert ok(response) == {"credits": [], "links": []}
        bought = ok(call("POST", f"{url}/v1/orders", headers=member(),
                         json_body={"amount": "12.50"}), 201)
        assert bought["amount"] == "12.50"
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    text = err.decode()
    assert "auth_strategy = noauth" in text and "development only" in text
    assert f"listening on http://127.0.0.1:{port}/" in text
