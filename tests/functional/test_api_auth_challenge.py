"""Every 401 names how to authenticate (``WWW-Authenticate``, RFC 9110 11.6.1).

With ``auth_strategy = keystone`` keystonemiddleware writes the challenge
(``Keystone uri="..."``, its ``www_authenticate_uri``), kept when the answer
is rewritten as an API-SIG document. With ``noauth`` no middleware is in
front: the controllers' own 401 (no X-Project-Id, X-User-Id or X-Roles)
carries ``Noauth realm="cloud_credit"``.
"""

from __future__ import annotations

import pytest

from tests.support.api import (
    PERSONAS,
    auth_token_fixture,
    call,
    noauth_headers,
    standalone,
)
from tests.support.ledgers import Ledger

KEYSTONE_CHALLENGE = 'Keystone uri="http://127.0.0.1:9/identity/v3"'
PATHS = (("GET", "credits"), ("GET", "orders"), ("GET", "credits/1"),
         ("POST", "orders"), ("GET", "ovh/cloud/project/p1/credit"))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_noauth_401_carries_a_challenge(ledger: Ledger) -> None:
    with standalone(ledger, auth="noauth") as url:
        for method, path in PATHS:
            answer = call(method, f"{url}/v1/{path}",
                          json_body={"amount": "20.00"} if method == "POST" else None)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.headers["WWW-Authenticate"] == 'Noauth realm="cloud_credit"'
            (error,) = answer.json()["errors"]
            assert error["code"] == "cloud_credit.unauthorized"
            assert error["detail"] == "no credentials came with the request"
        # A caller that names itself is not challenged.
        answer = call("GET", f"{url}/v1/credits", headers=noauth_headers(PERSONAS["member"]))
        assert answer.status_code == 200
        assert "WWW-Authenticate" not in answer.headers


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_keystone_401_carries_keystonemiddleware_s_challenge_only(ledger: Ledger) -> None:
    with auth_token_fixture() as tokens, standalone(ledger, auth="keystone") as url:
        for headers in ({}, {"X-Auth-Token": "no-such-token"},
                        {"X-Auth-Token": tokens.expired},
                        # Identity headers are not credentials under keystone.
                        noauth_headers(PERSONAS["admin"])):
            answer = call("GET", f"{url}/v1/credits", headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == KEYSTONE_CHALLENGE
            assert answer.json()["errors"][0]["code"] == "cloud_credit.unauthorized"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_request_keystonemiddleware_let_through_undecided_gets_its_challenge(
        ledger: Ledger) -> None:
    """``delay_auth_decision = true``: keystonemiddleware passes an invalid token on
    (``X-Identity-Status: Invalid``) and adds its challenge to the 401 that follows;
    the controllers add none of theirs."""
    ledger.config.write_text(ledger.config.read_text()
                             + "[keystone_authtoken]\ndelay_auth_decision = true\n")
    with auth_token_fixture(), standalone(ledger, auth="keystone") as url:
        answer = call("GET", f"{url}/v1/credits", headers={"X-Auth-Token": "no-such-token"})
        assert answer.status_code == 401, answer.text
        # One challenge (requests would join two with a comma).
        assert answer.headers["WWW-Authenticate"] == KEYSTONE_CHALLENGE
        assert answer.json()["errors"][0]["detail"] == "no credentials came with the request"
