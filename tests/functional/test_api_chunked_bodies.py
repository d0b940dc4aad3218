"""A chunked request body on ``ovh-credit-api``'s server: 411 Length Required.

The standard library's WSGI server does not decode ``Transfer-Encoding:
chunked``: the application gets the raw chunks with no length, which webob
reads as an empty body (it was a 400 "a JSON object is expected in the
body", sending the client looking for a fault in its JSON). A server that
decodes chunked bodies says so (``wsgi.input_terminated``: gunicorn,
mod_wsgi), and the body is then read as any other.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import webob

from ovh_credit_plugin.api.app import make_app
from tests.support.api import PERSONAS, api_conf, call, noauth_headers, standalone
from tests.support.ledgers import Ledger

MEMBER = noauth_headers(PERSONAS["member"])
BODY = b'{"amount": "20.00"}'


def chunks() -> Iterator[bytes]:
    # A generator body: python-requests sends it chunked, without Content-Length.
    yield BODY[:7]
    yield BODY[7:]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_chunked_body_is_411_on_the_standalone_server(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        answer = call("POST", f"{url}/v1/orders", data=chunks(),  # type: ignore[arg-type]
                      headers={**MEMBER, "Content-Type": "application/json"})
        assert answer.request.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in answer.request.headers
        assert answer.status_code == 411, answer.text
        (error,) = answer.json()["errors"]
        assert error["status"] == 411
        assert error["code"] == "cloud_credit.length_required"
        assert error["title"] == "Length required"
        assert error["detail"] == ("a request body needs a Content-Length header: chunked "
                                   "bodies are not read here")
        assert error["request_id"] == answer.headers["X-Openstack-Request-Id"]
        # Nothing was ordered; the same body with its length is.
        assert call("GET", f"{url}/v1/orders", headers=MEMBER).json()["orders"] == []
        answer = call("POST", f"{url}/v1/orders", data=BODY,
                      headers={**MEMBER, "Content-Type": "application/json"})
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_request_that_needs_no_body_is_served_whatever_its_framing(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        answer = call("GET", f"{url}/v1/orders", data=chunks(),  # type: ignore[arg-type]
                      headers=MEMBER)
        assert answer.request.headers["Transfer-Encoding"] == "chunked"
        assert answer.status_code == 200, answer.text
        # Who calls is checked before the body: no caller, 401 as without a body.
        answer = call("POST", f"{url}/v1/orders", data=chunks(),  # type: ignore[arg-type]
                      headers={"Content-Type": "application/json"})
        assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_chunked_body_the_server_decoded_is_read(ledger: Ledger) -> None:
    """gunicorn or mod_wsgi decode the chunks and set ``wsgi.input_terminated``."""
    app = make_app(api_conf(ledger, auth="noauth"))
    try:
        request = webob.Request.blank("/v1/orders", method="POST", headers={
            **MEMBER, "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        request.environ.pop("CONTENT_LENGTH", None)
        request.environ["wsgi.input"] = io.BytesIO(BODY)
        request.environ["wsgi.input_terminated"] = True
        response = request.get_response(app)
        assert response.status_code == 201, response.text
        assert json.loads(response.body)["amount"] == "20.00"
    finally:
        app.close()
