"""The dashboard panel as a customer meets a broken or silent API: what its messages say,
and how long a page waits.

Django and Horizon only, as tests/unit/test_panel_edges_more.py (whose fixtures, URLs and
request helper these tests share); the API is ``responses`` at the HTTP adapter, or a
loopback socket that never answers.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")
pytest.importorskip("django")
pytest.importorskip("horizon")

from tests.unit.test_panel_edges_more import (  # noqa: E402  # isort: skip
    _request,
    catalog,
    horizon_urls_and_templates,
)

from django.conf import settings  # noqa: E402
from django.contrib.messages import get_messages  # noqa: E402
from django.utils import translation  # noqa: E402
from horizon import exceptions as horizon_exceptions  # noqa: E402

from ovh_credit_plugin.dashboard.content.credits import common  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import forms as credit_forms  # noqa: E402
from ovh_credit_plugin.dashboard.content.credits import views as credit_views  # noqa: E402
from tests.unit.test_osc import CK  # noqa: E402

__all__ = ["catalog", "horizon_urls_and_templates"]  # fixtures used here

NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n")
# What the customer must never read: the client's words for an operator (the setting
# to check, in the server's locale), a web page's markup, the API's address.
OPERATORS_WORDS = ("CLOUD_CREDIT_API", "--os-cloud-credit-api", "not JSON", "<html",
                   "<title", "rating.test", "Errno")


def _index(**user: Any) -> tuple[Any, credit_views.IndexView]:
    request = _request(**user)
    view = credit_views.IndexView()
    view.request = request
    view.kwargs = {}
    return request, view


def _shown(request: Any) -> list[str]:
    return [str(message) for message in get_messages(request)]


# -- what the messages of the lists and the order page say -----------------------------


@responses.activate
@pytest.mark.parametrize(("status", "body", "content_type", "words"), [
    (200, "<html>Horizon</html>", "text/html", "cannot be read"),
    (200, "[]", "application/json", "cannot be read"),
    (502, NGINX_502, "text/html", "cannot be reached"),
    (404, "<html><title>404 Not Found</title></html>", "text/html", "cannot be read"),
])
def test_the_lists_messages_have_no_operators_words(
        catalog: dict[str, Any], caplog: pytest.LogCaptureFixture, status: int, body: str,
        content_type: str, words: str) -> None:
    for path in ("credits", "orders"):
        responses.get(f"{CK}/{path}", status=status, body=body, content_type=content_type)
    request, view = _index(roles=("member",))
    with caplog.at_level(logging.WARNING), translation.override("en"):
        assert view.get_credits_data() == [] and view.get_orders_data() == []
    shown = _shown(request)
    assert len(shown) == 2 and all(words in text for text in shown), shown
    for text in shown:
        assert not [w for w in OPERATORS_WORDS if w in text], text
    # The operator's words are in the web server's log.
    assert [r for r in caplog.records if r.name == common.__name__]


@responses.activate
def test_the_order_pages_message_has_no_operators_words(catalog: dict[str, Any]) -> None:
    responses.get(f"{CK}/orders/ord-1", body="<html>Horizon</html>", content_type="text/html")
    request = _request(url="/project/cloud_credit/orders/ord-1/", roles=("member",))
    with pytest.raises(horizon_exceptions.Http302):
        credit_views.OrderView.as_view()(request, order_id="ord-1")
    [shown] = _shown(request)
    assert "cannot be read" in shown
    assert not [w for w in OPERATORS_WORDS if w in shown], shown


@responses.activate
def test_no_answer_on_the_lists_is_the_users_language_only(catalog: dict[str, Any]) -> None:
    import requests

    for path in ("credits", "orders"):
        responses.get(f"{CK}/{path}", body=requests.exceptions.ConnectionError(
            "HTTPConnectionPool(host='rating.test', port=8889): Max retries exceeded "
            "(Caused by NewConnectionError('[Errno 111] Connection refused'))"))
    request, view = _index(roles=("member",))
    with translation.override("fr"):
        view.get_credits_data()
        view.get_orders_data()
    shown = _shown(request)
    assert len(shown) == 2
    for text in shown:
        assert not [w for w in (*OPERATORS_WORDS, "Unable to establish", "Connection refused")
                    if w in text], text


# -- a proxy's error page on a form -------------------------------------------------------


@responses.activate
@pytest.mark.parametrize(("form_class", "data", "url"), [
    (credit_forms.AddCreditForm, {"amount": "10", "currency": "EUR", "request_key": "k"},
     f"{CK}/orders"),
    (credit_forms.AddVoucherForm, {"code": "WELCOME-2026"}, f"{CK}/vouchers"),
    (credit_forms.VoidForm, {"credit_id": "7", "reason": "charge-back"}, f"{CK}/credits/7/void"),
])
@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxys_error_page_on_a_form_is_plain_words(
        catalog: dict[str, Any], form_class: Any, data: dict[str, str], url: str,
        status: int) -> None:
    responses.post(url, status=status, body=NGINX_502.replace("502", str(status)),
                   content_type="text/html")
    request = _request("post", data=data, roles=("admin",))
    form = form_class(request, data=data)
    assert form.is_valid(), form.errors
    with translation.override("en"):
        assert form.handle(request, form.cleaned_data) is False
        shown = " ".join(form.non_field_errors())
    assert "cannot be reached" in shown, shown
    assert not [w for w in (*OPERATORS_WORDS, "Bad Gateway", "nginx") if w in shown], shown


# -- an API that never answers: one wait per page, not one per request -------------------


@pytest.fixture
def silent_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The rating endpoint: it accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setattr(sys.modules["openstack_dashboard.api.base"], "url_for",
                        lambda request, service_type: url, raising=False)
    monkeypatch.setattr(settings, "CLOUD_CREDIT_API_TIMEOUT", 0.5, raising=False)
    try:
        yield listener
    finally:
        listener.close()


def connections_made(listener: socket.socket) -> int:
    """How many connections the page opened (each one waited for the whole timeout)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            accepted, _address = listener.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


def test_a_silent_api_holds_the_page_for_one_timeout(catalog: dict[str, Any],
                                                     silent_api: socket.socket) -> None:
    # docs/dashboard.md: CLOUD_CREDIT_API_TIMEOUT is how long the panel waits before it
    # shows an error; the index asks for credits, orders and the forecast. Counted as
    # the connections that waited, not timed: one wait, not one per list.
    request, view = _index(roles=("member",))
    view.get_credits_data()
    view.get_ended_credits_data()
    view.get_orders_data()
    view._warnings()
    assert connections_made(silent_api) == 1
    shown = _shown(request)
    assert shown and all("in time" in text for text in shown), shown


@responses.activate
@pytest.mark.parametrize(("amount", "currency", "language", "said"), [
    # 100.00 at 2.333333 a day for 15 days: the rate is rounded down to 6 places.
    ("65.000005", "EUR", "en", "65.00\u00a0EUR of your credit"),
    ("65.000005", "EUR", "fr", "Votre crédit perdra 65,00\u00a0EUR à son expiration"),
    ("1234.994999", "EUR", "en", "1,234.99\u00a0EUR of your credit"),
    ("70.00", "EUR", "en", "70.00\u00a0EUR of your credit"),
    ("12.999999", "JPY", "en", "13\u00a0JPY of your credit"),
])
def test_the_forecast_warning_says_an_amount_in_the_currencys_units(
        catalog: dict[str, Any], amount: str, currency: str, language: str,
        said: str) -> None:
    # The forecast's amounts are exact, so they carry the burn rate's sub-cent digits
    # (docs/api.md); a customer reads an estimate in cents: "65.00 EUR", not
    # "65.000005 EUR".
    responses.get(f"{CK}/forecast", json={
        "currency": currency, "credits": [{"credit_id": 3,
                                           "valid_until": "2027-02-01T10:00:00Z"}],
        "warnings": [{"credit_id": 3, "days_left": 20, "amount": amount}]})
    _, view = _index(roles=("member",))
    with translation.override(language):
        [warning] = view._warnings()
    assert warning.startswith(said), warning
