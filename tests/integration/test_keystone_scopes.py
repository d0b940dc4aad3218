"""Real Keystone tokens not scoped to a project, on both API servers: refused.

Keystone's bootstrap admin holds ``admin`` on the system, and here on the
domain too: its system- and domain-scoped tokens carry ``admin`` but no
project. docs/api.md: the rules are for project-scoped tokens only, whatever
``[oslo_policy] enforce_scope`` says; so no list of a project's credits, no
payment confirmed with them. The same admin's project-scoped token may.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support import api_stack
from tests.support.keystone import DOMAIN, PASSWORD, Keystone, v3_admin

_reason = api_stack.api_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

CK_BASE = "/v1/rating/module_config/cloud_credit"


@pytest.fixture(scope="module")
def servers(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("scopes")
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
        yield {"standalone": f"{standalone.url}/v1", "cloudkitty": f"{cloudkitty.url}{CK_BASE}"}
    finally:
        cloudkitty.stop()
        standalone.stop()


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
        keystone: Keystone, servers: dict[str, str], tokens: dict[str, str],
        server: str, scope: str) -> None:
    project = keystone.personas["member"].project_id
    headers = {"X-Auth-Token": tokens[scope]}
    listed = requests.get(f"{servers[server]}/credits", params={"project_id": project},
                          headers=headers, timeout=60)
    assert listed.status_code == 403, listed.text
    paid = requests.post(f"{servers[server]}/orders/no-such-order/payment",
                         json={"amount": "1.00", "currency": "EUR"}, headers=headers,
                         timeout=60)
    assert paid.status_code == 403, paid.text


@pytest.mark.parametrize("server", ["standalone", "cloudkitty"])
def test_the_same_admin_scoped_to_a_project_may(
        keystone: Keystone, servers: dict[str, str], tokens: dict[str, str],
        server: str) -> None:
    project = keystone.personas["member"].project_id
    listed = requests.get(f"{servers[server]}/credits", params={"project_id": project},
                          headers={"X-Auth-Token": tokens["project"]}, timeout=60)
    assert listed.status_code == 200, listed.text
