"""The ``http`` voucher catalog driver against mocked answers (``responses``).

What the wire can say, and what the driver makes of it: status mapping,
retry counts, the POST retried with the same key, malformed answers, codes
checked before any call, codes and token out of logs, and the contract
document (docs/voucher-catalog.openapi.yaml) as the models' single source.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import types
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import oslo_i18n
import pytest
import requests
import responses
import yaml
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import RequestHistory

from ovh_credit_plugin import contracts, exceptions, i18n, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog import http as catalog_http
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog, deadline, errors, transport, wire
from tests.support.catalog_docs import (
    CODE,
    KEY,
    MALFORMED_VOUCHERS,
    OPENAPI,
    PROJECT,
    REDEEM_URL,
    TOKEN,
    VOUCHER_URL,
    calls,
    make_catalog,
    redemption_doc,
    voucher_doc,
)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def catalog() -> Iterator[HttpVoucherCatalog]:
    driver = make_catalog()
    yield driver
    driver.close()


# -- the contract document is the models' single source --------------------------------


def _schema(name: str) -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI.read_text())
    assert document["openapi"].startswith("3.1")
    return typing.cast(dict[str, Any], document["components"]["schemas"][name])


def _resolve(prop: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return _schema(prop["$ref"].rsplit("/", 1)[-1])
    return prop


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) or (
        isinstance(annotation, types.UnionType) and type(None) in annotation.__args__
    )


@pytest.mark.parametrize(("schema_name", "model"), [
    ("Voucher", catalog_http.VoucherDocument),
    ("Redemption", catalog_http.RedemptionDocument),
    ("RedemptionRequest", catalog_http.RedemptionRequest),
    ("Error", catalog_http.ErrorDocument),
])
def test_models_follow_the_openapi_document(schema_name: str, model: Any) -> None:
    schema = _schema(schema_name)
    properties = schema["properties"]
    assert set(model.model_fields) == set(properties)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert required == set(schema.get("required", []))
    for name, info in model.model_fields.items():
        prop = _resolve(properties[name])
        declared = prop.get("type")
        nullable = isinstance(declared, list) and "null" in declared
        assert nullable == _allows_none(info.annotation), name


def test_patterns_and_enums_match_the_openapi_document() -> None:
    assert _schema("Code")["pattern"] == catalog_http.CODE_PATTERN
    assert f"^{contracts.VOUCHER_CODE_RE.pattern}$" == catalog_http.CODE_PATTERN
    assert _schema("Amount")["pattern"] == catalog_http.AMOUNT_PATTERN
    assert _schema("Currency")["pattern"] == catalog_http.CURRENCY_PATTERN
    request = _schema("RedemptionRequest")
    assert request["properties"]["idempotency_key"]["pattern"] == (
        catalog_http.IDEMPOTENCY_KEY_PATTERN
    )
    assert re.fullmatch(catalog_http.IDEMPOTENCY_KEY_PATTERN, KEY)
    status = _schema("Voucher")["properties"]["status"]["enum"]
    assert set(status) == set(typing.get_args(models.VoucherStatus))


def test_openapi_document_lists_every_status_the_driver_maps() -> None:
    paths = yaml.safe_load(OPENAPI.read_text())["paths"]
    get = set(paths["/v1/vouchers/{code}"]["get"]["responses"])
    post = set(paths["/v1/vouchers/{code}/redemptions"]["post"]["responses"])
    assert get == {"200", "401", "403", "404", "429", "5XX"}
    assert post == {"200", "201", "401", "403", "404", "409", "410", "429", "5XX"}


def test_example_documents_are_valid_for_the_models() -> None:
    catalog_http.VoucherDocument.model_validate_json(json.dumps(voucher_doc()))
    catalog_http.RedemptionDocument.model_validate_json(json.dumps(redemption_doc()))


# -- success, codes, headers -------------------------------------------------------------


def test_get_normalizes_the_code_and_sends_the_token(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.get(VOUCHER_URL, json=voucher_doc(), headers={"X-Request-Id": "abc"})
    voucher = catalog.get("  welcome-2026 ")
    assert voucher.code == CODE
    assert voucher.amount == Decimal("50.00")
    assert isinstance(voucher.amount, Decimal)
    (call,) = calls(mocked)
    assert call.request.headers["X-Auth-Token"] == TOKEN
    assert call.request.headers["Accept"] == "application/json"


# The last four upper-case to ASCII (sharp s -> SS, dotless i -> I, long s -> S, the ff
# ligature -> FF): a code that is not ASCII as typed is refused, not made another code.
@pytest.mark.parametrize("code", ["AB", "WELC;OME", "a b c d", "x" * 65, "WELCOME/../x", "",
                                  "WELCOME\u00df", "w\u0131thdraw",
                                  "\u017fummer-2026", "\ufb00-2026"])
def test_invalid_codes_never_reach_the_network(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, code: str
) -> None:
    with pytest.raises(exceptions.InvalidVoucherCode):
        catalog.get(code)
    with pytest.raises(exceptions.InvalidVoucherCode):
        catalog.redeem(code, project_id=PROJECT, idempotency_key=KEY)
    assert calls(mocked) == []


def test_redeem_posts_project_and_key(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.post(REDEEM_URL, json=redemption_doc(), status=201)
    redemption = catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)
    assert redemption.id == "r-1"
    assert redemption.amount == Decimal("50.00")
    (call,) = calls(mocked)
    assert json.loads(call.request.body) == {"project_id": PROJECT, "idempotency_key": KEY}
    assert call.request.headers["Content-Type"] == "application/json"


def test_replayed_redemption_200_is_accepted(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.post(REDEEM_URL, json=redemption_doc(), status=200)
    assert catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY).id == "r-1"


def test_no_token_configured_sends_no_header(mocked: responses.RequestsMock) -> None:
    mocked.get(VOUCHER_URL, json=voucher_doc())
    driver = make_catalog(auth_token=None)
    driver.get(CODE)
    assert "X-Auth-Token" not in calls(mocked)[0].request.headers


# -- status mapping -------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [
    (401, base.CatalogAuthError),
    (403, base.CatalogAuthError),
    (404, base.VoucherNotFound),
    (409, base.VoucherAlreadyRedeemed),
    (410, base.VoucherUnavailable),
    (400, base.CatalogProtocolError),
    (418, base.CatalogProtocolError),
    (422, base.CatalogProtocolError),
    (501, base.CatalogUnavailable),
    (505, base.CatalogUnavailable),
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_mapping_without_retry(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, method: str, status: int,
    error: type[Exception],
) -> None:
    url = VOUCHER_URL if method == "GET" else REDEEM_URL
    mocked.add(method, url, json={"message": "nope"}, status=status,
               headers={"X-Request-Id": "rq-7"})
    with pytest.raises(error) as caught:
        if method == "GET":
            catalog.get(CODE)
        else:
            catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)
    assert isinstance(caught.value, base.CatalogError)
    assert caught.value.status == status
    assert caught.value.request_id == "rq-7"
    assert "rq-7" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert CODE not in str(caught.value)
    assert len(calls(mocked)) == 1  # not retried


def test_auth_error_is_clear_and_does_not_show_the_token(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.get(VOUCHER_URL, json={"message": "bad token"}, status=401)
    with pytest.raises(base.CatalogAuthError) as caught:
        catalog.get(CODE)
    message = str(caught.value)
    assert "refused our credentials" in message
    assert "HTTP 401" in message
    assert "auth_token" in message
    assert "https://catalog.test" in message
    assert TOKEN not in message
    assert TOKEN not in repr(catalog)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_retried_statuses_are_retried_then_mapped(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, method: str, status: int
) -> None:
    url = VOUCHER_URL if method == "GET" else REDEEM_URL
    mocked.add(method, url, json={"message": "busy"}, status=status)
    expected = base.CatalogThrottled if status == 429 else base.CatalogUnavailable
    with pytest.raises(expected) as caught:
        if method == "GET":
            catalog.get(CODE)
        else:
            catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)
    assert len(calls(mocked)) == 4  # 1 + retries (3)
    assert caught.value.status == status
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.parametrize("retries", [0, 1, 5])
def test_retry_count_follows_the_option(mocked: responses.RequestsMock, retries: int) -> None:
    mocked.get(VOUCHER_URL, status=503, json={})
    driver = make_catalog(retries=retries)
    with pytest.raises(base.CatalogUnavailable):
        driver.get(CODE)
    assert len(calls(mocked)) == retries + 1


def test_transient_errors_then_success(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.get(VOUCHER_URL, status=503, json={})
    mocked.get(VOUCHER_URL, status=502, json={})
    mocked.get(VOUCHER_URL, json=voucher_doc())
    # responses serves registered answers for one URL in order, the last one repeating.
    assert catalog.get(CODE).code == CODE
    assert len(calls(mocked)) == 3


def test_post_is_retried_with_the_same_idempotency_key(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.post(REDEEM_URL, status=503, json={})
    mocked.post(REDEEM_URL, status=429, json={})
    mocked.post(REDEEM_URL, json=redemption_doc(), status=200)
    redemption = catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)
    assert redemption.id == "r-1"
    posts = calls(mocked, "POST")
    assert len(posts) == 3
    assert {json.loads(c.request.body)["idempotency_key"] for c in posts} == {KEY}


def test_retry_after_beyond_the_deadline_stops_at_once(
    mocked: responses.RequestsMock,
) -> None:
    # Default cap 30 s > deadline 10 s: waiting cannot help; one call, a clear error.
    mocked.get(VOUCHER_URL, status=429, json={}, headers={"Retry-After": "21600"})
    driver = make_catalog()
    started = time.monotonic()
    with pytest.raises(base.CatalogThrottled) as caught:
        driver.get(CODE)
    assert time.monotonic() - started < 10  # waiting would take 30 s (the cap) or six hours
    assert len(calls(mocked)) == 1
    assert "21,600" in str(caught.value)


def test_retry_after_within_the_cap_is_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(VOUCHER_URL, status=503, json={}, headers={"Retry-After": "21600"})
    mocked.get(VOUCHER_URL, json=voucher_doc())
    driver = make_catalog(max_retry_after=0.01)
    assert driver.get(CODE).code == CODE
    assert len(calls(mocked)) == 2


def test_redirects_are_not_followed(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    # Following it would send X-Auth-Token wherever the Location points.
    mocked.get(VOUCHER_URL, status=302, headers={"Location": "https://evil.test/x"})
    with pytest.raises(base.CatalogProtocolError, match="HTTP 302"):
        catalog.get(CODE)
    assert [c.request.url for c in calls(mocked)] == [VOUCHER_URL]


def test_connection_errors_become_unavailable(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.get(VOUCHER_URL, body=requests.ConnectionError("boom"))
    with pytest.raises(base.CatalogUnavailable, match="unavailable"):
        catalog.get(CODE)


# -- malformed answers ---------------------------------------------------------------




@pytest.mark.parametrize("name", sorted(MALFORMED_VOUCHERS))
def test_malformed_voucher_is_a_protocol_error(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, name: str
) -> None:
    body = MALFORMED_VOUCHERS[name]
    mocked.get(VOUCHER_URL, body=body if isinstance(body, bytes) else json.dumps(body),
               content_type="application/json")
    with pytest.raises(base.CatalogProtocolError) as caught:
        catalog.get(CODE)
    assert CODE not in str(caught.value)
    assert len(calls(mocked)) == 1


@pytest.mark.parametrize("field", sorted(voucher_doc()))
def test_voucher_missing_a_field_is_a_protocol_error(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, field: str
) -> None:
    document = voucher_doc()
    del document[field]
    mocked.get(VOUCHER_URL, json=document)
    with pytest.raises(base.CatalogProtocolError, match=field):
        catalog.get(CODE)


@pytest.mark.parametrize("field", sorted(redemption_doc()))
def test_redemption_missing_a_field_is_a_protocol_error(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, field: str
) -> None:
    document = redemption_doc()
    del document[field]
    mocked.post(REDEEM_URL, json=document, status=201)
    with pytest.raises(base.CatalogProtocolError, match=field):
        catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)


@pytest.mark.parametrize(("name", "document"), [
    ("another project", redemption_doc(project_id="p2")),
    ("another code", redemption_doc(code="OTHER-CODE")),
    ("zero amount", redemption_doc(amount="0")),
    ("negative amount", redemption_doc(amount="-50.00")),
    ("wrong currency", redemption_doc(currency="EURO")),
    ("float amount", redemption_doc(amount=50.0)),
    ("no redemption time", redemption_doc(redeemed_at=None)),
    ("empty id", redemption_doc(id="")),
])
def test_malformed_redemption_is_a_protocol_error(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog, name: str,
    document: dict[str, Any],
) -> None:
    mocked.post(REDEEM_URL, json=document, status=201)
    with pytest.raises(base.CatalogProtocolError):
        catalog.redeem(CODE, project_id=PROJECT, idempotency_key=KEY)


def test_unknown_fields_are_ignored(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    mocked.get(VOUCHER_URL, json=voucher_doc(campaign="spring", extra={"a": 1}))
    assert catalog.get(CODE).amount == Decimal("50.00")


def test_oversized_answer_is_refused(
    mocked: responses.RequestsMock, catalog: HttpVoucherCatalog
) -> None:
    huge = voucher_doc(description="x" * 900)
    huge["padding"] = "y" * (catalog_http.MAX_BODY_BYTES + 10)
    mocked.get(VOUCHER_URL, json=huge)
    with pytest.raises(base.CatalogProtocolError, match="larger than"):
        catalog.get(CODE)


# -- the deadline's retry policy -----------------------------------------------------------


def test_backoff_is_jittered_exponential_and_capped_by_the_deadline() -> None:
    retry = transport.CatalogRetry(total=10, backoff_factor=1.0, backoff_max=100)
    seen = set()
    for attempt in range(1, 6):
        retry = retry.new(history=(*retry.history, RequestHistory("GET", "/", None, 503, None)))
        ceiling = 2 ** (attempt - 1)
        for _ in range(20):
            wait = retry.get_backoff_time()
            assert ceiling / 2 <= wait <= ceiling
            seen.add(wait)
    assert len(seen) > 50  # jittered, not fixed
    with deadline.running(seconds=0.5):
        assert retry.get_backoff_time() <= 0.5


def test_no_retry_once_the_deadline_has_passed() -> None:
    retry = transport.CatalogRetry(total=10, connect=10)
    with deadline.running(seconds=0.01) as operation:
        time.sleep(0.05)
        with pytest.raises(MaxRetryError):
            retry.increment("GET", "/v1/vouchers/X", error=OSError("reset"))
    assert operation.expired


def test_attempt_timeouts_shrink_to_the_remaining_deadline() -> None:
    operation = deadline.Operation(seconds=0.2)
    try:
        timeout = deadline.DeadlineTimeout(connect=3.0, read=5.0, operation=operation)
        assert timeout.clone().connect_timeout <= 0.2
        assert timeout.clone().read_timeout <= 0.2
    finally:
        operation.finish()


@pytest.mark.parametrize("released", [False, True])
def test_expiry_shuts_down_only_the_connections_still_held(released: bool) -> None:
    mine, peer = socket.socketpair()
    mine.settimeout(1)
    pool = transport.WatchedHTTPConnectionPool("catalog.test")
    connection = pool._get_conn()
    assert isinstance(connection, transport.WatchedHTTPConnection)
    connection.sock = mine
    operation = deadline.Operation(seconds=60)
    try:
        operation.watch(connection)
        if released:  # back in the pool, maybe another thread's by now
            pool._put_conn(connection)
        operation.expire()
        with contextlib.suppress(OSError):  # a shut down socket refuses the write
            peer.sendall(b"x")
        assert mine.recv(1) == (b"x" if released else b"")
    finally:
        operation.finish()
        mine.close()
        peer.close()


# -- messages in the reader's language -----------------------------------------------------
# docs/translations.md: every error the CLI prints is translated, the http
# catalog's included. In the REST API (lazy mode) a message is translated when
# it is read, so each one must be one whole message, not English around French.

WHERE = "https://catalog.test"


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode (api.controllers.Runtime, oslo_i18n.enable_lazy), for
    # this test only: messages stay oslo_i18n Messages until translated.
    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


def _answer(status: int, message: str | None = None, **headers: Any) -> wire.Answer:
    body = json.dumps({"message": message}).encode() if message else b""
    return wire.Answer(status=status, body=body, request_id=headers.get("request_id"),
                       attempts=2, retry_after=headers.get("retry_after"))


def _wire_error(what: wire.WireWhat, body: bytes) -> wire.WireError:
    answer = wire.Answer(status=201, body=body, request_id=None, attempts=1, retry_after=None)
    try:
        wire.parse(wire.RedemptionDocument, answer, what=what)
    except wire.WireError as error:
        return error
    raise AssertionError("parsed")


def _redeemed(**changes: Any) -> BaseException:
    # Through the model's own checks first; an amount of nothing it refuses itself.
    redemption = models.Redemption.model_validate(redemption_doc()).model_copy(update=changes)
    try:
        base.check_redemption(redemption, code=CODE, project_id=PROJECT, currency="EUR")
    except base.CatalogProtocolError as error:
        return error
    raise AssertionError("accepted")


def _expired() -> deadline.Operation:
    operation = deadline.Operation(seconds=10)
    operation.expire()
    return operation


REFUSED = urllib3_exceptions.NewConnectionError(
    None, "Failed to establish a new connection: [Errno 111] Connection refused")

CATALOG_ERRORS: dict[str, tuple[Any, str, str]] = {
    "auth, the catalog's message": (
        lambda: errors.from_answer(_answer(401, "bad token"), where=WHERE, code=CODE),
        "the voucher catalog at https://catalog.test refused our credentials (HTTP 401: "
        "bad token): check [voucher_catalog] auth_token",
        "le catalogue des vouchers à l'adresse https://catalog.test a refusé nos "
        "identifiants (HTTP 401\u00a0: bad token)\u00a0: vérifiez [voucher_catalog] auth_token"),
    "auth, with a request id": (
        lambda: errors.from_answer(_answer(403, request_id="rq-7"), where=WHERE, code=CODE),
        "the voucher catalog at https://catalog.test refused our credentials (HTTP 403): "
        "check [voucher_catalog] auth_token (catalog request rq-7)",
        "le catalogue des vouchers à l'adresse https://catalog.test a refusé nos "
        "identifiants (HTTP 403)\u00a0: vérifiez [voucher_catalog] auth_token (requête du "
        "catalogue rq-7)"),
    "revoked": (
        lambda: errors.from_answer(_answer(410, "revoked"), where=WHERE, code=CODE),
        "voucher WEL…6 is revoked or expired: revoked",
        "le voucher WEL…6 est révoqué ou expiré\u00a0: revoked"),
    "throttled": (
        lambda: errors.from_answer(_answer(429, retry_after="30"), where=WHERE, code=CODE),
        "the voucher catalog at https://catalog.test is throttling us (HTTP 429 after 2 "
        "attempt(s), it asks to wait 30 s)",
        "le catalogue des vouchers à l'adresse https://catalog.test limite nos requêtes "
        "(HTTP 429 après 2 tentative(s), il demande d'attendre 30 s)"),
    "5xx": (
        lambda: errors.from_answer(_answer(503, "busy"), where=WHERE, code=CODE),
        "voucher catalog at https://catalog.test unavailable: HTTP 503 after 2 attempt(s): "
        "busy",
        "le catalogue des vouchers à l'adresse https://catalog.test est indisponible\u00a0: "
        "HTTP 503 après 2 tentative(s)\u00a0: busy"),
    "another status": (
        lambda: errors.from_answer(_answer(418), where=WHERE, code=CODE),
        "unexpected HTTP 418 from the voucher catalog at https://catalog.test",
        "réponse HTTP 418 inattendue du catalogue des vouchers à l'adresse "
        "https://catalog.test"),
    "cannot connect": (
        lambda: errors.from_exception(REFUSED, operation=deadline.Operation(seconds=10),
                                      where=WHERE, code=CODE),
        "voucher catalog at https://catalog.test unavailable: cannot connect ([Errno 111] "
        "Connection refused)",
        "le catalogue des vouchers à l'adresse https://catalog.test est indisponible\u00a0: "
        "connexion impossible ([Errno 111] Connection refused)"),
    "deadline": (
        lambda: errors.from_exception(REFUSED, operation=_expired(), where=WHERE, code=CODE),
        "voucher catalog at https://catalog.test unavailable: no complete answer within the "
        "10 s deadline (last error: cannot connect ([Errno 111] Connection refused))",
        "le catalogue des vouchers à l'adresse https://catalog.test est indisponible\u00a0: "
        "aucune réponse complète dans le délai de 10 s (dernière erreur\u00a0: connexion "
        "impossible ([Errno 111] Connection refused))"),
    "TLS": (
        lambda: errors.from_exception(
            requests.exceptions.SSLError("certificate verify failed: self-signed certificate"),
            operation=deadline.Operation(seconds=10), where=WHERE, code=CODE),
        "TLS with the voucher catalog at https://catalog.test failed: SSLError: certificate "
        "verify failed: self-signed certificate; set [voucher_catalog] ca_file to the CA that "
        "signed the catalog's certificate",
        "la connexion TLS au catalogue des vouchers à l'adresse https://catalog.test a "
        "échoué\u00a0: SSLError: certificate verify failed: self-signed certificate\u00a0; "
        "définissez [voucher_catalog] ca_file avec l'autorité de certification qui a signé le "
        "certificat du catalogue"),
    "not JSON": (
        lambda: errors.from_wire_error(_wire_error("voucher", b"<html>"), code=CODE),
        "the voucher catalog's voucher for WEL…6 is not a JSON object",
        "le voucher WEL…6 envoyé par le catalogue des vouchers n'est pas un objet "
        "JSON"),
    "a field missing": (
        lambda: errors.from_wire_error(_wire_error("redemption", b"{}"), code=CODE),
        "the voucher catalog's redemption for WEL…6 is invalid: id: this field is required",
        "l'utilisation de WEL…6 envoyée par le catalogue des vouchers est invalide\u00a0: "
        "id\u00a0: ce champ est obligatoire"),
    "redeemed another code": (
        lambda: _redeemed(code="SPRING-SALE"),
        "the catalog redeemed another code than WEL…6",
        "le catalogue a utilisé un autre code que WEL…6"),
    "redeemed for another project": (
        lambda: _redeemed(project_id="someone-else"),
        "the catalog redeemed WEL…6 for another project than p1",
        "le catalogue a utilisé WEL…6 pour un autre projet que p1"),
    "redeemed for nothing": (
        lambda: _redeemed(amount=Decimal("0.00")),
        "the catalog redeemed WEL…6 for nothing",
        "le catalogue a utilisé WEL…6 pour un montant nul"),
    "redeemed in another currency": (
        lambda: _redeemed(currency="USD"),
        "the catalog redeemed WEL…6 in USD, but the voucher is in EUR",
        "le catalogue a utilisé WEL…6 en USD, mais le voucher est en EUR"),
}


@pytest.mark.usefixtures("lazy")
@pytest.mark.parametrize("name", sorted(CATALOG_ERRORS))
def test_catalog_errors_are_whole_messages_in_the_readers_language(name: str) -> None:
    make, english, french = CATALOG_ERRORS[name]
    message = exceptions.message_of(make())
    assert i18n.translate(message, "en") == english
    assert i18n.translate(message, "fr") == french


# -- configuration ---------------------------------------------------------------------


def test_proxy_and_ca_bundle_variables_are_read_once_when_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mocked: responses.RequestsMock
) -> None:
    # Not on every request (requests' trust_env costs ~0.1 ms a call), but
    # still honoured: the proxy for the endpoint, NO_PROXY, the CA bundle.
    # Seen in what each call hands requests' adapter (responses records it).
    mocked.get(VOUCHER_URL, json=voucher_doc())

    def sent_by(driver: HttpVoucherCatalog) -> dict[str, Any]:
        try:
            driver.get(CODE)
        finally:
            driver.close()
        return typing.cast(dict[str, Any], calls(mocked)[-1].request.req_kwargs)

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    driver = make_catalog()
    # Set once the driver is built: a session that read the environment on
    # every request (requests' trust_env) would add this proxy to the call.
    monkeypatch.setenv("HTTP_PROXY", "http://late.test:3128")
    sent = sent_by(driver)
    assert sent["proxies"] == {"https": "http://proxy.test:3128"}
    assert sent["verify"] == str(bundle)
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("NO_PROXY", "catalog.test")
    sent = sent_by(make_catalog(ca_file=str(bundle)))
    assert sent["proxies"] == {}
    assert sent["verify"] == str(bundle)
    monkeypatch.delenv("NO_PROXY")
    # An explicit choice wins over the variable.
    assert sent_by(make_catalog(verify=False))["verify"] is False


@pytest.mark.parametrize(("options", "message"), [
    ({"endpoint": None}, "endpoint is required"),
    ({"endpoint": "https://user:pw@catalog.test"}, "must not carry credentials"),
    ({"endpoint": "https://catalog.test/api?x=1"}, "query"),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ({"key_file": "/nonexistent/key.pem"}, "key_file needs cert_file"),
    ({"cert_file": "/nonexistent/cert.pem"}, "cert_file"),
])
def test_bad_configuration_is_a_clear_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(exceptions.ConfigError, match=message):
        make_catalog(**options)
