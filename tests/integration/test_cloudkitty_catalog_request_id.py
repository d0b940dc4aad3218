"""Inside CloudKitty's API too, the voucher catalog gets the id CloudKitty answered.

CloudKitty's pipeline has its own oslo.middleware RequestId, whose id our
handlers pass on: the id the catalog gets must be the one the customer's
answer carries, on every attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.test_api_catalog_request_id import HEADER, sent_ids
from tests.functional.test_catalog_http_server import CODE, TOKEN, VOUCHERS
from tests.integration import test_cloudkitty_api
from tests.integration.conftest import CloudKitty
from tests.integration.test_cloudkitty_api import BASE, member
from tests.support.api import call, serving
from tests.support.catalog_server import CatalogServer, Fault, running

pytestmark = pytest.mark.integration

# The builder of CloudKitty's API application on the test ledger, shared.
cloudkitty_api = test_cloudkitty_api.cloudkitty_api


@pytest.fixture
def catalog() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as server:
        yield server


def test_an_activation_in_cloudkitty_sends_its_answers_request_id(
        cloudkitty_api: Any, cloudkitty: CloudKitty, catalog: CatalogServer) -> None:
    for name, value in (("driver", "http"), ("endpoint", catalog.url), ("auth_token", TOKEN),
                        ("timeout", 5.0), ("retries", 3)):
        cloudkitty.set_override(name, value, "voucher_catalog")
    catalog.inject(Fault("status", method="POST", status=503, times=1))
    app = cloudkitty_api("noauth")
    with serving(app) as url:
        activated = call("POST", f"{url}{BASE}/vouchers", headers=member(),
                         json_body={"code": CODE})
        assert activated.status_code == 201, activated.text
        request_id = activated.headers["X-Openstack-Request-Id"]
        assert [r.method for r in catalog.calls()] == ["GET", "POST", "POST"]
        assert sent_ids(catalog.calls()) == [request_id] * 3
        checked = call("GET", f"{url}{BASE}/vouchers/{CODE}",
                       headers={**member(), HEADER: request_id})
        assert checked.status_code == 200, checked.text
        assert sent_ids(catalog.calls()[3:]) == [checked.headers["X-Openstack-Request-Id"]]
