"""The customer's ways in besides the API server, ``openstack rating credit`` and the
dashboard panel, at their edges: large limits, languages, timeouts, resubmitted forms.

No server: ``responses`` answers at the HTTP adapter (one test opens a loopback socket
that never answers). The panel's forms and client run with Django settings only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import types
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")
pytest.importorskip("django")
pytest.importorskip("horizon")

from django.conf import settings  # noqa: E402

if not settings.configured:
    # The same settings as tests/unit/test_dashboard.py: whichever module runs first.
    settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                       INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
    import django

    django.setup()

# What Horizon's modules read from the settings at import time (its own defaults).
import horizon.defaults  # noqa: E402
import openstack_dashboard.defaults  # noqa: E402

for _module in (horizon.defaults, openstack_dashboard.defaults):
    for _name in dir(_module):
        if _name.isupper() and not hasattr(settings, _name):
            setattr(settings, _name, getattr(_module, _name))
if not hasattr(settings, "HORIZON_CONFIG"):
    settings.HORIZON_CONFIG = {"exceptions": {"unauthorized": [], "not_found": [],
                                              "recoverable": []}}

from django.test import RequestFactory  # noqa: E402
from django.utils import translation  # noqa: E402

from ovh_credit_plugin.dashboard import api as dashboard_api  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import forms as credit_forms  # noqa: E402
from tests.unit.test_osc import CK, CREDIT, ENDPOINT, ORDER, make_client, run  # noqa: E402

MAX_LIMIT = 1000  # docs/api.md "Lists": limit is at most 1000


# -- openstack rating credit ... -----------------------------------------------------


def _pages_like_the_api(request: Any) -> tuple[int, dict[str, str], str]:
    """``GET credits`` as the API answers it: 400 above limit=1000, else a page of ids."""
    params = dict(request.params)
    limit = int(params.get("limit", "100"))
    if not 1 <= limit <= MAX_LIMIT:
        body = {"errors": [{"status": 400, "code": "cloud_credit.invalid_request",
                            "title": "Invalid request",
                            "detail": "limit is an integer from 1 to 1000"}]}
        return 400, {}, json.dumps(body)
    start = int(params.get("marker", "0"))
    ids = list(range(start + 1, min(start + limit, 2500) + 1))
    links = ([{"rel": "next", "href": f"{CK}/credits?limit={limit}&marker={ids[-1]}"}]
             if ids and ids[-1] < 2500 else [])
    return 200, {}, json.dumps({"credits": [dict(CREDIT, id=i) for i in ids],
                                "links": links})


@responses.activate
def test_credit_list_with_a_limit_above_the_api_page_maximum_lists_that_many() -> None:
    # `--limit N` is "at most this many (default: all, page by page)": above the API's
    # 1000 per page, the command must page, not ask for a page the API refuses.
    responses.add_callback(responses.GET, f"{CK}/credits", callback=_pages_like_the_api)
    code, out, err = run(["rating", "credit", "list", "--limit", "1500", "-f", "json"])
    assert code == 0, err
    assert [c["id"] for c in json.loads(out)] == list(range(1, 1501))
    assert all(int(call.request.params["limit"]) <= MAX_LIMIT for call in responses.calls)


@responses.activate
def test_order_list_with_a_large_limit_pages_too() -> None:
    def orders(request: Any) -> tuple[int, dict[str, str], str]:
        limit = int(dict(request.params).get("limit", "100"))
        if limit > MAX_LIMIT:
            return 400, {}, json.dumps({"errors": [{"status": 400,
                                                    "code": "cloud_credit.invalid_request",
                                                    "title": "limit"}]})
        return 200, {}, json.dumps({"orders": [ORDER], "links": []})

    responses.add_callback(responses.GET, f"{CK}/orders", callback=orders)
    code, out, err = run(["rating", "credit", "order", "list", "--limit", "5000", "-f",
                          "json"])
    assert code == 0, err
    assert len(json.loads(out)) == 1


# -- the dashboard's client ------------------------------------------------------------


class _User:
    def __init__(self, roles: tuple[str, ...] = ("member", "reader"),
                 project_id: str = "p1") -> None:
        self.token = types.SimpleNamespace(id="tok-1")
        self.roles = [{"name": r} for r in roles]
        self.project_id = project_id


def _request(method: str = "get", path: str = "/project/cloud_credit/",
             data: dict[str, str] | None = None, **user: Any) -> Any:
    factory = RequestFactory()
    request = getattr(factory, method)(path, data or {})
    request.user = _User(**user)
    return request


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Horizon's ``url_for``: the catalog's rating endpoint is ENDPOINT."""
    base = types.ModuleType("openstack_dashboard.api.base")
    base.url_for = lambda request, service_type: ENDPOINT  # type: ignore[attr-defined]
    package = types.ModuleType("openstack_dashboard.api")
    package.base = base  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openstack_dashboard.api", package)
    monkeypatch.setitem(sys.modules, "openstack_dashboard.api.base", base)


@responses.activate
def test_the_panel_asks_the_api_in_the_users_language_not_the_servers(
        catalog: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Horizon's web server usually runs with LANG=en_US.UTF-8 (or C.UTF-8); a French
    # user must still get the API's refusals in French (docs/dashboard.md, Languages).
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    responses.get(f"{CK}/credits", json={"credits": [], "links": []})
    with translation.override("fr"):
        client = dashboard_api.client(_request())
        dashboard_api.credits(client)
    assert responses.calls[0].request.headers["Accept-Language"] == "fr"


@responses.activate
def test_the_command_line_still_asks_in_the_locale_language(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    responses.get(f"{CK}/credits", json={"credits": [], "links": []})
    client = make_client()
    client.send(client.requests.list_credits())
    assert responses.calls[0].request.headers["Accept-Language"] == "fr-FR"


@responses.activate
def test_the_panel_requests_have_a_timeout(catalog: None) -> None:
    responses.get(f"{CK}/credits", json={"credits": [], "links": []})
    client = dashboard_api.client(_request())
    dashboard_api.credits(client)
    timeout = responses.calls[0].request.req_kwargs.get("timeout")
    assert timeout is not None and 0 < timeout <= 120


def test_a_silent_api_does_not_hang_the_panel(catalog: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # An API that accepts the connection and never answers: the page must give up.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    sys.modules["openstack_dashboard.api.base"].url_for = (  # type: ignore[attr-defined]
        lambda request, service_type: url)
    monkeypatch.setattr(settings, "CLOUD_CREDIT_API_TIMEOUT", 0.5, raising=False)
    outcome: list[Any] = []

    def list_credits() -> None:
        try:
            dashboard_api.credits(dashboard_api.client(_request()))
            outcome.append("answered")
        except dashboard_api.CreditAPIError as error:
            outcome.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=list_credits, daemon=True)
    worker.start()
    worker.join(10)
    listener.close()
    assert outcome and isinstance(outcome[0], dashboard_api.CreditAPIError), outcome
    assert time.monotonic() - started < 10


# -- the panel's Add credit form ---------------------------------------------------------


def _add_credit(data: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    request = _request("post", "/project/cloud_credit/add_credit/", data)
    form = credit_forms.AddCreditForm(request, data=data)
    assert form.is_valid(), form.errors
    monkeypatch.setattr(credit_forms, "reverse", lambda name, args=(): f"/order/{args[0]}/")
    return form.handle(request, form.cleaned_data)


def _initial_data(monkeypatch: pytest.MonkeyPatch, amount: str,
                  currency: str = "EUR") -> dict[str, str]:
    """What the browser posts: the form's initial hidden fields and the typed amount."""
    from ovh_credit_plugin.dashboard.content.credits import views

    monkeypatch.setattr(views.api, "forecast", lambda client, project_id=None: {
        "currency": currency})
    view = views.AddCreditView()
    view.request = _request()
    view.kwargs = {}
    initial = view.get_initial()
    form = credit_forms.AddCreditForm(view.request, initial=initial)
    data = {name: str(form[name].value() or "") for name in form.fields}
    data["amount"] = amount
    return data


@responses.activate
def test_a_resubmitted_add_credit_form_reuses_its_idempotency_key(
        catalog: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The customer submits, the answer is lost (a proxy's 502, a closed laptop), the
    # customer submits the same form again: one order, not two.
    responses.post(f"{CK}/orders", status=502, body="<html>Bad gateway</html>")
    responses.post(f"{CK}/orders", json=ORDER, status=200)
    data = _initial_data(monkeypatch, "12.30")
    first = _add_credit(data, monkeypatch)
    assert first is False  # the error is on the form
    second = _add_credit(data, monkeypatch)
    assert second.status_code == 302
    keys = [call.request.headers.get("Idempotency-Key") for call in responses.calls]
    assert keys[0] and keys[0] == keys[1]


@responses.activate
def test_another_add_credit_form_or_amount_is_another_order(
        catalog: None, monkeypatch: pytest.MonkeyPatch) -> None:
    responses.post(f"{CK}/orders", json=ORDER, status=201)
    one = _initial_data(monkeypatch, "12.30")
    two = _initial_data(monkeypatch, "12.30")
    _add_credit(one, monkeypatch)
    _add_credit(two, monkeypatch)
    _add_credit(dict(one, amount="20"), monkeypatch)
    _add_credit(dict(one, amount="20.00"), monkeypatch)  # the same amount as "20"
    keys = [call.request.headers.get("Idempotency-Key") for call in responses.calls]
    assert all(keys)
    assert keys[0] != keys[1] and keys[2] not in (keys[0], keys[1])
    assert keys[2] == keys[3]
    assert [json.loads(c.request.body)["amount"] for c in responses.calls] == [
        "12.30", "12.30", "20", "20.00"]


@pytest.mark.parametrize(("amount", "currency"), [
    ("50.001", "EUR"), ("1500.5", "JPY"), ("1.2345", "KWD"), ("0", "EUR"), ("-1", "EUR"),
    # What Decimal takes and the API does not; the first would be written out as a
    # hundred million digits by the web server before the API refused it.
    ("1e100000000", "EUR"), ("1E+3", "EUR"), ("1_000", "EUR"), ("\u0661\u0662", "EUR"),
    ("\uff11\uff12", "EUR"), ("Infinity", "EUR"), ("NaN", "EUR"), ("1.000.000", "EUR"),
])
def test_the_form_refuses_what_the_api_refuses(amount: str, currency: str) -> None:
    request = _request("post")
    form = credit_forms.AddCreditForm(request, data={"amount": amount, "currency": currency})
    assert not form.is_valid()


# -- errors without the API's own words, in the user's language ------------------------


def test_the_panel_shows_a_bodiless_error_in_the_users_language() -> None:
    # A 503 with no body (a load balancer in front of the API): the server said nothing,
    # the client's own word for it must be in the French user's language.
    from ovh_credit_plugin.dashboard.content.credits import common
    from ovh_credit_plugin.osc.client import error_message

    error = error_message(503, b"", {})
    with translation.override("fr"):
        assert common.error_text(error) == "Service indisponible"
        assert common.voucher_refusal(error) == "Service indisponible"
    with translation.override("en"):
        assert common.error_text(error) == "Service unavailable"
    # The API's own words stay as they came (already in the asked language).
    api_words = error_message(409, json.dumps({"errors": [{
        "status": 409, "code": "cloud_credit.idempotency_conflict",
        "title": "Conflit"}]}).encode(), {})
    with translation.override("en"):
        assert common.error_text(api_words) == "Conflit"


def test_the_command_line_shows_a_bodiless_error_in_the_locale_language() -> None:
    import subprocess

    script = ("from ovh_credit_plugin.osc.client import error_message\n"
              "print(error_message(503, b'', {}))\n")
    env = {"LANGUAGE": "fr", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout.strip()
    assert out.startswith("Service indisponible (HTTP 503"), out


def test_an_http_date_retry_after_is_not_given_seconds() -> None:
    from ovh_credit_plugin.osc.client import error_message

    with translation.override("en"):
        message = str(error_message(503, b"", {"Retry-After": "Wed, 21 Oct 2035 07:28:00 GMT"}))
    assert "GMTs" not in message
    assert "Wed, 21 Oct 2035 07:28:00 GMT" in message
    assert str(error_message(503, b"", {"Retry-After": "30"})).endswith("retry after 30s)")


@pytest.mark.parametrize("timeout", [
    "30", True, 0, -5, float("nan"), float("inf"), [30],
    # Past an hour: 1e10 s overflowed the socket's clock, 10**400 keystoneauth's float().
    3601, 10**10, 1e10, 10**400,
], ids=lambda value: repr(value)[:20])
def test_a_wrong_api_timeout_setting_is_logged_and_the_panel_still_lists(
        catalog: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        timeout: Any) -> None:
    # Horizon's settings are Python the operator writes: "30" between quotes reached
    # urllib3, which refused it (ValueError) on every page of the panel. As Horizon does
    # with its own wrong settings, the panel logs it (once) and goes on, with the default.
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
            # Three page views: the error is logged once per process, not on every page.
            for _ in range(3):
                assert dashboard_api.credits(dashboard_api.client(_request())) == []
    finally:
        server.shutdown()
        server.server_close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    # The value as the operator wrote it (its first 197 characters, for a huge one).
    assert "CLOUD_CREDIT_API_TIMEOUT" in errors[0] and repr(timeout)[:197] in errors[0]
    assert f"{dashboard_api.DEFAULT_TIMEOUT} s" in errors[0]
