"""``openstack rating credit ...`` as a customer uses it: sorting money, a proxy's error page.

The real command classes in an OSC-like cliff app (tests/unit/test_osc.py's ``run``);
``responses`` answers at the HTTP adapter.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")

from ovh_credit_plugin import i18n  # noqa: E402
from ovh_credit_plugin.osc import client as credit_client  # noqa: E402
from tests.unit.test_osc import CK, CREDIT, ORDER, run  # noqa: E402

NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


@responses.activate
@pytest.mark.parametrize("formatter", ["value", "json"])
def test_sorting_orders_by_amount_sorts_numbers_not_text(formatter: str) -> None:
    responses.get(f"{CK}/orders", json={"orders": [
        dict(ORDER, id=f"ord-{a}", amount=a) for a in ("10.00", "100.00", "9.00")],
        "links": []})
    code, out, err = run(["rating", "credit", "order", "list", "--sort-column", "amount",
                          "-c", "amount", "-f", formatter])
    assert code == 0, err
    amounts = out.split() if formatter == "value" else [o["amount"] for o in json.loads(out)]
    # The API's decimal strings, unchanged, in the order of their values.
    assert amounts == ["9.00", "10.00", "100.00"]


@responses.activate
def test_sorting_credits_by_available_sorts_numbers_descending_too() -> None:
    responses.get(f"{CK}/credits", json={"credits": [
        dict(CREDIT, id=i, available=a) for i, a in enumerate(("9.50", "10.00", "0.00"))],
        "links": []})
    code, out, err = run(["rating", "credit", "list", "--sort-column", "available",
                          "--sort-descending", "-c", "available", "-f", "json"])
    assert code == 0, err
    assert [c["available"] for c in json.loads(out)] == ["10.00", "9.50", "0.00"]


def test_a_proxys_html_error_page_is_its_title_on_one_line() -> None:
    error = credit_client.error_message(502, NGINX_502, {"Content-Type": "text/html"})
    assert str(error) == "502 Bad Gateway (HTTP 502)"
    assert error.status == 502


def test_a_plain_text_error_body_is_kept() -> None:
    error = credit_client.error_message(503, b"Service Unavailable\n", {})
    assert str(error) == "Service Unavailable (HTTP 503)"


@pytest.mark.parametrize(("status", "english", "french"), [
    (502, "Bad gateway", "Passerelle incorrecte"),
    (504, "Gateway timeout", "Délai de la passerelle dépassé"),
])
def test_a_proxys_bodiless_gateway_error_has_its_own_words(
        status: int, english: str, french: str) -> None:
    # A load balancer's 502 or 504 with no body: what failed, not a bare "error".
    error = credit_client.error_message(status, b"", {})
    assert str(error) == f"{english} (HTTP {status})"
    assert i18n.translate(error.reason, "fr") == french
