"""The API's log lines show a voucher code in a path masked, as every other log line does.

A log is read by more people than may activate a customer's voucher: the
request's path (``GET /v1/vouchers/{code}``) was logged as it came.
"""

from __future__ import annotations

import logging

import pytest

from ovh_credit_plugin.api import errors
from tests.support.api import PROJECT, call, standalone
from tests.support.ledgers import Ledger

MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_catalog_outage_on_a_voucher_check_logs_the_code_masked(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    ledger.vouchers.unlink()  # the file catalog is gone: 503 catalog_unavailable
    with caplog.at_level(logging.DEBUG), standalone(ledger) as url:
        answer = call("GET", f"{url}/v1/vouchers/welcome-2026", headers=MEMBER)
    assert answer.status_code == 503, answer.text
    # The server's lines (the test's own HTTP client logs its request too).
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if record.name.startswith("ovh_credit_plugin"))
    assert "GET /v1/vouchers/WEL…6: " in logged  # the warning
    assert "GET /v1/vouchers/WEL…6 HTTP/1.1" in logged  # the server's request line (DEBUG)
    assert "welcome-2026" not in logged.lower()


@pytest.mark.parametrize(("path", "shown"), [
    ("/v1/vouchers/WELCOME-2026", "/v1/vouchers/WEL…6"),
    ("/v1/vouchers/%20welcome-2026%20", "/v1/vouchers/WEL…6"),
    ("/v1/rating/module_config/cloud_credit/vouchers/GPU-ONLY",
     "/v1/rating/module_config/cloud_credit/vouchers/GP…"),
    ("/v1/vouchers", "/v1/vouchers"),
    ("/v1/credits/7", "/v1/credits/7"),
])
def test_the_logged_path_masks_the_code_and_nothing_else(path: str, shown: str) -> None:
    assert errors.logged_path({"SCRIPT_NAME": "", "PATH_INFO": path}) == shown
