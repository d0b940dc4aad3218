"""``ovh-credit-api`` behind a TLS-terminating proxy: ``[oslo_middleware]
enable_proxy_headers_parsing`` (oslo.middleware's HTTPProxyToWSGI).

On: ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto``/``-Host``/``-Prefix`` make
the links (``Location``, ``next``, the version document's) the ones the client
used: https, the proxy's host, its path prefix. Off (the default): the headers
are ignored (a client cannot choose the links' scheme or host), and the
middleware is not in the pipeline at all. Inside CloudKitty the option is
CloudKitty's pipeline's business: make_app is not used there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_middleware import http_proxy_to_wsgi, request_id

from ovh_credit_plugin.api import app as api_app
from ovh_credit_plugin.api.app import make_app
from tests.support.api import PERSONAS, api_conf, call, noauth_headers, standalone
from tests.support.ledgers import Ledger

MEMBER = noauth_headers(PERSONAS["member"])
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc/ovh-credit-plugin/ovh-credit-plugin.conf.sample"


def enable_proxy_headers(ledger: Ledger, value: str = "true") -> None:
    ledger.config.write_text(ledger.config.read_text()
                             + f"[oslo_middleware]\nenable_proxy_headers_parsing = {value}\n")


def links(url: str, headers: dict[str, str]) -> tuple[str, str, str]:
    """The Location of a new order, the next link of the orders, the version document's."""
    for _ in range(2):  # two: a page of one has a next link
        created = call("POST", f"{url}/v1/orders", headers={**MEMBER, **headers},
                       json_body={"amount": "20.00"})
        assert created.status_code == 201, created.text
    page = call("GET", f"{url}/v1/orders?limit=1", headers={**MEMBER, **headers}).json()
    version = call("GET", f"{url}/", headers=headers).json()
    return (created.headers["Location"], page["links"][0]["href"],
            version["versions"][0]["links"][0]["href"])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_behind_a_tls_proxy_the_links_are_https(ledger: Ledger) -> None:
    enable_proxy_headers(ledger)
    with standalone(ledger) as url:
        plain = url.removeprefix("http://")
        # X-Forwarded-Proto alone: https, the host the request named.
        location, following, version = links(url, {"X-Forwarded-Proto": "https"})
        assert location.startswith(f"https://{plain}/v1/orders/")
        assert following.startswith(f"https://{plain}/v1/orders?limit=1&marker=")
        assert version == f"https://{plain}/v1/"
        # The proxy's host and path prefix.
        location, following, version = links(url, {
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "credit.example",
            "X-Forwarded-Prefix": "/cloud-credit"})
        assert location.startswith("https://credit.example/cloud-credit/v1/orders/")
        assert following.startswith("https://credit.example/cloud-credit/v1/orders?limit=1")
        assert version == "https://credit.example/cloud-credit/v1/"
        # RFC 7239 Forwarded (its first element: the proxy nearest the client).
        location, following, version = links(url, {
            "Forwarded": "for=192.0.2.60;proto=https;host=credit.example, for=10.0.0.1"})
        assert location.startswith("https://credit.example/v1/orders/")
        assert following.startswith("https://credit.example/v1/orders?limit=1")
        assert version == "https://credit.example/v1/"
        # No proxy header (a client inside): the links as it called.
        location, following, version = links(url, {})
        assert location.startswith(f"{url}/v1/orders/")
        assert following.startswith(f"{url}/v1/orders?limit=1")
        assert version == f"{url}/v1/"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_without_the_option_proxy_headers_are_ignored(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        location, following, version = links(url, {
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
            "Forwarded": "proto=https;host=evil.example"})
        assert location.startswith(f"{url}/v1/orders/")
        assert following.startswith(f"{url}/v1/orders?limit=1")
        assert version == f"{url}/v1/"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_middleware_is_in_the_pipeline_only_when_the_option_is_on(ledger: Ledger) -> None:
    app = make_app(api_conf(ledger, auth="noauth"))
    try:
        # Off: the pipeline starts with RequestId, as before the option existed.
        assert type(app.app) is request_id.RequestId
    finally:
        app.close()
    enable_proxy_headers(ledger)
    app = make_app(api_conf(ledger, auth="noauth"))
    try:
        assert isinstance(app.app, api_app.ProxyHeaders)
        assert type(app.app.parser) is http_proxy_to_wsgi.HTTPProxyToWSGI
        assert type(app.app.app) is request_id.RequestId
    finally:
        app.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_start_up_check_accepts_the_section_and_refuses_a_bad_value(
        ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    enable_proxy_headers(ledger)
    conf = api_app.load_conf(["--config-file", str(ledger.config)])
    api_app.check_conf(conf)  # not an unknown section, not a typo of ours
    assert conf.oslo_middleware.enable_proxy_headers_parsing is True

    ledger.config.write_text(ledger.config.read_text().replace(
        "enable_proxy_headers_parsing = true", "enable_proxy_headers_parsing = perhaps"))
    assert api_app.main(["--config-file", str(ledger.config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ovh-credit-api: ")
    assert "enable_proxy_headers_parsing" in err
    assert len(err.splitlines()) == 1, err


def test_the_sample_configuration_lists_the_option() -> None:
    sample = SAMPLE.read_text()
    section = sample.split("[oslo_middleware]", 1)[1]
    assert "#enable_proxy_headers_parsing = false" in section
