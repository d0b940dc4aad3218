"""Bad requests over a real socket: each gets its documented status and API-SIG body,
and nothing is written (the database's checksum is unchanged, the audit is clean).

Through keystonemiddleware (AuthTokenFixture): missing, unknown and expired
tokens are part of the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.api import (
    OTHER,
    PROJECT,
    Tokens,
    auth_token_fixture,
    call,
    standalone,
)
from tests.support.ledgers import Ledger

MAX_BODY = 4096


@dataclass(frozen=True)
class Seeded:
    credit: int
    paid: str
    pending: str
    other_credit: int
    other_pending: str


def seed(ledger: Ledger) -> Seeded:
    service = ledger.service()
    try:
        ids: list[Any] = []
        for project in (PROJECT, OTHER):
            paid = service.pay_order(service.create_order(project, "20.00").id)
            pending = service.create_order(project, "30.00")
            ids.append((paid.credit_id, paid.id, pending.id))
        (credit, paid, pending), (other_credit, _, other_pending) = ids
        return Seeded(credit, paid, pending, other_credit, other_pending)
    finally:
        service.close()


@dataclass(frozen=True)
class Bad:
    name: str
    method: str
    path: str
    status: int
    code: str
    body: Any = None  # JSON-encoded unless bytes
    persona: str | None = "member"  # None: no token; "expired", "bogus": those tokens
    headers: dict[str, str] = field(default_factory=dict)
    detail: str = ""  # a fragment of the error's detail, when it matters
    allow: str | None = None  # a 405's Allow header (RFC 9110: it must have one)


J = "application/json"
# Deep enough for Python's JSON parser to give up (RecursionError), small enough
# for MAX_BODY.
DEEP = b'{"a": ' + b"[" * 1500 + b"]" * 1500 + b"}"


def _order(amount: Any, **more: Any) -> dict[str, Any]:
    return {"amount": amount, **more}


CASES = [
    # -- malformed bodies
    Bad("malformed JSON", "POST", "orders", 400, "invalid_request", b'{"amount": '),
    Bad("JSON array", "POST", "orders", 400, "invalid_request", b'["20.00"]'),
    Bad("JSON string", "POST", "orders", 400, "invalid_request", b'"20.00"'),
    Bad("empty body", "POST", "orders", 400, "invalid_request", b""),
    Bad("not UTF-8", "POST", "orders", 400, "invalid_request", b'{"amount": "2\xff0"}'),
    Bad("UTF-16", "POST", "orders", 400, "invalid_request",
        json.dumps(_order("20.00")).encode("utf-16")),
    Bad("form encoded", "POST", "orders", 400, "invalid_request", b"amount=20.00",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Bad("text/plain", "POST", "orders", 400, "invalid_request", b'{"amount": "20.00"}',
        headers={"Content-Type": "text/plain"}),
    Bad("duplicate field", "POST", "orders", 400, "invalid_request",
        b'{"amount": "20.00", "amount": "99.00"}'),
    Bad("NaN literal", "POST", "orders", 400, "invalid_request", b'{"amount": NaN}'),
    Bad("Infinity literal", "POST", "orders", 400, "invalid_request", b'{"amount": Infinity}'),
    Bad("deep nesting", "POST", "orders", 400, "invalid_request",
        b'{"amount": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
    Bad("huge body", "POST", "orders", 413, "too_large",
        json.dumps(_order("20.00", note="x" * (MAX_BODY * 2))).encode()),
    # -- wrong types, unknown and missing fields
    Bad("amount as a number", "POST", "orders", 400, "invalid_amount", _order(20)),
    Bad("amount as a float", "POST", "orders", 400, "invalid_amount", _order(20.5)),
    Bad("amount as null", "POST", "orders", 400, "invalid_amount", _order(None)),
    Bad("amount as a list", "POST", "orders", 400, "invalid_amount", _order(["20"])),
    Bad("amount missing", "POST", "orders", 400, "invalid_amount", {"currency": "EUR"}),
    Bad("currency as a number", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency=978)),
    Bad("unknown field", "POST", "orders", 400, "invalid_request",
        _order("20.00", project_id=OTHER)),
    Bad("code as a number", "POST", "vouchers", 400, "invalid_request", {"code": 12345678}),
    Bad("code missing", "POST", "vouchers", 400, "invalid_request", {}),
    Bad("code malformed", "POST", "vouchers", 400, "invalid_request", {"code": "no!"}),
    Bad("code too long", "POST", "vouchers", 400, "invalid_request", {"code": "A" * 300}),
    Bad("voucher unknown field", "POST", "vouchers", 400, "invalid_request",
        {"code": "WELCOME-2026", "amount": "1000.00"}),
    # -- amounts and currencies
    Bad("negative amount", "POST", "orders", 400, "invalid_amount", _order("-20.00")),
    Bad("zero amount", "POST", "orders", 400, "invalid_amount", _order("0")),
    Bad("too precise", "POST", "orders", 400, "invalid_amount", _order("20.001")),
    Bad("exponent", "POST", "orders", 400, "invalid_amount", _order("2e1")),
    Bad("NaN string", "POST", "orders", 400, "invalid_amount", _order("NaN")),
    Bad("below the minimum", "POST", "orders", 400, "invalid_amount", _order("4.99")),
    Bad("above the maximum", "POST", "orders", 400, "invalid_amount", _order("100000.01")),
    Bad("huge amount", "POST", "orders", 400, "invalid_amount", _order("9" * 40)),
    Bad("unknown currency", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency="ZZZ")),
    Bad("lower-case currency", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency="eur")),
    Bad("currency without minor unit", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency="XAU")),
    Bad("empty currency", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency="")),
    Bad("another currency than the project's", "POST", "orders", 409, "currency_mismatch",
        _order("2000", currency="JPY")),
    Bad("currency without purchase limits", "POST", "orders", 400, "invalid_request",
        _order("20.00", currency="GBP"),
        detail="cloud credit is not sold in GBP"),
    Bad("idempotency key too long", "POST", "orders", 400, "invalid_request",
        _order("20.00"), headers={"Idempotency-Key": "k" * 300}),
    # -- query parameters
    Bad("unknown query parameter", "POST", "orders?dry_run=1", 400, "invalid_request",
        _order("20.00")),
    Bad("limit 0", "GET", "credits?limit=0", 400, "invalid_request"),
    Bad("limit above 1000", "GET", "credits?limit=1001", 400, "invalid_request"),
    Bad("limit not a number", "GET", "orders?limit=ten", 400, "invalid_request"),
    Bad("limit twice", "GET", "credits?limit=1&limit=2", 400, "invalid_request"),
    Bad("unknown status", "GET", "credits?status=spent", 400, "invalid_request"),
    Bad("unknown order status", "GET", "orders?status=open", 400, "invalid_request"),
    Bad("unknown marker", "GET", "credits?marker=999999", 400, "invalid_request"),
    Bad("other project's marker", "GET", "orders?marker={other_pending}", 400,
        "invalid_request"),
    # -- other projects' ids, unknown ids
    Bad("other project's credit", "GET", "credits/{other_credit}", 404, "not_found"),
    Bad("other project's order", "GET", "orders/{other_pending}", 404, "not_found"),
    Bad("cancel other project's order", "POST", "orders/{other_pending}/cancel", 404,
        "not_found"),
    Bad("no such credit", "GET", "credits/987654", 404, "not_found"),
    Bad("credit id not a number", "GET", "credits/abc", 404, "not_found"),
    Bad("credit id in superscript digits", "GET", "credits/%C2%B2", 404, "not_found"),
    Bad("limit in Arabic-Indic digits", "GET", "credits?limit=%D9%A3", 400, "invalid_request"),
    # A percent-escape that is not UTF-8: webob cannot decode it.
    Bad("credit id not UTF-8", "GET", "credits/%ff", 400, "invalid_request",
        detail="the request path is not UTF-8: /v1/credits/\ufffd"),
    Bad("order id not UTF-8", "GET", "orders/%ff", 400, "invalid_request",
        detail="the request path is not UTF-8"),
    Bad("voucher code not UTF-8", "GET", "vouchers/%ff", 400, "invalid_request",
        detail="the request path is not UTF-8"),
    Bad("OVH credit id not UTF-8", "GET", f"ovh/cloud/project/{PROJECT}/credit/%ff", 400,
        "invalid_request", detail="the request path is not UTF-8"),
    Bad("resource not UTF-8", "POST", "%C3%28", 400, "invalid_request", _order("20.00"),
        detail="the request path is not UTF-8"),
    Bad("no token and a path not UTF-8", "GET", "credits/%ff", 400, "invalid_request",
        persona=None),
    Bad("query parameter not UTF-8", "GET", "credits?status=%ff", 400, "invalid_request",
        detail="the query string is not UTF-8"),
    Bad("query parameter name not UTF-8", "GET", "orders/{pending}?%ff=1", 400,
        "invalid_request", detail="the query string is not UTF-8"),
    Bad("no such order", "POST", "orders/00000000-0000-0000-0000-000000000000/cancel", 404,
        "not_found"),
    Bad("other project as a member", "POST", f"orders?project_id={OTHER}", 403, "forbidden",
        _order("20.00")),
    Bad("other project's credits as a member", "GET", f"credits?project_id={OTHER}", 403,
        "forbidden"),
    # -- states
    Bad("cancel a paid order", "POST", "orders/{paid}/cancel", 409, "order_not_pending"),
    Bad("payment of another amount", "POST", "orders/{pending}/payment", 400, "invalid_amount",
        {"amount": "31.00", "currency": "EUR"}, persona="service"),
    Bad("payment in another currency", "POST", "orders/{pending}/payment", 409,
        "currency_mismatch", {"amount": "30.00", "currency": "USD"}, persona="service"),
    Bad("payment without currency", "POST", "orders/{pending}/payment", 400, "invalid_request",
        {"amount": "30.00"}, persona="service"),
    Bad("void without reason", "POST", "credits/{credit}/void", 400, "invalid_request", {},
        persona="admin"),
    Bad("void with an empty reason", "POST", "credits/{credit}/void", 400, "invalid_request",
        {"reason": ""}, persona="admin"),
    # -- authentication, roles, routes
    Bad("no token", "GET", "credits", 401, "unauthorized", persona=None),
    Bad("unknown token", "GET", "credits", 401, "unauthorized", persona="bogus"),
    Bad("expired token", "POST", "orders", 401, "unauthorized", _order("20.00"),
        persona="expired"),
    Bad("reader buys", "POST", "orders", 403, "forbidden", _order("20.00"), persona="reader"),
    Bad("member voids", "POST", "credits/{credit}/void", 403, "forbidden",
        {"reason": "mine"}),
    Bad("member pays", "POST", "orders/{pending}/payment", 403, "forbidden",
        {"amount": "30.00", "currency": "EUR"}),
    Bad("service reads credits", "GET", "credits", 403, "forbidden", persona="service"),
    Bad("DELETE an order", "DELETE", "orders/{pending}", 405, "method_not_allowed",
        allow="GET, HEAD"),
    Bad("PUT a credit", "PUT", "credits/{credit}", 405, "method_not_allowed",
        {"available": "1000.00"}, allow="GET, HEAD"),
    Bad("DELETE the credits", "DELETE", "credits", 405, "method_not_allowed", allow="GET, HEAD"),
    Bad("PATCH the orders", "PATCH", "orders", 405, "method_not_allowed", {},
        allow="GET, HEAD, POST"),
    Bad("DELETE an order's cancel", "DELETE", "orders/{pending}/cancel", 405,
        "method_not_allowed", allow="POST"),
    Bad("POST the forecast", "POST", "forecast", 405, "method_not_allowed", {}, allow="GET, HEAD"),
    Bad("DELETE an OVH credit", "DELETE", f"ovh/cloud/project/{PROJECT}/credit/{{credit}}", 405,
        "method_not_allowed", allow="GET, HEAD"),
    # pecan parses the body of any method but GET, a routing error's too: a body it
    # cannot parse does not turn a 405 into a 500.
    Bad("DELETE the credits with a deep body", "DELETE", "credits", 405, "method_not_allowed",
        DEEP, allow="GET, HEAD"),
    Bad("DELETE an order with a deep body", "DELETE", "orders/{pending}", 405,
        "method_not_allowed", DEEP, allow="GET, HEAD"),
    Bad("DELETE OVH credits with a deep body", "DELETE", f"ovh/cloud/project/{PROJECT}/credit",
        405, "method_not_allowed", DEEP, allow="GET, HEAD"),
    Bad("a deep body on an unknown path", "DELETE", "refunds/1", 404, "not_found", DEEP),
    # A collection's GET skips pecan's routing (api/controllers.py); what pecan
    # answers the rest of the way stays.
    Bad("GET as DELETE", "GET", "orders?_method=delete", 405, "method_not_allowed",
        allow="GET, HEAD, POST", detail="DELETE is not allowed on /v1/orders"),
    # No method at all there: not found, as for a GET of it.
    Bad("DELETE under a credit", "DELETE", "credits/{credit}/entries/1", 404, "not_found"),
    Bad("GET of a collection with a trailing segment", "GET", "forecast/x", 404, "not_found"),
    Bad("unknown resource", "GET", "refunds", 404, "not_found"),
    Bad("path too deep", "GET", "credits/{credit}/entries/1", 404, "not_found"),
]

assert len(CASES) >= 40


def _token(tokens: Tokens, persona: str | None) -> dict[str, str]:
    if persona is None:
        return {}
    if persona == "expired":
        return {"X-Auth-Token": tokens.expired}
    if persona == "bogus":
        return {"X-Auth-Token": "not-a-token"}
    return tokens.headers(persona)


def send(url: str, tokens: Tokens, seeded: Seeded, case: Bad) -> Any:
    path = case.path.format(**seeded.__dict__)
    headers = _token(tokens, case.persona)
    if case.body is None:
        data = None
    else:
        data = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        headers["Content-Type"] = J
    headers.update(case.headers)
    return call(case.method, f"{url}/v1/{path}", headers=headers, data=data)


def check(response: Any, case: Bad) -> None:
    assert response.status_code == case.status, (case.name, response.text)
    assert response.headers["Content-Type"].startswith(J)
    request_id = response.headers["X-Openstack-Request-Id"]
    assert request_id.startswith("req-")
    document = response.json()
    assert list(document) == ["errors"]
    (error,) = document["errors"]
    assert set(error) == {"status", "code", "title", "detail", "request_id"}
    assert error["status"] == case.status
    assert error["code"] == f"cloud_credit.{case.code}", (case.name, error)
    assert error["title"] and error["detail"]
    assert case.detail in error["detail"], (case.name, error)
    assert error["request_id"] == request_id
    assert response.headers.get("Allow") == case.allow, (case.name, response.headers)


@pytest.fixture
def tokens() -> Iterator[Tokens]:
    with auth_token_fixture() as made:
        yield made


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_bad_request(ledger: Ledger, tokens: Tokens, case: Bad) -> None:
    seeded = seed(ledger)
    before = ledger.checksum()
    with standalone(ledger, auth="keystone", max_body=MAX_BODY) as url:
        check(send(url, tokens, seeded, case), case)
    assert ledger.checksum() == before  # nothing written (the fixture then audits)


def test_a_json_integer_past_pythons_digit_limit_is_a_400(ledger: Ledger, tokens: Tokens
                                                          ) -> None:
    # More digits than int() converts (4300): json.loads raises a plain ValueError.
    # Too long for MAX_BODY, hence the default limit here.
    seeded = seed(ledger)
    before = ledger.checksum()
    huge = b"9" * 5000
    with standalone(ledger, auth="keystone") as url:
        for persona, path, body in (
                ("member", "orders", b'{"amount": ' + huge + b"}"),
                ("member", "vouchers", b'{"code": "WELCOME-2026", "n": [' + huge + b"]}"),
                ("admin", f"credits/{seeded.credit}/void", b'{"reason": ' + huge + b"}")):
            response = call("POST", f"{url}/v1/{path}", data=body,
                            headers={**tokens.headers(persona), "Content-Type": J})
            check(response, Bad(path, "POST", path, 400, "invalid_request",
                                detail="malformed JSON: a number has too many digits"))
    assert ledger.checksum() == before


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_every_bad_request_writes_nothing_on_the_servers(ledger: Ledger, tokens: Tokens
                                                         ) -> None:
    seeded = seed(ledger)
    before = ledger.checksum()
    with standalone(ledger, auth="keystone", max_body=MAX_BODY) as url:
        for case in CASES:
            check(send(url, tokens, seeded, case), case)
    assert ledger.checksum() == before
