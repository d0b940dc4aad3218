"""End to end against a real Keystone: real tokens, keystonemiddleware, both API servers.

Keystone (tests/support/keystone.py) issues the tokens of real users with
real role assignments. ``ovh-credit-api`` (``auth_strategy = keystone``) and
CloudKitty 25's API (its keystone pipeline, the cloud_credit module at
``/v1/rating/module_config/cloud_credit``) validate them through
keystonemiddleware, against that Keystone, and share one ledger: what the
customer does on one is seen on the other. Last, the real ``openstack``
program, authenticated by Keystone, finds CloudKitty through the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import api_stack
from tests.support.keystone import PASSWORD, Keystone, register_service
from tests.support.process import ServerProcess

_reason = api_stack.api_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

CK_BASE = "/v1/rating/module_config/cloud_credit"


@dataclass
class Stack:
    keystone: Keystone
    standalone: ServerProcess
    cloudkitty: ServerProcess

    def url(self, server: str, path: str) -> str:
        if server == "standalone":
            return f"{self.standalone.url}/v1{path}"
        return f"{self.cloudkitty.url}{CK_BASE}{path}"


@pytest.fixture(scope="module")
def stack(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("e2e")
    ledger = root / "ledger"
    authtoken = keystone.authtoken_conf()
    standalone = api_stack.start_standalone(ledger, auth_strategy="keystone",
                                            authtoken=authtoken)
    try:
        cloudkitty = api_stack.start_cloudkitty_api(root / "cloudkitty",
                                                    ledger_directory=ledger,
                                                    authtoken=authtoken)
    except BaseException:
        standalone.stop()
        raise
    try:
        yield Stack(keystone, standalone, cloudkitty)
    finally:
        cloudkitty.stop()
        standalone.stop()


@pytest.fixture(scope="module")
def tokens(keystone: Keystone) -> dict[str, str]:
    return {name: keystone.token(name) for name in ("reader", "member", "other", "service",
                                                    "admin")}


def call(stack: Stack, server: str, method: str, path: str, token: str | None,
         body: dict[str, Any] | None = None, **params: str) -> requests.Response:
    headers = {"X-Auth-Token": token} if token else {}
    return requests.request(method, stack.url(server, path), headers=headers, json=body,
                            params=params or None, timeout=60)


SERVERS = ("standalone", "cloudkitty")


@pytest.mark.parametrize("server", SERVERS)
def test_no_token_is_401(stack: Stack, server: str) -> None:
    for method, path in (("GET", "/credits"), ("POST", "/orders")):
        response = call(stack, server, method, path, None,
                        {"amount": "10"} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)


@pytest.mark.parametrize("server", SERVERS)
def test_customer_flow_through_keystone(stack: Stack, tokens: dict[str, str],
                                        server: str) -> None:
    alpha = stack.keystone.personas["member"].project_id

    # The reader reads but cannot buy.
    response = call(stack, server, "GET", "/credits", tokens["reader"])
    assert response.status_code == 200, response.text
    assert response.status_code == 200 and "credits" in response.json()
    assert call(stack, server, "POST", "/orders", tokens["reader"],
                {"amount": "10.00"}).status_code == 403

    # The member orders, on the token's project.
    response = call(stack, server, "POST", "/orders", tokens["member"], {"amount": "40.00"})
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["project_id"], order["status"], order["amount"]) == (alpha, "pending",
                                                                       "40.00")

    # The payment system (service role) confirms it; the member may not.
    payment = {"amount": "40.00", "currency": "EUR"}
    assert call(stack, server, "POST", f"/orders/{order['id']}/payment", tokens["member"],
                payment).status_code == 403
    response = call(stack, server, "POST", f"/orders/{order['id']}/payment",
                    tokens["service"], payment)
    assert response.status_code == 200, response.text
    credit_id = response.json()["credit_id"]
    assert credit_id is not None

    # The reader sees the credit, on either server (one ledger).
    for where in SERVERS:
        response = call(stack, where, "GET", f"/credits/{credit_id}", tokens["reader"])
        assert response.status_code == 200, response.text
        assert response.json()["available"] == "40.00"

    # Another project's member: 404, never 403 (which would confirm it exists).
    response = call(stack, server, "GET", f"/credits/{credit_id}", tokens["other"])
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "cloud_credit.not_found"
    listed = call(stack, server, "GET", "/credits", tokens["other"]).json()["credits"]
    assert credit_id not in [c["id"] for c in listed]

    # The admin reaches alpha with ?project_id=.
    response = call(stack, server, "GET", "/credits", tokens["admin"], project_id=alpha)
    assert response.status_code == 200
    assert credit_id in [c["id"] for c in response.json()["credits"]]


def test_a_revoked_token_is_refused_by_both(stack: Stack) -> None:
    token = stack.keystone.token("member")
    stack.keystone.revoke(token)
    for server in SERVERS:
        assert call(stack, server, "GET", "/credits", token).status_code == 401


def test_openstack_cli_finds_cloudkitty_in_the_catalog(stack: Stack, tmp_path: Path) -> None:
    reason = api_stack.client_skip_reason()
    if reason:
        pytest.skip(reason)
    register_service(stack.keystone, "rating", stack.cloudkitty.url)
    reader = stack.keystone.personas["reader"]
    env = api_stack.osc_env()
    env.update({
        "OS_AUTH_URL": stack.keystone.auth_url, "OS_AUTH_TYPE": "password",
        "OS_USER_ID": reader.user_id, "OS_PASSWORD": PASSWORD,
        "OS_PROJECT_ID": reader.project_id, "OS_IDENTITY_API_VERSION": "3",
        "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public",
    })
    member = stack.keystone.personas["member"]
    result = api_stack.openstack("rating", "credit", "list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    credits = json.loads(result.stdout)
    assert all(c["status"] in ("active", "exhausted", "expired", "voided") for c in credits)

    env.update({"OS_USER_ID": member.user_id})
    result = api_stack.openstack("rating", "credit", "voucher", "activate", "WELCOME-2026",
                                 "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["project_id"] == member.project_id

    env.update({"OS_USER_ID": stack.keystone.personas["other"].user_id,
                "OS_PROJECT_ID": stack.keystone.personas["other"].project_id})
    result = api_stack.openstack("rating", "credit", "order", "create", "10", env=env)
    assert result.returncode == 0, result.stderr

    # A wrong password: keystoneauth's own error, one line, before any API call.
    env["OS_PASSWORD"] = "wrong"
    result = api_stack.openstack("rating", "credit", "list", env=env)
    assert result.returncode == 1 and "401" in result.stderr
