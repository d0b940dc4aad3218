"""Real Keystone tokens not scoped to a project, on both API servers: refused.

Keystone's bootstrap admin holds ``admin`` on the system, and here on the
domain too: its system- and domain-scoped tokens carry ``admin`` but no
project. docs/api.md: the rules are for project-scoped tokens only, whatever
``[oslo_policy] enforce_scope`` says; so no list of a project's credits, no
payment confirmed with them. The same admin's project-scoped token may.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.integration.test_keystone_e2e import Stack, stack
from tests.support import api_stack
from tests.support.keystone import DOMAIN, PASSWORD, Keystone, v3_admin

__all__ = ["stack"]  # the fixture, shared with test_keystone_e2e.py

_reason = api_stack.api_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

def _admin_token(keystone: Keystone, **scope: Any) -> str:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=keystone.auth_url, username="admin", password=PASSWORD,
                       user_domain_id=DOMAIN, **scope)
    return str(session.Session(auth=auth).get_token())


@pytest.fixture(scope="module")
def tokens(keystone: Keystone) -> dict[str, str]:
    from keystoneauth1 import session

    admin = session.Session(auth=v3_admin(keystone))
    v3url = keystone.auth_url
    user = admin.get(f"{v3url}/users", params={"name": "admin"}).json()["users"][0]["id"]
    role = admin.get(f"{v3url}/roles", params={"name": "admin"}).json()["roles"][0]["id"]
    admin.put(f"{v3url}/domains/{DOMAIN}/users/{user}/roles/{role}")
    return {
        "system": _admin_token(keystone, system_scope="all"),
        "domain": _admin_token(keystone, domain_id=DOMAIN),
        "project": _admin_token(keystone, project_name="admin", project_domain_id=DOMAIN),
    }


@pytest.mark.parametrize("server", ["standalone", "cloudkitty"])
@pytest.mark.parametrize("scope", ["system", "domain"])
def test_an_admin_token_without_a_project_is_refused(
        keystone: Keystone, stack: Stack, tokens: dict[str, str],
        server: str, scope: str) -> None:
    project = keystone.personas["member"].project_id
    headers = {"X-Auth-Token": tokens[scope]}
    listed = requests.get(stack.url(server, "/credits"), params={"project_id": project},
                          headers=headers, timeout=60)
    assert listed.status_code == 403, listed.text
    paid = requests.post(stack.url(server, "/orders/no-such-order/payment"),
                         json={"amount": "1.00", "currency": "EUR"}, headers=headers,
                         timeout=60)
    assert paid.status_code == 403, paid.text


@pytest.mark.parametrize("server", ["standalone", "cloudkitty"])
def test_the_same_admin_scoped_to_a_project_may(
        keystone: Keystone, stack: Stack, tokens: dict[str, str],
        server: str) -> None:
    project = keystone.personas["member"].project_id
    listed = requests.get(stack.url(server, "/credits"), params={"project_id": project},
                          headers={"X-Auth-Token": tokens["project"]}, timeout=60)
    assert listed.status_code == 200, listed.text
