"""``openstack rating credit ...``: arguments, requests and answers, without a server.

The requests go through a real keystoneauth session and adapter (our noauth
plugin, the ``rating`` service type, as python-cloudkittyclient builds it);
``responses`` answers at the HTTP adapter, so no socket is opened. The commands
against the real API and the real ``openstack`` program are in
tests/functional/test_osc_standalone.py and tests/integration/test_keystone_e2e.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from importlib import metadata
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")

from cliff.app import App  # noqa: E402
from cliff.commandmanager import CommandManager  # noqa: E402
from keystoneauth1 import adapter, session  # noqa: E402

from ovh_credit_plugin import i18n  # noqa: E402
from ovh_credit_plugin.osc import client as credit_client  # noqa: E402
from ovh_credit_plugin.osc import plugin, v1  # noqa: E402
from ovh_credit_plugin.osc.noauth import CreditNoAuthLoader, CreditNoAuthPlugin  # noqa: E402

ENDPOINT = "http://rating.test:8889"
CK = f"{ENDPOINT}/v1/rating/module_config/cloud_credit"
SA = f"{ENDPOINT}/v1"

CREDIT = {
    "id": 7, "project_id": "p1", "kind": "voucher", "description": "Welcome voucher",
    "source": "voucher:WELC****", "currency": "EUR", "total": "50.00", "used": "0.00",
    "expired": "0.00", "voided": "0.00", "available": "50.00",
    "valid_from": "2026-01-31T10:00:00Z", "valid_until": "2026-05-01T10:00:00Z",
    "status": "active", "products": [],
}
FORECAST = {
    "currency": "EUR", "available": "100.00", "burn_rate_per_day": "2.00", "window_days": 30,
    "runs_out_at": None, "amount_at_risk": "60.00",
    "credits": [{"credit_id": 7, "kind": "purchased", "valid_until": "2026-05-06T10:00:00Z",
                 "available": "100.00", "expires_unused": "60.00"}],
    "warnings": [{"credit_id": 7, "days_left": 20, "amount": "60.00"}],
}
ORDER = {
    "id": "ord-1", "project_id": "p1", "amount": "12.30", "currency": "EUR",
    "status": "pending", "created_at": "2026-01-31T10:00:00Z",
    "expires_at": "2026-02-07T10:00:00Z", "paid_at": None,
    "payment_url": "https://pay.test/ord-1", "credit_id": None,
}


def make_client(mode: str = "cloudkitty", **auth: str) -> credit_client.CreditClient:
    plugin_ = CreditNoAuthPlugin(endpoint=ENDPOINT, **auth)
    ada = adapter.Adapter(session=session.Session(auth=plugin_), service_type="rating",
                          additional_headers={"Content-Type": "application/json"})
    return credit_client.CreditClient(ada, mode)


class _ClientManager:
    def __init__(self, client: credit_client.CreditClient):
        self.cloud_credit = client


class OscLikeApp(App):
    """cliff's App with the commands under their OSC names and a client manager."""

    def __init__(self, client: credit_client.CreditClient):
        manager = CommandManager("ovh_credit_plugin.tests")
        for name, command in v1.COMMANDS.items():
            manager.add_command(name.replace("_", " "), command)
        self.stdout_buffer = io.StringIO()
        self.stderr_buffer = io.StringIO()
        super().__init__(description="test", version="0", command_manager=manager,
                         stdout=self.stdout_buffer, stderr=self.stderr_buffer,
                         deferred_help=True)
        self.client_manager = _ClientManager(client)


def run(argv: list[str], client: credit_client.CreditClient | None = None
        ) -> tuple[int, str, str]:
    app = OscLikeApp(client or make_client())
    # argparse's usage errors go to sys.stderr and exit, as in ``openstack``.
    with contextlib.redirect_stderr(app.stderr_buffer):
        try:
            code = app.run(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, app.stdout_buffer.getvalue(), app.stderr_buffer.getvalue()


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


# -- registration --------------------------------------------------------------


def _ours(group: str) -> dict[str, str]:
    # The installed metadata (from pyproject.toml), as OSC's stevedore reads it.
    return {ep.name: ep.value for ep in metadata.entry_points(group=group)
            if ep.value.startswith("ovh_credit_plugin.")}


def test_every_command_is_in_both_rating_namespaces() -> None:
    expected = {name: f"ovh_credit_plugin.osc.v1:{cls.__name__}"
                for name, cls in v1.COMMANDS.items()}
    assert _ours("openstack.rating.v1") == expected
    assert _ours("openstack.rating.v2") == expected
    assert _ours("openstack.cli.extension") == {"cloud_credit": "ovh_credit_plugin.osc.plugin"}
    assert _ours("keystoneauth1.plugin") == {
        "ovh-credit-noauth": "ovh_credit_plugin.osc.noauth:CreditNoAuthLoader"}


def test_extension_module_has_what_openstackclient_reads() -> None:
    for attribute in ("API_NAME", "API_VERSION_OPTION", "DEFAULT_API_VERSION",
                      "API_VERSIONS", "make_client", "build_option_parser"):
        assert hasattr(plugin, attribute)
    assert plugin.DEFAULT_API_VERSION in plugin.API_VERSIONS


def test_mode_comes_from_the_cloud_config() -> None:
    class Region:
        config = {"cloud_credit_api": "standalone"}

    class Instance:
        _cli_options = Region()

    assert plugin.mode_of(Instance()) == "standalone"
    Region.config = {}
    assert plugin.mode_of(Instance()) == "cloudkitty"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(credit_client.CreditAPIError, match="choose from cloudkitty, standalone"):
        credit_client.base_path("gnocchi")


# -- request building ----------------------------------------------------------


@pytest.mark.parametrize("mode,base", [("cloudkitty", "/v1/rating/module_config/cloud_credit"),
                                       ("standalone", "/v1")])
def test_paths_for_each_server(mode: str, base: str) -> None:
    r = credit_client.Requests(credit_client.base_path(mode))
    assert r.list_credits().path == f"{base}/credits"
    assert r.show_credit("7").path == f"{base}/credits/7"
    assert r.void_credit("7", "fraud").path == f"{base}/credits/7/void"
    assert r.forecast().path == f"{base}/forecast"
    assert r.activate_voucher("X").path == f"{base}/vouchers"
    assert r.check_voucher(" WELCOME-2026 ").path == f"{base}/vouchers/WELCOME-2026"
    assert r.create_order("5").path == f"{base}/orders"
    assert r.list_orders().path == f"{base}/orders"
    assert r.show_order("o").path == f"{base}/orders/o"
    assert r.cancel_order("o").path == f"{base}/orders/o/cancel"
    assert r.pay_order("o", "5", "eur").path == f"{base}/orders/o/payment"


def test_ids_cannot_escape_their_path_segment() -> None:
    r = credit_client.Requests("/v1")
    assert r.show_order("../credits/1").path == "/v1/orders/..%2Fcredits%2F1"
    assert r.check_voucher("A B/C?").path == "/v1/vouchers/A%20B%2FC%3F"


def test_bodies_params_and_headers() -> None:
    r = credit_client.Requests("/v1")
    order = r.create_order("12.30", currency=" eur", idempotency_key="k-1", project_id="p2")
    assert (order.method, order.body, order.params, order.headers) == (
        "POST", {"amount": "12.30", "currency": "EUR"}, {"project_id": "p2"},
        {"Idempotency-Key": "k-1"})
    assert r.create_order("5").body == {"amount": "5"}
    assert r.create_order("5").headers == {} and r.create_order("5").params == {}
    assert r.pay_order("o", "12.3", "eur").body == {"amount": "12.3", "currency": "EUR"}
    assert r.void_credit("7", "charge-back").body == {"reason": "charge-back"}
    assert r.activate_voucher("welcome-2026").body == {"code": "welcome-2026"}
    assert r.list_credits(project_id="p", status="active", limit=5, marker="9").params == {
        "project_id": "p", "status": "active", "limit": "5", "marker": "9"}
    assert r.cancel_order("o").body is None
    assert (r.forecast().params, r.forecast(project_id="p2").params) == ({},
                                                                      {"project_id": "p2"})
    assert r.cancel_order("o").params == {} and r.show_credit("7").params == {}


@pytest.mark.parametrize("argv", [["credit", "show", "7"],
                                  ["credit", "void", "7", "--reason", "x"],
                                  ["credit", "order", "show", "o"],
                                  ["credit", "order", "cancel", "o"],
                                  ["credit", "order", "pay", "o", "--amount", "1",
                                   "--currency", "EUR"]])
def test_item_commands_take_no_project(argv: list[str]) -> None:
    # The API finds a credit or an order by its id and refuses ?project_id= there.
    code, _, err = run(["rating", *argv, "--project", "p2"])
    assert code == 2 and "unrecognized arguments: --project p2" in err


@pytest.mark.parametrize("text,sent", [("50", "50"), ("12.30", "12.30"), (" 0.1 ", "0.1"),
                                       ("1E3", "1000"), ("-5", "-5"),
                                       ("123456789012345678.123456", "123456789012345678.123456")])
def test_amounts_are_sent_as_exact_decimal_strings(text: str, sent: str) -> None:
    assert credit_client.amount_text(text) == sent


@pytest.mark.parametrize("text", ["", "abc", "1,5", "NaN", "inf", "0x10", "1.2.3",
                                  "1E+100000000", "1E+64", "1E-65"])
def test_non_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid amount"):
        credit_client.amount_text(text)


def test_next_marker_takes_only_the_marker() -> None:
    doc = {"links": [{"rel": "next",
                      "href": "http://internal:8890/v1/credits?limit=2&marker=41&status=active"}]}
    assert credit_client.next_marker(doc) == "41"
    assert credit_client.next_marker({"links": []}) is None
    assert credit_client.next_marker({"links": [{"rel": "self", "href": "x?marker=1"}]}) is None
    assert credit_client.next_marker({}) is None


# -- errors --------------------------------------------------------------------


def test_api_sig_error_is_one_line_with_code_and_request_id() -> None:
    body = json.dumps({"errors": [{
        "status": 409, "code": "cloud_credit.voucher_redeemed", "title": "Voucher redeemed",
        "detail": "The voucher WELC**** has no\nredemption left.", "request_id": "req-1"}]})
    error = credit_client.error_message(409, body.encode(), {})
    assert str(error) == ("Voucher redeemed: The voucher WELC**** has no redemption left. "
                          "(HTTP 409, cloud_credit.voucher_redeemed, request req-1)")
    assert (error.status, error.code) == (409, "cloud_credit.voucher_redeemed")


def test_retry_after_is_shown_for_429_and_503() -> None:
    body = json.dumps({"errors": [{"status": 429, "code": "cloud_credit.voucher_throttled",
                                   "title": "Too many failed attempts"}]}).encode()
    message = str(credit_client.error_message(429, body, {"Retry-After": "120"}))
    assert message == ("Too many failed attempts (HTTP 429, cloud_credit.voucher_throttled, "
                       "retry after 120s)")


def test_the_error_keeps_the_server_words_and_retry_after_apart() -> None:
    # The dashboard shows the server's words alone, and says when to try again.
    body = json.dumps({"errors": [{"status": 429, "code": "cloud_credit.voucher_throttled",
                                   "title": "Too many failed attempts", "detail": "wait",
                                   "request_id": "req-3"}]}).encode()
    error = credit_client.error_message(429, body, {"Retry-After": "120"})
    assert (error.text, error.retry_after) == ("Too many failed attempts: wait", 120)
    error = credit_client.error_message(503, b"", {"Retry-After": "Wed, 21 Oct 2035 07:28:00 GMT"})
    assert (error.text, error.retry_after) == ("Service unavailable", None)


def test_keystonemiddleware_401_and_other_bodies() -> None:
    ksm = json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                "message": "The request you have made requires "
                                           "authentication."}}).encode()
    assert str(credit_client.error_message(401, ksm, {"X-Openstack-Request-Id": "req-2"})) == (
        "The request you have made requires authentication. (HTTP 401, request req-2)")
    wsme = json.dumps({"faultcode": "Client", "faultstring": "Unknown module"}).encode()
    assert str(credit_client.error_message(404, wsme, {})) == "Unknown module (HTTP 404)"
    html = b"<html>\n<body>502 Bad Gateway</body>\n</html>"
    assert "\n" not in str(credit_client.error_message(502, html, {}))
    assert str(credit_client.error_message(500, b"", {})) == "Server error (HTTP 500)"


# -- through keystoneauth ------------------------------------------------------


@responses.activate
def test_noauth_plugin_sends_the_caller_headers_and_json() -> None:
    responses.post(f"{SA}/orders", json=ORDER, status=201)
    client = make_client("standalone", project_id="p1", user_id="u1", roles="member, reader")
    assert client.send(client.requests.create_order("12.30", idempotency_key="k")) == ORDER
    request = responses.calls[0].request
    assert request.headers["X-Project-Id"] == "p1"
    assert request.headers["X-User-Id"] == "u1"
    assert request.headers["X-Roles"] == "member,reader"
    assert request.headers["Idempotency-Key"] == "k"
    assert request.headers["Content-Type"] == "application/json"
    assert "X-Auth-Token" not in request.headers
    assert sent_json(responses.calls[0]) == {"amount": "12.30"}


def test_noauth_loader_options() -> None:
    names = {opt.name for opt in CreditNoAuthLoader().get_options()}
    assert {"endpoint", "project-id", "user-id", "roles"} <= names
    plugin_ = CreditNoAuthLoader().load_from_options(endpoint=ENDPOINT, project_id="p")
    assert plugin_.get_headers(None) == {"X-Project-Id": "p", "X-Roles": "reader,member"}


@responses.activate
def test_lists_follow_next_links_with_our_own_path() -> None:
    page1 = {"credits": [dict(CREDIT, id=1), dict(CREDIT, id=2)],
             "links": [{"rel": "next", "href": "http://elsewhere/v1/credits?marker=2&limit=2"}]}
    page2 = {"credits": [dict(CREDIT, id=3)], "links": []}
    responses.get(f"{CK}/credits", json=page1,
                  match=[responses.matchers.query_param_matcher({"project_id": "p9"})])
    responses.get(f"{CK}/credits", json=page2,
                  match=[responses.matchers.query_param_matcher(
                      {"project_id": "p9", "marker": "2"})])
    client = make_client()
    items = list(client.pages(client.requests.list_credits(project_id="p9"), "credits"))
    assert [c["id"] for c in items] == [1, 2, 3]


@responses.activate
def test_limit_stops_early() -> None:
    page = {"credits": [dict(CREDIT, id=1), dict(CREDIT, id=2)],
            "links": [{"rel": "next", "href": "/v1/credits?marker=2"}]}
    responses.get(f"{CK}/credits", json=page)
    client = make_client()
    items = list(client.pages(client.requests.list_credits(limit=2), "credits", 2))
    assert [c["id"] for c in items] == [1, 2]
    assert len(responses.calls) == 1


@responses.activate
def test_a_server_that_always_has_a_next_page_is_bounded(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(credit_client, "MAX_PAGES", 3)
    responses.get(f"{CK}/orders", json={"orders": [ORDER],
                                        "links": [{"rel": "next", "href": "?marker=x"}]})
    client = make_client()
    with pytest.raises(credit_client.CreditAPIError, match="more than 3 pages"):
        list(client.pages(client.requests.list_orders(), "orders"))


@responses.activate
def test_a_non_json_answer_suggests_the_mode() -> None:
    responses.get(f"{CK}/credits/7", body="<html>CloudKitty</html>", status=200)
    client = make_client()
    with pytest.raises(credit_client.CreditAPIError, match="--os-cloud-credit-api 'cloudkitty'"):
        client.send(client.requests.show_credit("7"))


def test_connection_refused_is_one_short_line() -> None:
    plugin_ = CreditNoAuthPlugin(endpoint="http://127.0.0.1:9")
    ada = adapter.Adapter(session=session.Session(auth=plugin_), service_type="rating")
    client = credit_client.CreditClient(ada, "standalone")
    with pytest.raises(credit_client.CreditAPIError) as caught:
        client.send(client.requests.list_credits())
    assert str(caught.value) == ("Unable to establish connection to "
                                 "http://127.0.0.1:9/v1/credits: [Errno 111] Connection refused")


# -- the commands --------------------------------------------------------------


@responses.activate
def test_credit_list_table_and_json() -> None:
    responses.get(f"{CK}/credits", json={"credits": [CREDIT], "links": []})
    code, out, _ = run(["rating", "credit", "list", "-f", "json"])
    assert code == 0
    assert json.loads(out) == [{k: CREDIT[k] for k in v1.CREDIT_SHORT}]
    code, out, _ = run(["rating", "credit", "list", "--long", "-f", "json", "--status",
                        "active", "--project", "p2"])
    assert json.loads(out)[0] == CREDIT
    assert responses.calls[-1].request.params == {"status": "active", "project_id": "p2"}


@responses.activate
def test_credit_show_with_entries() -> None:
    entries = [{"id": 1, "credit_id": 7, "type": "grant", "amount": "50.00",
                "settlement_key": None, "line_id": None, "note": "",
                "created_at": "2026-01-31T10:00:00Z"}]
    responses.get(f"{CK}/credits/7", json=dict(CREDIT, entries=entries))
    code, out, _ = run(["rating", "credit", "show", "7", "-f", "json"])
    assert code == 0
    shown = json.loads(out)
    assert shown["entries"] == entries and shown["available"] == "50.00"
    code, out, _ = run(["rating", "credit", "show", "7", "-c", "entries", "-f", "value"])
    assert json.loads(out) == entries
    code, out, _ = run(["rating", "credit", "show", "7", "-c", "entries"])
    assert "type=grant, amount=50.00" in out


@responses.activate
def test_voucher_activate_and_order_create() -> None:
    responses.post(f"{CK}/vouchers", json=CREDIT, status=201)
    responses.post(f"{CK}/orders", json=ORDER, status=201)
    code, out, _ = run(["rating", "credit", "voucher", "activate", "WELCOME-2026", "-f",
                        "json"])
    assert code == 0 and json.loads(out)["id"] == 7
    assert sent_json(responses.calls[0]) == {"code": "WELCOME-2026"}
    code, out, _ = run(["rating", "credit", "order", "create", "12.30", "--currency", "eur",
                        "--idempotency-key", "abc", "-f", "value", "-c", "amount"])
    assert (code, out) == (0, "12.30\n")
    assert sent_json(responses.calls[1]) == {"amount": "12.30", "currency": "EUR"}
    assert responses.calls[1].request.headers["Idempotency-Key"] == "abc"


@responses.activate
def test_order_pay_needs_amount_and_currency() -> None:
    responses.post(f"{CK}/orders/ord-1/payment",
                   json=dict(ORDER, status="paid", credit_id=8))
    code, _, err = run(["rating", "credit", "order", "pay", "ord-1", "--amount", "12.30"])
    assert code == 2 and "--currency" in err
    assert not responses.calls
    code, out, _ = run(["rating", "credit", "order", "pay", "ord-1", "--amount", "12.30",
                        "--currency", "EUR", "-f", "json"])
    assert code == 0 and json.loads(out)["credit_id"] == 8
    assert sent_json(responses.calls[0]) == {"amount": "12.30", "currency": "EUR"}


@responses.activate
def test_void_needs_a_reason() -> None:
    code, _, err = run(["rating", "credit", "void", "7"])
    assert code == 2 and "--reason" in err
    code, _, err = run(["rating", "credit", "void", "7", "--reason", "  "])
    assert code == 1 and "--reason must not be empty" in err
    assert not responses.calls


def test_bad_amount_is_a_usage_error_before_any_request() -> None:
    code, _, err = run(["rating", "credit", "order", "create", "12,30"])
    assert code == 2
    assert "invalid amount '12,30'" in err


@responses.activate
def test_api_error_is_one_line_and_exit_1() -> None:
    responses.get(f"{CK}/orders/nope", status=404, json={"errors": [{
        "status": 404, "code": "cloud_credit.not_found", "title": "Not found",
        "detail": "No order nope.", "request_id": "req-9"}]})
    code, out, err = run(["rating", "credit", "order", "show", "nope"])
    assert code == 1 and out == ""
    assert err.strip() == ("Not found: No order nope. (HTTP 404, cloud_credit.not_found, "
                           "request req-9)")


@responses.activate
def test_order_list_cancel_show() -> None:
    responses.get(f"{CK}/orders", json={"orders": [ORDER]})
    responses.post(f"{CK}/orders/ord-1/cancel", json=dict(ORDER, status="cancelled"))
    responses.get(f"{CK}/orders/ord-1", json=dict(ORDER, status="cancelled"))
    code, out, _ = run(["rating", "credit", "order", "list", "-f", "csv"])
    assert code == 0 and out.splitlines()[0] == ",".join(f'"{c}"' for c in v1.ORDER_SHORT)
    code, out, _ = run(["rating", "credit", "order", "cancel", "ord-1", "-f", "value", "-c",
                        "status"])
    assert (code, out) == (0, "cancelled\n")
    code, out, _ = run(["rating", "credit", "order", "show", "ord-1", "-f", "json"])
    assert json.loads(out)["status"] == "cancelled"


@responses.activate
def test_forecast_json_table_and_another_project() -> None:
    responses.get(f"{CK}/forecast", json=FORECAST)
    code, out, _ = run(["rating", "credit", "forecast", "-f", "json"])
    assert code == 0 and json.loads(out) == FORECAST
    assert list(json.loads(out)) == list(v1.FORECAST_FIELDS)  # the contract's order
    code, out, _ = run(["rating", "credit", "forecast", "--project", "p2"])
    assert code == 0
    assert "credit_id=7, days_left=20, amount=60.00" in out
    assert responses.calls[-1].request.params == {"project_id": "p2"}
    code, out, _ = run(["rating", "credit", "forecast", "-f", "value", "-c", "warnings"])
    assert json.loads(out) == FORECAST["warnings"]


SETTLEMENT = {
    "key": "invoice/p1/INV-1", "invoice_id": "INV-1", "project_id": "p1", "currency": "EUR",
    "total": "35.00", "credit_applied": "35.00", "amount_due": "0.00",
    "allocations": [
        {"line_id": "g", "credit_id": 7, "kind": "voucher", "amount": "5.00",
         "explanation": {"place": 1, "order_key": {
             "kind": "voucher", "valid_until": "2027-01-01T00:00:00Z",
             "created_at": "2026-01-31T10:00:00Z", "credit_id": 7},
             "reason": "order", "skipped": []}},
        {"line_id": "c", "credit_id": 8, "kind": "purchased", "amount": "30.00",
         "explanation": {"place": 2, "order_key": {
             "kind": "purchased", "valid_until": None,
             "created_at": "2026-01-31T10:00:00Z", "credit_id": 8},
             "reason": "scope",
             "skipped": [{"credit_id": 7, "cause": "not_covered", "products": []}]}},
    ],
    "settled_at": "2026-02-01T10:00:00Z", "revision": 1,
}


@responses.activate
def test_settlement_show_by_invoice_or_key() -> None:
    responses.get(f"{CK}/settlements", json=SETTLEMENT)
    code, out, _ = run(["rating", "credit", "settlement", "show", "INV-1", "-f", "json"])
    assert code == 0 and json.loads(out) == SETTLEMENT
    assert responses.calls[-1].request.params == {"invoice": "INV-1"}
    run(["rating", "credit", "settlement", "show", "INV-1", "--project", "p2", "-f", "json"])
    assert responses.calls[-1].request.params == {"invoice": "INV-1", "project_id": "p2"}
    run(["rating", "credit", "settlement", "show", "cloudkitty/p1/a/b", "--key", "-f", "json"])
    assert responses.calls[-1].request.params == {"key": "cloudkitty/p1/a/b"}
    code, _, err = run(["rating", "credit", "settlement", "show", "k", "--key", "--project",
                        "p2"])
    assert code == 1 and "--project goes with an invoice ID" in err
    code, out, _ = run(["rating", "credit", "settlement", "show", "INV-1", "-c",
                        "allocations", "-f", "value"])
    assert json.loads(out) == SETTLEMENT["allocations"]
    code, out, _ = run(["rating", "credit", "settlement", "show", "INV-1"])
    text = " ".join(out.split())
    assert ("line c: 30.00 EUR from credit 8 (purchased), place 2 in the consumption order "
            "(no end date, created 2026-01-31T10:00:00Z); credit 7 comes first "
            "but does not cover this line's product") in text


@pytest.mark.parametrize(("environ", "sent"), [
    ({"LANGUAGE": "fr_FR:fr:en", "LANG": "de_DE.UTF-8"}, "fr-FR, fr;q=0.9, en;q=0.8"),
    ({"LC_ALL": "fr_CA.UTF-8@euro"}, "fr-CA"),
    ({"LANG": "C.UTF-8"}, None),
    ({}, None),
])
def test_the_locale_becomes_accept_language(environ: dict[str, str], sent: str | None) -> None:
    assert i18n.accept_language(environ) == sent


@responses.activate
def test_requests_ask_for_the_language_of_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGUAGE", "fr")
    responses.get(f"{SA}/credits", json={"credits": [], "links": []})
    client = make_client("standalone", project_id="p1", user_id="u1", roles="reader")
    client.send(client.requests.list_credits())
    assert responses.calls[0].request.headers["Accept-Language"] == "fr"


def test_an_error_keeps_the_no_break_spaces_of_french_and_loses_line_breaks() -> None:
    body = json.dumps({"errors": [{
        "status": 400, "code": "cloud_credit.invalid_amount", "title": "Montant invalide",
        "detail": "amount\u00a0: 10.5 a trop de décimales\n(maximum\u00a0: 0)"}]}).encode()
    # Title and detail joined as the answer's language writes it (its Content-Language).
    failure = credit_client.error_message(400, body, {"Content-Language": "fr"})
    assert failure.text == ("Montant invalide\u00a0: amount\u00a0: 10.5 a trop de décimales "
                            "(maximum\u00a0: 0)")
