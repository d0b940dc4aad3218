"""The REST API inside the real CloudKitty 25 API application, over a real socket.

CloudKitty's WSGI application is built by its own code (``cloudkitty.api.app.
load_app``: its paste pipeline, flask root, pecan v1 app, hooks and request
context), with ``auth_strategy = noauth`` and with ``keystone`` (CloudKitty's
AuthTokenMiddleware, tokens from keystonemiddleware's AuthTokenFixture). Our
processor's ``config_controller`` is mounted by CloudKitty at
``/v1/rating/module_config/cloud_credit``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovh_credit_plugin.service import inputs
from tests.integration.conftest import CloudKitty
from tests.support.api import PROJECT, auth_token_fixture, call, serving
from tests.support.ledgers import Ledger

pytestmark = pytest.mark.integration

BASE = "/v1/rating/module_config/cloud_credit"


def _paste_config() -> str:
    """CloudKitty's API pipeline (its etc/cloudkitty/api_paste.ini, shipped with its tests)."""
    spec = importlib.util.find_spec("cloudkitty")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "tests" / "gabbi" / "gabbi_paste.ini")


@pytest.fixture
def cloudkitty_api(cloudkitty: CloudKitty, ledger: Ledger) -> Iterator[Any]:
    """A builder of CloudKitty's API application on this ledger, for an auth strategy."""
    # Importing it registers CloudKitty's auth_strategy and api_paste_config.
    from cloudkitty.api import app as ck_app
    from keystonemiddleware import auth_token
    from oslo_config import cfg
    from oslo_messaging import conffixture

    messaging = conffixture.ConfFixture(cfg.CONF)
    messaging.setUp()
    messaging.transport_url = "fake:/"
    for group, opts in auth_token.list_opts():
        cfg.CONF.register_opts(opts, group=group)
    cloudkitty.set_override("www_authenticate_uri", "http://127.0.0.1:9/identity/v3",
                            "keystone_authtoken")
    cloudkitty.set_override("file_path", str(ledger.vouchers), "voucher_catalog")
    cloudkitty.set_override("api_paste_config", _paste_config(), None)  # type: ignore[arg-type]

    def build(auth: str) -> Any:
        cloudkitty.set_override("auth_strategy", auth, None)  # type: ignore[arg-type]
        return ck_app.load_app()

    # cloudkitty-api parses its configuration at start; policy (CloudKitty's
    # and ours) looks its file up in the parsed configuration's directories.
    cfg.CONF([], project="cloudkitty", default_config_files=[], default_config_dirs=[])
    try:
        yield build
    finally:
        cfg.CONF.clear()
        messaging.cleanUp()


def member(project: str = PROJECT) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": "alice", "X-Roles": "member,reader"}


def test_noauth_the_customers_actions_under_cloudkittys_api(cloudkitty_api: Any) -> None:
    app = cloudkitty_api("noauth")
    with serving(app) as url:
        base = f"{url}{BASE}"
        created = call("POST", f"{base}/orders", headers=member(), json_body={"amount": "30"})
        assert created.status_code == 201, created.text
        order = created.json()
        assert created.headers["Location"] == f"{base}/orders/{order['id']}"
        assert created.headers["X-Openstack-Request-Id"].startswith("req-")
        payer = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}
        paid = call("POST", f"{base}/orders/{order['id']}/payment", headers=payer,
                    json_body={"amount": "30.00", "currency": "EUR"})
        assert (paid.status_code, paid.json()["status"]) == (200, "paid"), paid.text
        voucher = call("POST", f"{base}/vouchers", headers=member(),
                       json_body={"code": "WELCOME-2026"})
        assert voucher.status_code == 201, voucher.text
        assert voucher.headers["Location"] == f"{base}/credits/{voucher.json()['id']}"
        again = call("POST", f"{base}/vouchers", headers=member(),
                     json_body={"code": "WELCOME-2026"})
        assert (again.status_code, again.json()) == (200, voucher.json())
        listed = call("GET", f"{base}/credits", headers=member())
        assert listed.status_code == 200, listed.text
        assert [(c["kind"], c["available"]) for c in listed.json()["credits"]] == [
            ("voucher", "50.00"), ("purchased", "30.00")]
        # No settled history yet: nothing burns, and all of it ends some day.
        forecast = call("GET", f"{base}/forecast", headers=member())
        assert forecast.status_code == 200, forecast.text
        assert {k: forecast.json()[k] for k in ("available", "burn_rate_per_day",
                                                 "amount_at_risk", "warnings")} == {
            "available": "80.00", "burn_rate_per_day": "0.00", "amount_at_risk": "80.00",
            "warnings": []}
        # Our errors, in CloudKitty's pipeline too.
        bad = call("POST", f"{base}/orders", headers=member(), json_body={"amount": 30})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["code"] == "cloud_credit.invalid_amount"
        assert (bad.json()["errors"][0]["request_id"]
                == bad.headers["X-Openstack-Request-Id"])
        missing = call("GET", f"{base}/refunds", headers=member())
        assert missing.json()["errors"][0]["code"] == "cloud_credit.not_found"
        other = call("GET", f"{base}/credits/{voucher.json()['id']}", headers=member("b" * 32))
        assert other.status_code == 404
        # What the API answers, asked for by its charset: served, not stored by a cache.
        utf8 = call("GET", f"{base}/credits",
                    headers={**member(), "Accept": "application/json; charset=UTF-8"})
        assert utf8.status_code == 200, utf8.text
        assert utf8.headers["Cache-Control"] == "no-store"
        # An Accept that refuses JSON: our 406 (API-SIG), not CloudKitty's pecan's.
        html = call("GET", f"{base}/credits", headers={**member(), "Accept": "text/html"})
        assert (html.status_code, html.json()["errors"][0]["code"]) == (
            406, "cloud_credit.not_acceptable")


@pytest.mark.parametrize(("persona", "method", "path", "body", "status"), [
    ("member", "GET", "credits", None, 200),
    ("reader", "POST", "orders", {"amount": "10"}, 403),
    ("member", "POST", "orders", {"amount": "10"}, 201),
    ("other", "GET", "orders/{order}", None, 404),
    ("admin", "GET", f"credits?project_id={PROJECT}", None, 200),
    ("service", "POST", "orders/{order}/payment", {"amount": "20.00", "currency": "EUR"}, 200),
    ("member", "POST", "orders/{order}/payment", {"amount": "20.00", "currency": "EUR"}, 403),
    (None, "GET", "credits", None, 401),
    ("expired", "GET", "credits", None, 401),
])
def test_keystone_tokens_under_cloudkittys_api(
    cloudkitty_api: Any, ledger: Ledger, persona: str | None, method: str, path: str,
    body: Any, status: int,
) -> None:
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        order = service.create_order(PROJECT, "20.00")
    finally:
        service.close()
    with auth_token_fixture() as tokens:
        app = cloudkitty_api("keystone")
        headers: dict[str, str] = {}
        if persona == "expired":
            headers = {"X-Auth-Token": tokens.expired}
        elif persona is not None:
            headers = tokens.headers(persona)
        with serving(app) as url:
            response = call(method, f"{url}{BASE}/{path.format(order=order.id)}",
                            headers=headers, json_body=body)
    assert response.status_code == status, response.text
    # CloudKitty's pipeline: RequestId before its keystonemiddleware, which writes 401s.
    assert response.headers["X-Openstack-Request-Id"].startswith("req-")


def test_loading_cloudkittys_api_opens_no_ledger(cloudkitty_api: Any, cloudkitty: CloudKitty,
                                                 tmp_path: Path) -> None:
    """CloudKitty builds every processor's controller at start: ours opens nothing then."""
    from ovh_credit_plugin.hosts import cloudkitty as ck_host

    ledger_file = tmp_path / "never-opened.sqlite"
    cloudkitty.set_override("connection", f"sqlite:///{ledger_file}", "cloud_credit")
    ck_host.close_services()
    cloudkitty_api("noauth")
    assert not ledger_file.exists()
    assert ck_host._services == {}

