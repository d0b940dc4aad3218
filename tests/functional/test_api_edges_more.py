"""More edges of the REST API a client can hit, over a real socket (standalone app).

HEAD where GET is served (RFC 9110 9.3.2), media types compared without
regard to case (RFC 9110 8.3.1), an Accept that refuses JSON with ``q=0``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.support.api import OTHER, PROJECT, call, exchange_raw, standalone
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}


def seed(ledger: Ledger) -> tuple[int, str]:
    from ovh_credit_plugin.service import inputs

    service = ledger.service(clock=inputs.now)
    try:
        paid = service.pay_order(service.create_order(PROJECT, "20.00").id)
        service.pay_order(service.create_order(PROJECT, "30.00").id)
        service.pay_order(service.create_order(OTHER, "30.00").id)
        assert paid.credit_id is not None
        return paid.credit_id, paid.id
    finally:
        service.close()


def head(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.head(url, headers=headers, timeout=60, allow_redirects=False)


def test_head_is_served_wherever_get_is(ledger: Ledger) -> None:
    credit, order = seed(ledger)
    with standalone(ledger) as url:
        for path in ("credits", "credits?limit=1", f"credits/{credit}", "orders",
                     f"orders/{order}", "forecast", f"ovh/cloud/project/{PROJECT}/credit",
                     f"ovh/cloud/project/{PROJECT}/credit/{credit}",
                     "vouchers/WELCOME-2026"):
            got = call("GET", f"{url}/v1/{path}", headers=MEMBER)
            assert got.status_code == 200, (path, got.text)
            headed = head(f"{url}/v1/{path}", MEMBER)
            assert headed.status_code == 200, (path, headed.status_code, headed.headers)
            assert headed.content == b"", path
            assert headed.headers["Content-Type"] == got.headers["Content-Type"], path
            assert headed.headers["Content-Length"] == str(len(got.content)), path
            assert headed.headers["X-Openstack-Request-Id"].startswith("req-"), path


def test_head_gets_the_errors_get_gets(ledger: Ledger) -> None:
    credit, _order = seed(ledger)
    with standalone(ledger) as url:
        # No such credit, another project's: 404 as for GET.
        assert head(f"{url}/v1/credits/999", MEMBER).status_code == 404
        assert head(f"{url}/v1/credits?limit=0", MEMBER).status_code == 400
        assert head(f"{url}/v1/credits", {}).status_code == 401
        # Where GET is not served, HEAD is not either: 405 naming what is.
        refused = head(f"{url}/v1/credits/{credit}/void", MEMBER)
        assert refused.status_code == 405
        assert refused.headers["Allow"] == "POST"
        assert refused.content == b""


def _order_body() -> bytes:
    return json.dumps({"amount": "20.00"}).encode()


@pytest.mark.parametrize("content_type", ["Application/JSON", "APPLICATION/JSON; charset=UTF-8",
                                          "application/json;charset=utf-8"])
def test_the_body_media_type_is_case_insensitive(ledger: Ledger, content_type: str) -> None:
    with standalone(ledger) as url:
        made = call("POST", f"{url}/v1/orders", data=_order_body(),
                    headers={**MEMBER, "Content-Type": content_type})
        assert made.status_code == 201, made.text


@pytest.mark.parametrize("accept", ["application/json;q=0", "application/json;q=0, text/html",
                                    "application/json; q=0.000"])
def test_an_accept_that_refuses_json_is_406(ledger: Ledger, accept: str) -> None:
    with standalone(ledger) as url:
        for path in ("credits", "credits/1", "orders"):
            refused = call("GET", f"{url}/v1/{path}", headers={**MEMBER, "Accept": accept})
            assert refused.status_code == 406, (path, refused.text)
            error: dict[str, Any] = refused.json()["errors"][0]
            assert error["code"] == "cloud_credit.not_acceptable"


def test_a_method_the_path_does_not_serve_is_405_not_404(ledger: Ledger) -> None:
    """docs/api.md: 405 for a method the resource does not have, ``Allow`` naming those it has.

    GET on an action (``void``, ``cancel``, ``payment``) and POST on an item were 404s
    ("no such resource"), while PUT or DELETE on the same paths were 405s.
    """
    credit, order = seed(ledger)
    with standalone(ledger) as url:
        for method, path, allow in (
            ("GET", f"credits/{credit}/void", "POST"),
            ("GET", f"orders/{order}/cancel", "POST"),
            ("GET", f"orders/{order}/payment", "POST"),
            ("POST", f"orders/{order}", "GET, HEAD"),
            ("POST", "vouchers/WELCOME-2026", "GET, HEAD"),
            ("POST", f"credits/{credit}", "GET, HEAD"),
        ):
            answer = call(method, f"{url}/v1/{path}", headers=MEMBER,
                          json_body={} if method == "POST" else None)
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.headers["Allow"] == allow, (method, path)
            error = answer.json()["errors"][0]
            assert error["code"] == "cloud_credit.method_not_allowed"
            assert error["detail"] == f"{method} is not allowed on /v1/{path}"
        # The refused requests did nothing to the order.
        shown = call("GET", f"{url}/v1/orders/{order}", headers=MEMBER).json()
        assert shown["status"] == "paid"


def _raw_answer(url: str, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``request`` as is, close the sending side; the status and JSON body answered."""
    head_part, body = exchange_raw(url, request)
    return int(head_part.split(b" ", 2)[1]), json.loads(body)


def test_a_body_shorter_than_its_content_length_is_400_not_500(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    """A client (or a proxy) that stops sending before Content-Length bytes: a bad
    request, not an internal error logged with a traceback."""
    body = b'{"amount": "2'
    request = (b"POST /v1/orders HTTP/1.1\r\nHost: localhost\r\n"
               + f"X-Project-Id: {PROJECT}\r\nX-User-Id: alice\r\n".encode()
               + b"X-Roles: member,reader\r\nContent-Type: application/json\r\n"
               + b"Content-Length: 100\r\n\r\n" + body)
    with standalone(ledger) as url:
        status, document = _raw_answer(url, request)
        assert status == 400, document
        error = document["errors"][0]
        assert error["code"] == "cloud_credit.invalid_request"
        assert error["detail"] == "the request body ended before its Content-Length"
        listed = call("GET", f"{url}/v1/orders", headers=MEMBER).json()
        assert listed["orders"] == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_character_in_an_order_id_marker_or_key_is_not_a_500(ledger: Ledger) -> None:
    """PostgreSQL refuses a NUL in a text parameter: an order id, an order marker or a
    settlement key holding one was an internal error there (SQLite and MariaDB answer)."""
    with standalone(ledger) as url:
        for method, path, status, detail in (
            ("GET", "orders/%00", 404, "no order \x00"),
            ("GET", "orders/a%00b", 404, "no order a\x00b"),
            ("POST", "orders/a%00b/cancel", 404, "no order a\x00b"),
            ("GET", "orders?marker=%00", 400, "unknown marker '\\x00'"),
            ("GET", "settlements?key=a%00b", 404, "no settlement a\x00b"),
        ):
            answer = call(method, f"{url}/v1/{path}", headers=MEMBER)
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["errors"][0]["detail"] == detail, path


def test_head_on_an_error_answers_gets_headers_too(ledger: Ledger) -> None:
    # The body left out for HEAD used to look like no API-SIG document to the
    # layer that rewrites other errors into one: HEAD got another document's
    # Content-Length (and, behind it, another error: "no such resource").
    credit, _order = seed(ledger)
    with standalone(ledger) as url:
        for path, status in (("credits/999", 404), ("credits?limit=0", 400),
                             (f"credits/{credit}x", 404)):
            got = call("GET", f"{url}/v1/{path}", headers=MEMBER)
            headed = head(f"{url}/v1/{path}", MEMBER)
            assert (got.status_code, headed.status_code) == (status, status), path
            assert headed.content == b"", path
            for name in ("Content-Type", "Content-Length", "Content-Language", "Cache-Control"):
                assert headed.headers.get(name) == got.headers.get(name), (path, name)
