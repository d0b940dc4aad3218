"""The dashboard panel at more of its edges: an admin on another project, an expired
token, no answer from the API, no rating endpoint at the user's interface, a long
void reason.

Django and Horizon only (no Horizon settings module, no browser): the panel's
URLs are mounted here under Horizon's namespaces, and ``base.html`` is a stub so
that the panel's own templates render. The API is ``responses`` at the HTTP
adapter, as in tests/unit/test_client_and_panel_edges.py (whose module sets up
the Django settings both use).
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")
pytest.importorskip("django")
pytest.importorskip("horizon")

# The shared Django settings (and Horizon's defaults) of the panel's unit tests, before
# Horizon is imported.
import tests.unit.test_client_and_panel_edges as _edges  # noqa: E402,F401  # isort: skip

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.messages.storage.cookie import CookieStorage  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import translation  # noqa: E402
from horizon import exceptions as horizon_exceptions  # noqa: E402

from ovh_credit_plugin.dashboard import api as dashboard_api  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import common  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import forms as credit_forms  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import tables as credit_tables  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import urls as credit_urls  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import views as credit_views  # noqa: E402
from tests.unit.test_osc import CK, CREDIT, ENDPOINT, ORDER  # noqa: E402

try:
    _ = settings.SECRET_KEY
except Exception:  # empty: the messages' cookie storage signs with it
    settings.SECRET_KEY = "ovh-credit-plugin unit tests"

# Horizon's URL names: horizon:project:cloud_credit:*.
urlpatterns = [path("", include(([
    path("project/", include(([
        path("cloud_credit/", include((credit_urls.urlpatterns, "cloud_credit"))),
    ], "project"))),
], "horizon")))]

ADMIN_PROJECT = "admin-project"
CUSTOMER = "customer-project"
UNAUTHORIZED = {"errors": [{"status": 401, "code": "cloud_credit.unauthorized",
                            "title": "Unauthorized", "detail": "the token is not valid",
                            "request_id": "req-1"}]}


class _User:
    def __init__(self, roles: tuple[str, ...], project_id: str) -> None:
        self.token = types.SimpleNamespace(id="tok-1")
        self.roles = [{"name": r} for r in roles]
        self.project_id = project_id
        self.is_authenticated = True


def _request(method: str = "get", url: str = "/project/cloud_credit/",
             data: dict[str, str] | None = None, *, roles: tuple[str, ...] = ("admin",),
             project_id: str = ADMIN_PROJECT) -> Any:
    request = getattr(RequestFactory(), method)(url, data or {})
    request.user = _User(roles, project_id)
    request.session = {}
    request._messages = CookieStorage(request)
    return request


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture(autouse=True)
def horizon_urls_and_templates() -> Any:
    """The panel's URLs under Horizon's namespaces; Horizon's base.html as a stub."""
    templates = [{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {"loaders": [
            ("django.template.loaders.locmem.Loader", {
                "base.html": "{% block main %}{% endblock %}"}),
            "django.template.loaders.app_directories.Loader"]},
    }]
    with override_settings(ROOT_URLCONF=__name__, TEMPLATES=templates):
        yield


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Horizon's ``url_for``: the catalog's rating endpoint (``state["url"]``; an
    exception there: Horizon's ServiceCatalogException, no endpoint)."""
    state: dict[str, Any] = {"url": ENDPOINT}

    def url_for(request: Any, service_type: str) -> str:
        if isinstance(state["url"], Exception):
            raise state["url"]
        return str(state["url"])

    base = types.ModuleType("openstack_dashboard.api.base")
    base.url_for = url_for  # type: ignore[attr-defined]
    package = types.ModuleType("openstack_dashboard.api")
    package.base = base  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openstack_dashboard.api", package)
    monkeypatch.setitem(sys.modules, "openstack_dashboard.api.base", base)
    return state


# -- an admin looking at a customer's project keeps looking at it -----------------------


def test_an_admins_order_link_keeps_the_project_shown() -> None:
    request = _request(url=f"/project/cloud_credit/?project_id={CUSTOMER}")
    table = credit_tables.OrdersTable(request, data=[dict(ORDER, project_id=CUSTOMER)])
    link = table.columns["order_id"].get_link_url(table.data[0])
    assert urlsplit(link).path == "/project/cloud_credit/orders/ord-1/"
    assert _query(link) == {"project_id": [CUSTOMER]}
    # A customer's own link stays plain.
    own = _request(url="/project/cloud_credit/", roles=("member",), project_id=CUSTOMER)
    table = credit_tables.OrdersTable(own, data=[dict(ORDER)])
    assert table.columns["order_id"].get_link_url(table.data[0]) == \
        "/project/cloud_credit/orders/ord-1/"


@responses.activate
def test_an_order_the_admin_adds_for_a_customer_opens_with_the_customers_project(
        catalog: dict[str, Any]) -> None:
    responses.post(f"{CK}/orders", json=dict(ORDER, project_id=CUSTOMER), status=201)
    data = {"project_id": CUSTOMER, "currency": "EUR", "request_key": "k1", "amount": "10"}
    request = _request("post", "/project/cloud_credit/add_credit/", data)
    form = credit_forms.AddCreditForm(request, data=data)
    assert form.is_valid(), form.errors
    response = form.handle(request, form.cleaned_data)
    assert _query(responses.calls[0].request.url) == {"project_id": [CUSTOMER]}
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/project/cloud_credit/orders/ord-1/"
    assert _query(response["Location"]) == {"project_id": [CUSTOMER]}


@responses.activate
def test_the_order_pages_back_link_returns_to_the_customers_project(
        catalog: dict[str, Any]) -> None:
    responses.get(f"{CK}/orders/ord-1", json=dict(ORDER, project_id=CUSTOMER))
    request = _request(url=f"/project/cloud_credit/orders/ord-1/?project_id={CUSTOMER}")
    response = credit_views.OrderView.as_view()(request, order_id="ord-1")
    html = response.render().content.decode()
    assert f'href="/project/cloud_credit/?project_id={CUSTOMER}"' in html, html
    # The member's own order page goes back to the plain index.
    request = _request(url="/project/cloud_credit/orders/ord-1/", roles=("member",),
                       project_id=CUSTOMER)
    html = credit_views.OrderView.as_view()(request, order_id="ord-1").render().content.decode()
    assert 'href="/project/cloud_credit/"' in html


@responses.activate
def test_an_order_that_cannot_be_shown_returns_to_the_customers_project(
        catalog: dict[str, Any]) -> None:
    responses.get(f"{CK}/orders/nope", status=404, json={"errors": [{
        "status": 404, "code": "cloud_credit.not_found", "title": "Not found",
        "detail": "no order nope"}]})
    request = _request(url=f"/project/cloud_credit/orders/nope/?project_id={CUSTOMER}")
    with pytest.raises(horizon_exceptions.Http302) as redirect:
        credit_views.OrderView.as_view()(request, order_id="nope")
    assert _query(redirect.value.location) == {"project_id": [CUSTOMER]}


@pytest.mark.parametrize("view", [credit_views.AddCreditView, credit_views.AddVoucherView,
                                  credit_views.VoidView])
def test_cancel_on_a_form_returns_to_the_customers_project(
        view: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credit_views.api, "forecast", lambda client, project_id=None: {})
    monkeypatch.setattr(credit_views.api, "client", lambda request: None)
    instance = view()
    instance.request = _request(url=f"/project/cloud_credit/x/?project_id={CUSTOMER}")
    instance.kwargs = {"credit_id": "7"}
    assert _query(str(instance.get_cancel_url())) == {"project_id": [CUSTOMER]}


# -- the void reason: what the API takes -------------------------------------------------


def test_the_void_form_takes_a_reason_as_long_as_the_api_does() -> None:
    # docs/api.openapi.yaml: reason {minLength: 1, maxLength: 1000}
    request = _request("post")
    reason = "charge-back " + "x" * 600
    assert credit_forms.VoidForm(request, data={"credit_id": "7", "reason": reason}).is_valid()
    assert not credit_forms.VoidForm(request, data={"credit_id": "7",
                                                    "reason": "x" * 1001}).is_valid()


# -- no rating endpoint at the user's interface: an error, not a 500 ----------------------


def _no_endpoint(catalog: dict[str, Any]) -> None:
    from horizon.exceptions import ServiceCatalogException

    catalog["url"] = ServiceCatalogException("rating")


@pytest.mark.parametrize(("form_class", "data"), [
    (credit_forms.AddCreditForm, {"amount": "10", "currency": "EUR", "request_key": "k"}),
    (credit_forms.AddVoucherForm, {"code": "WELCOME-2026"}),
    (credit_forms.VoidForm, {"credit_id": "7", "reason": "charge-back"}),
])
def test_a_form_without_a_rating_endpoint_says_so_on_the_form(
        catalog: dict[str, Any], form_class: Any, data: dict[str, str]) -> None:
    _no_endpoint(catalog)
    request = _request("post", data=data)
    form = form_class(request, data=data)
    assert form.is_valid(), form.errors
    assert form.handle(request, form.cleaned_data) is False
    assert "endpoint" in " ".join(form.non_field_errors())


def test_the_order_page_without_a_rating_endpoint_returns_to_the_list(
        catalog: dict[str, Any]) -> None:
    _no_endpoint(catalog)
    request = _request(url="/project/cloud_credit/orders/ord-1/", roles=("member",))
    with pytest.raises(horizon_exceptions.Http302) as redirect:
        credit_views.OrderView.as_view()(request, order_id="ord-1")
    assert urlsplit(redirect.value.location).path == "/project/cloud_credit/"


# -- an expired or revoked token: log in again, as Horizon does elsewhere -----------------


@responses.activate
@pytest.mark.parametrize(("path", "table"), [("credits", "get_credits_data"),
                                             ("orders", "get_orders_data")])
def test_the_lists_with_a_token_the_api_refuses_send_the_user_to_log_in(
        catalog: dict[str, Any], path: str, table: str) -> None:
    responses.get(f"{CK}/{path}", status=401, json=UNAUTHORIZED)
    view = credit_views.IndexView()
    view.request = _request(roles=("member",))
    view.kwargs = {}
    with pytest.raises(horizon_exceptions.NotAuthenticated):
        getattr(view, table)()


@responses.activate
def test_the_order_page_with_a_token_the_api_refuses_sends_the_user_to_log_in(
        catalog: dict[str, Any]) -> None:
    responses.get(f"{CK}/orders/ord-1", status=401, json=UNAUTHORIZED)
    request = _request(url="/project/cloud_credit/orders/ord-1/", roles=("member",))
    with pytest.raises(horizon_exceptions.NotAuthenticated):
        credit_views.OrderView.as_view()(request, order_id="ord-1")


@responses.activate
@pytest.mark.parametrize(("form_class", "data", "method", "url"), [
    (credit_forms.AddCreditForm, {"amount": "10", "currency": "EUR", "request_key": "k"},
     responses.POST, f"{CK}/orders"),
    (credit_forms.AddVoucherForm, {"code": "WELCOME-2026"}, responses.POST, f"{CK}/vouchers"),
    (credit_forms.VoidForm, {"credit_id": "7", "reason": "charge-back"}, responses.POST,
     f"{CK}/credits/7/void"),
])
def test_a_form_with_a_token_the_api_refuses_sends_the_user_to_log_in(
        catalog: dict[str, Any], form_class: Any, data: dict[str, str], method: str,
        url: str) -> None:
    responses.add(method, url, status=401, json=UNAUTHORIZED)
    request = _request("post", data=data)
    form = form_class(request, data=data)
    assert form.is_valid(), form.errors
    with pytest.raises(horizon_exceptions.NotAuthenticated):
        form.handle(request, form.cleaned_data)
    # Horizon's form view hands what handle() raises to exceptions.handle, which
    # must let it reach Horizon's middleware (the login page), not make it a message.
    try:
        form.handle(request, form.cleaned_data)
    except Exception:
        with pytest.raises(horizon_exceptions.NotAuthenticated):
            horizon_exceptions.handle(request)


@responses.activate
def test_a_forbidden_answer_is_still_a_message(catalog: dict[str, Any]) -> None:
    # 403 (a reader's order, another project): the API's refusal, shown; no log-in again.
    responses.post(f"{CK}/orders", status=403, json={"errors": [{
        "status": 403, "code": "cloud_credit.forbidden", "title": "Forbidden",
        "detail": "not allowed"}]})
    data = {"amount": "10", "currency": "EUR", "request_key": "k"}
    request = _request("post", data=data, roles=("reader",))
    form = credit_forms.AddCreditForm(request, data=data)
    assert form.is_valid()
    assert form.handle(request, form.cleaned_data) is False
    assert "Forbidden" in " ".join(form.non_field_errors())


# -- no answer from the API: in the user's language ------------------------------------


def _no_answer(failure: Exception) -> dashboard_api.CreditAPIError:
    responses.get(f"{CK}/credits", body=failure)
    client = dashboard_api.client(_request(roles=("member",)))
    with pytest.raises(dashboard_api.CreditAPIError) as raised:
        dashboard_api.credits(client)
    return raised.value


@responses.activate
@pytest.mark.parametrize("failure", [
    requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='rating.test', port=8889): Max retries exceeded "
        "(Caused by NewConnectionError('[Errno 111] Connection refused'))"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.SSLError("certificate verify failed"),
])
def test_no_answer_from_the_api_is_told_in_the_users_language(
        catalog: dict[str, Any], failure: Exception) -> None:
    error = _no_answer(failure)
    with translation.override("fr"):
        french = common.error_text(error)
    with translation.override("en"):
        english = common.error_text(error)
    assert french != english, french
    for word in ("Connection refused", "timed out", "Unable to establish", "certificate",
                 "Request to"):
        assert word not in french, french
    assert "crédit" in french


@responses.activate
def test_a_timeout_is_told_as_one(catalog: dict[str, Any]) -> None:
    error = _no_answer(requests.exceptions.ReadTimeout("read timed out"))
    refused = _no_answer(requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    with translation.override("en"):
        assert "in time" in common.error_text(error)
        assert common.error_text(error) != common.error_text(refused)


def test_a_missing_endpoint_keeps_its_own_translated_words(catalog: dict[str, Any]) -> None:
    _no_endpoint(catalog)
    with translation.override("fr"):
        with pytest.raises(dashboard_api.CreditAPIError) as raised:
            dashboard_api.client(_request())
        assert common.error_text(raised.value).startswith("aucun point d'accès rating")


# -- what the API writes is shown as text ------------------------------------------------


@responses.activate
def test_what_the_api_returns_on_the_order_page_is_escaped(catalog: dict[str, Any]) -> None:
    evil = '"><script>alert(1)</script>'
    responses.get(f"{CK}/orders/ord-1", json=dict(ORDER, id=f"ord-1{evil}",
                                                  payment_url=f"https://pay.test/{evil}"))
    request = _request(url="/project/cloud_credit/orders/ord-1/", roles=("member",))
    html = credit_views.OrderView.as_view()(request, order_id="ord-1").render().content.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_credit_cells_are_text(catalog: dict[str, Any]) -> None:
    request = _request(roles=("member",))
    table = credit_tables.CreditsTable(request, data=[dict(CREDIT, currency="<b>X</b>")])
    available = str(table.columns["available"].get_data(table.data[0]))
    assert "<b>" not in available and "&lt;b&gt;" in available


# -- an answer that is not the API's: the customer is not told to fix a setting -----------


@responses.activate
@pytest.mark.parametrize("body", ["<html>Horizon</html>", "[]", '{"items": []}'])
def test_an_answer_that_is_not_the_apis_is_plain_words_and_the_setting_is_logged(
        catalog: dict[str, Any], caplog: pytest.LogCaptureFixture, body: str) -> None:
    responses.get(f"{CK}/credits", body=body, content_type="application/json")
    client = dashboard_api.client(_request(roles=("member",)))
    with pytest.raises(dashboard_api.UnexpectedAnswer) as raised:
        dashboard_api.credits(client)
    with caplog.at_level(logging.WARNING), translation.override("en"):
        shown = common.error_text(raised.value)
    assert shown.startswith("The credit service gave an answer that cannot be read"), shown
    assert "--os-cloud-credit-api" not in shown and "CLOUD_CREDIT_API" not in shown
    [logged] = [r.getMessage() for r in caplog.records if r.name == common.__name__]
    assert "cannot be read" in logged
    if body.startswith("<"):
        # Which setting to check is the operator's, in the log.
        assert "CLOUD_CREDIT_API 'cloudkitty'" in logged, logged
