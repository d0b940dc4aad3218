"""HTTP as clients, caches and the on-call engineer meet it, over a real socket (standalone app).

- An ``Accept`` naming the charset the answers are written in
  (``application/json; charset=utf-8``, sent by many HTTP libraries) was a 406.
- A 406 logged an ERROR line (pecan's), one per request: any client could fill
  the error log and page the on-call engineer.
- Answers had no ``Cache-Control``: a shared cache (Varnish caches a 200 without
  it for two minutes, and ``X-Auth-Token`` is not ``Authorization``, which
  would stop it) served one project's balances to another's callers, and stale
  balances to the same one.
- ``/`` answered its version document to POST, PUT, DELETE and OPTIONS (200).
- A 500 tells the client "the request id finds it in the logs", but the log
  line did not name the request id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from ovh_credit_plugin.service import inputs
from tests.support.api import PROJECT, call, exchange_raw, standalone
from tests.support.ledgers import Ledger

MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seed(ledger: Ledger) -> tuple[int, str]:
    """A paid order of PROJECT (its credit id, the order's id)."""
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        paid = service.pay_order(service.create_order(PROJECT, "20.00").id)
        assert paid.credit_id is not None
        return paid.credit_id, paid.id
    finally:
        service.close()


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def api_sig(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    (error,) = answer.json()["errors"]
    assert error["code"] == f"cloud_credit.{code}", error
    assert error["request_id"] == answer.headers["X-Openstack-Request-Id"]
    return dict(error)


@pytest.mark.parametrize("accept", [
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    'Application/JSON; Charset="utf-8"',
    "text/html;q=0.9, application/json; charset=utf-8",
])
def test_an_accept_naming_the_charset_of_the_answers_is_served(
        ledger: Ledger, caplog: pytest.LogCaptureFixture, accept: str) -> None:
    credit, order = seed(ledger)
    headers = {**MEMBER, "Accept": accept}
    with standalone(ledger) as url:
        assert call("GET", f"{url}/", headers=headers).status_code == 200
        for path in ("credits", f"credits/{credit}", "orders", f"orders/{order}", "forecast"):
            answer = call("GET", f"{url}/v1/{path}", headers=headers)
            assert answer.status_code == 200, (path, answer.text)
        made = call("POST", f"{url}/v1/orders", headers=headers, json_body={"amount": "20.00"})
        assert made.status_code == 201, made.text
    assert error_lines(caplog) == []


@pytest.mark.parametrize("accept", ["application/xml", "text/html",
                                    "application/json; charset=latin-1"])
def test_a_406_is_answered_without_an_error_in_the_log(
        ledger: Ledger, caplog: pytest.LogCaptureFixture, accept: str) -> None:
    credit, _order = seed(ledger)
    headers = {**MEMBER, "Accept": accept}
    with standalone(ledger) as url:
        for path in ("/", "/v1/credits", f"/v1/credits/{credit}", "/v1/refunds"):
            api_sig(call("GET", f"{url}{path}", headers=headers), 406, "not_acceptable")
    assert error_lines(caplog) == []


def test_no_answer_may_be_stored_by_a_cache(ledger: Ledger) -> None:
    credit, order = seed(ledger)
    with standalone(ledger) as url:
        answers = [call("GET", f"{url}/v1/{path}", headers=MEMBER) for path in (
            "credits", f"credits/{credit}", "orders", f"orders/{order}", "forecast",
            f"ovh/cloud/project/{PROJECT}/credit",
            f"ovh/cloud/project/{PROJECT}/credit/{credit}", "vouchers/WELCOME-2026",
            "credits/999", "refunds")]
        answers.append(call("HEAD", f"{url}/v1/credits", headers=MEMBER))
        answers.append(call("GET", f"{url}/v1/credits"))  # 401
        answers.append(call("POST", f"{url}/v1/orders", headers=MEMBER,
                            json_body={"amount": "20.00"}))
    for answer in answers:
        assert "no-store" in answer.headers.get("Cache-Control", ""), (
            answer.request.method, answer.url, answer.status_code, answer.headers)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_the_version_document_is_only_read(ledger: Ledger, method: str) -> None:
    with standalone(ledger) as url:
        refused = call(method, f"{url}/", data=b'{"versions": []}',
                       headers={"Content-Type": "application/json"})
        error = api_sig(refused, 405, "method_not_allowed")
        assert refused.headers["Allow"] == "GET, HEAD"
        assert error["detail"] == f"{method} is not allowed on /"
        assert call("GET", f"{url}/").json()["versions"][0]["id"] == "v1.0"
        headed = call("HEAD", f"{url}/")
        assert (headed.status_code, headed.content) == (200, b"")


@contextmanager
def column_renamed(ledger: Ledger) -> Iterator[None]:
    """A statement the database refuses: a bug's 500, not an outage's 503."""
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE cloud_credit_orders RENAME COLUMN {old} TO {new}"))

    rename("payment_url", "payment_url_gone")
    try:
        yield
    finally:
        rename("payment_url_gone", "payment_url")
        engine.dispose()


def test_the_log_lines_of_failed_requests_name_their_request_id(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    with standalone(ledger) as url:
        with column_renamed(ledger):
            failed = call("GET", f"{url}/v1/orders", headers=MEMBER)
        error = api_sig(failed, 500, "internal_error")
        assert "request id" in error["detail"]
        (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert failed.headers["X-Openstack-Request-Id"] in line.getMessage()
        assert line.exc_info is not None

        caplog.clear()
        ledger.vouchers.unlink()  # the file catalog is gone: 503, a warning
        outage = call("GET", f"{url}/v1/vouchers/WELCOME-2026", headers=MEMBER)
        api_sig(outage, 503, "catalog_unavailable")
        (warning,) = [r for r in caplog.records
                      if r.levelno >= logging.WARNING and r.name.startswith("ovh_credit")]
        assert outage.headers["X-Openstack-Request-Id"] in warning.getMessage()


def _raw(url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """``request`` sent as is; the status line, headers and body answered."""
    head, body = exchange_raw(url, request)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /v1/credits?marker=" + b"1" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /v1/credits HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-Extra-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431),
    (b"GET /v1/credits HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"GET /v1/credits HTTP/x\r\nHost: x\r\n\r\n", 400),
    # A version this server does not speak: the client's request, not a server error.
    (b"GET /v1/credits HTTP/2.0\r\nHost: x\r\n\r\n", 505),
])
def test_the_servers_own_refusals_are_api_sig_documents(
        ledger: Ledger, request_bytes: bytes, status: int) -> None:
    """What ovh-credit-api's server refuses before the application sees the request
    (a request line or a header too long, too many headers, a malformed request
    line) was http.server's HTML page, without a request id."""
    with standalone(ledger) as url:
        status_line, headers, body = _raw(url, request_bytes)
    assert status_line.split(" ")[1] == str(status), (status_line, body)
    assert headers["content-type"].startswith("application/json"), headers
    (error,) = json.loads(body)["errors"]
    assert error["status"] == status
    assert error["code"] == "cloud_credit.invalid_request"
    assert error["request_id"].startswith("req-")
    assert error["request_id"] == headers["x-openstack-request-id"]
