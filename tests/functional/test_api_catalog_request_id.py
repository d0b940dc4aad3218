"""The API request's id travels to the voucher catalog, as OpenStack services pass theirs on.

The http catalog driver sent no request id of the API request that caused a
catalog call: the on-call engineer holding the ``X-Openstack-Request-Id`` of
a failed activation could not find the catalog's log lines about it. The
id now goes downstream as ``X-OpenStack-Request-ID`` (keystoneauth's
``global_request_id`` header), on the GET and the POST and on each retry,
and only a ``req-<uuid>`` ever does. A real API, a real catalog server.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ovh_credit_plugin import request_ids
from tests.functional.test_catalog_http_server import CODE, SINGLE, TOKEN, VOUCHERS, driver_for
from tests.support.api import PROJECT, call, standalone
from tests.support.catalog_server import CatalogServer, Fault, Recorded, running
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}
HEADER = "X-OpenStack-Request-ID"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def catalog() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as server:
        yield server


@pytest.fixture
def api(ledger: Ledger, catalog: CatalogServer) -> Iterator[str]:
    """ovh-credit-api (noauth) on ``ledger``, its catalog the real server above."""
    with standalone(ledger, voucher_catalog={
            "driver": "http", "endpoint": catalog.url, "auth_token": TOKEN, "timeout": 5.0,
            "retries": 3}) as url:
        yield url


def sent_ids(calls: list[Recorded]) -> list[str | None]:
    """The request id each recorded catalog call carried (header names in any case)."""
    found = []
    for recorded in calls:
        values = [v for k, v in recorded.headers.items() if k.lower() == HEADER.lower()]
        assert len(values) <= 1, recorded.headers
        found.append(values[0] if values else None)
    return found


def answer_id(answer: requests.Response) -> str:
    request_id = answer.headers["X-Openstack-Request-Id"]
    assert request_id.startswith("req-")
    return request_id


def test_an_activation_sends_the_answers_request_id_to_the_catalog(
        api: str, catalog: CatalogServer) -> None:
    activated = call("POST", f"{api}/v1/vouchers", headers=MEMBER, json_body={"code": CODE})
    assert activated.status_code == 201, activated.text
    assert [r.method for r in catalog.calls()] == ["GET", "POST"]
    assert sent_ids(catalog.calls()) == [answer_id(activated)] * 2

    # Another request, another id: none is left over from the one before.
    checked = call("GET", f"{api}/v1/vouchers/{SINGLE}", headers=MEMBER)
    assert checked.status_code == 200, checked.text
    (check,) = catalog.calls()[2:]
    assert sent_ids([check]) == [answer_id(checked)]
    assert answer_id(checked) != answer_id(activated)


def test_every_retry_carries_the_same_request_id(
        api: str, catalog: CatalogServer, caplog: pytest.LogCaptureFixture) -> None:
    # urllib3 retries the 503s; the driver itself retries an answer broken off.
    caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
    catalog.inject(Fault("status", method="GET", status=503, times=1))
    catalog.inject(Fault("truncate", method="GET", times=1))
    catalog.inject(Fault("status", method="POST", status=502, times=2))
    activated = call("POST", f"{api}/v1/vouchers", headers=MEMBER, json_body={"code": CODE})
    assert activated.status_code == 201, activated.text
    methods = [r.method for r in catalog.calls()]
    assert methods == ["GET", "GET", "GET", "POST", "POST", "POST"], methods
    assert sent_ids(catalog.calls()) == [answer_id(activated)] * 6
    # The driver's own lines about these calls name it too.
    warned = [r.getMessage() for r in caplog.records
              if r.name.startswith("ovh_credit_plugin.catalog")]
    assert len(warned) == 3, warned  # broken off; GET retried; POST retried
    for line in warned:
        assert line.endswith(f", for request {answer_id(activated)}"), line


def test_a_failed_activation_names_the_id_the_catalog_got(
        api: str, catalog: CatalogServer) -> None:
    """The case the on-call engineer meets: a 503 to the customer, its request id in
    hand, the catalog's logs to search."""
    catalog.inject(Fault("status", method="GET", status=500, times=10))
    failed = call("POST", f"{api}/v1/vouchers", headers=MEMBER, json_body={"code": CODE})
    assert failed.status_code == 503, failed.text
    assert failed.json()["errors"][0]["request_id"] == answer_id(failed)
    assert len(catalog.calls()) == 4  # retries = 3
    assert sent_ids(catalog.calls()) == [answer_id(failed)] * 4


# Fixed ids, not uuid4(): the parameters are the tests' names, which every pytest-xdist
# worker must collect alike.
SOME_UUID = "6231d1ce-4514-486f-8902-f90a5ea1b7eb"


@pytest.mark.parametrize("inbound", [
    f"req-{SOME_UUID}",  # a well-formed global request id: still ours that goes
    "req-not-a-uuid",
    "anything at all",
])
def test_the_id_sent_is_the_apis_own_whatever_the_client_sent(
        api: str, catalog: CatalogServer, inbound: str) -> None:
    answer = call("GET", f"{api}/v1/vouchers/{CODE}", headers={**MEMBER, HEADER: inbound})
    assert answer.status_code == 200, answer.text
    assert answer_id(answer) != inbound
    assert sent_ids(catalog.calls()) == [answer_id(answer)]


def test_a_call_outside_an_api_request_sends_no_request_id(
        catalog: CatalogServer, cli: Cli, ledger: Ledger) -> None:
    """The CLI (and any host calling the service itself) has no request id: no header."""
    driver = driver_for(catalog.url)
    try:
        driver.get(CODE)
    finally:
        driver.close()
    ledger.config.write_text(
        "[cloud_credit]\n"
        f"connection = {ledger.url}\n"
        "[voucher_catalog]\n"
        "driver = http\n"
        f"endpoint = {catalog.url}\n"
        f"auth_token = {TOKEN}\n"
        "timeout = 5\n"
    )
    cli.ok("voucher", "activate", "p1", CODE)
    assert [r.method for r in catalog.calls()] == ["GET", "GET", "POST"]
    assert sent_ids(catalog.calls()) == [None, None, None]


@pytest.mark.parametrize("bad", [
    "req-1\r\nX-Injected: yes",
    f"req-{SOME_UUID}\n",
    f"req-{SOME_UUID}".upper(),
    SOME_UUID,
    f"req-{SOME_UUID} ",
    "",
])
def test_only_a_request_id_of_the_req_uuid_form_is_ever_sent(
        catalog: CatalogServer, bad: str) -> None:
    """Whatever a host put where the id is kept, a header is made of nothing else."""
    good = f"req-{uuid.uuid4()}"
    driver = driver_for(catalog.url)
    try:
        with request_ids.acting_for(bad):
            driver.get(CODE)
        with request_ids.acting_for(good):
            driver.get(CODE)
    finally:
        driver.close()
    assert sent_ids(catalog.calls()) == [None, good]
    for recorded in catalog.calls():
        assert "X-Injected" not in recorded.headers


def test_the_id_is_the_callers_own_thread_and_ends_with_its_block() -> None:
    first, second = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    seen: dict[str, Any] = {}
    with request_ids.acting_for(first):
        with request_ids.acting_for(second):
            seen["inner"] = request_ids.current()
        seen["outer"] = request_ids.current()
        other = threading.Thread(target=lambda: seen.setdefault("thread", request_ids.current()))
        other.start()
        other.join()
    seen["after"] = request_ids.current()
    assert seen == {"inner": second, "outer": first, "thread": None, "after": None}
