"""Review of 5587916: CLOUD_CREDIT_API_TIMEOUT. A finite number above 0 passes the
check whatever its size, but the socket under the panel's requests cannot wait longer
than about 9.2e9 s (time as int64 nanoseconds), and keystoneauth's Session takes
float(timeout) (an int beyond a float's range). The check lets them through, and every
page of the panel fails with an OverflowError, as a quoted "30" did before the fix.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
pytest.importorskip("django")
pytest.importorskip("horizon")

from tests.unit.test_client_and_panel_edges import (  # isort: skip
    _request,
    catalog,
    settings,
)

from ovh_credit_plugin.dashboard import api as dashboard_api

__all__ = ["catalog"]  # fixture used here


@pytest.mark.parametrize("timeout", [10**10, 1e10, 10**400])
def test_a_huge_api_timeout_setting_is_logged_and_the_panel_still_lists(
        catalog: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        timeout: Any) -> None:
    import http.server

    class Credits(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"credits": [], "links": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Credits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sys.modules["openstack_dashboard.api.base"].url_for = (  # type: ignore[attr-defined]
        lambda request, service_type: url)
    monkeypatch.setattr(settings, "CLOUD_CREDIT_API_TIMEOUT", timeout, raising=False)
    try:
        with caplog.at_level("ERROR", logger="ovh_credit_plugin.dashboard.api"):
            # Now: OverflowError (Python int too large to convert to C _PyTime_t /
            # int too large to convert to float), on every page.
            assert dashboard_api.credits(dashboard_api.client(_request())) == []
    finally:
        server.shutdown()
        server.server_close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "CLOUD_CREDIT_API_TIMEOUT" in errors[0], errors
