"""docs/api.md's ``is_admin_project`` policy override, against real Keystones.

A second Keystone (a copy of the same template) names its admin project,
``[resource] admin_project_name = admin`` and ``admin_project_domain_name =
Default``: its tokens say whether they are for that project, and
keystonemiddleware passes that on as ``X-Is-Admin-Project``. The first one
(the session's ``keystone``, no admin project) puts nothing in its tokens,
which keystonemiddleware passes on as ``True``.

``ovh-credit-api`` (and CloudKitty's API, whose ``policy.yaml`` sits next to
its configuration, as in /etc/cloudkitty) is given docs/api.md's policy
snippet, as an operator copies it. A customer who holds ``admin`` on its own
project (``alpha``) may then neither confirm its own order's payment (free
credit) nor void a credit; the cloud's admin, on the ``admin`` project, may.
Without the snippet ``role:admin`` is global (the defaults), and with it but
no admin project configured nothing changes: what docs/api.md says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support import api_stack
from tests.support.keystone import (
    DOMAIN,
    PASSWORD,
    Keystone,
    skip_reason,
    start_keystone,
    v3_admin,
)
from tests.support.process import ROOT, ServerProcess
from tests.support.wsgi_thread import serving

_reason = api_stack.api_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

ADMIN_PROJECT_CONF = """
[resource]
admin_project_name = admin
admin_project_domain_name = Default
"""
CK_BASE = "/v1/rating/module_config/cloud_credit"
CUSTOMER_ADMIN = "alpha-admin"


def documented_policy() -> str:
    """The ``is_admin_project`` policy snippet of docs/api.md, as written there."""
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
              if "is_admin_project:True" in b]
    assert len(blocks) == 1, blocks
    return str(blocks[0])


def sample_rules() -> dict[str, str]:
    """The rules of etc/ovh-credit-plugin/policy.yaml.sample, with their defaults."""
    text = (ROOT / "etc" / "ovh-credit-plugin" / "policy.yaml.sample").read_text()
    lines = [line[1:] for line in text.splitlines() if line.startswith('#"')]
    return dict(yaml.safe_load("\n".join(lines)))


def test_the_documented_snippet_is_a_policy_file_of_existing_rules() -> None:
    from oslo_policy import _checks, _parser

    rules = yaml.safe_load(documented_policy())
    assert isinstance(rules, dict) and rules
    defaults = sample_rules()
    assert set(rules) <= set(defaults), set(rules) - set(defaults)
    for name, check in rules.items():
        # oslo.policy turns a check string it cannot parse into "never".
        assert not isinstance(_parser.parse_rule(check), _checks.FalseCheck), (name, check)
        # Only narrowed: each keeps its default's other alternatives.
        assert "is_admin_project:True" in check
        assert check.replace(" and is_admin_project:True", "").replace(
            "(role:admin)", "role:admin") == defaults[name], name


# -- the Keystones and who is calling --------------------------------------------------


@pytest.fixture(scope="module")
def admin_project_keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    keystone = start_keystone(tmp_path_factory.mktemp("keystone-admin-project"),
                              extra_conf=ADMIN_PROJECT_CONF)
    try:
        yield keystone
    finally:
        keystone.stop()


def _admin_session(keystone: Keystone) -> Any:
    from keystoneauth1 import session

    return session.Session(auth=v3_admin(keystone))


@dataclass
class Callers:
    """The personas of a Keystone, and a customer who holds ``admin`` on ``alpha``."""

    keystone: Keystone
    customer_admin: str  # its user id

    def token(self, who: str) -> str:
        if who != CUSTOMER_ADMIN:
            return self.keystone.token(who)
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        return str(session.Session(auth=v3.Password(
            auth_url=self.keystone.auth_url, user_id=self.customer_admin,
            password=PASSWORD, project_id=self.keystone.personas["member"].project_id,
        )).get_token())


@contextmanager
def customer_admin_on_alpha(keystone: Keystone) -> Iterator[Callers]:
    """A user with the admin role on project ``alpha`` only; deleted afterwards."""
    admin = _admin_session(keystone)
    v3url = keystone.auth_url
    role = admin.get(f"{v3url}/roles", params={"name": "admin"}).json()["roles"][0]["id"]
    user = admin.post(f"{v3url}/users", json={"user": {
        "name": CUSTOMER_ADMIN, "domain_id": DOMAIN, "password": PASSWORD}}).json()["user"]
    try:
        alpha = keystone.personas["member"].project_id
        admin.put(f"{v3url}/projects/{alpha}/users/{user['id']}/roles/{role}")
        yield Callers(keystone, user["id"])
    finally:
        admin.delete(f"{v3url}/users/{user['id']}")


@pytest.fixture(scope="module")
def with_admin_project(admin_project_keystone: Keystone) -> Iterator[Callers]:
    with customer_admin_on_alpha(admin_project_keystone) as callers:
        yield callers


@pytest.fixture(scope="module")
def without_admin_project(keystone: Keystone) -> Iterator[Callers]:
    """The session's Keystone (no ``[resource] admin_project_name``)."""
    with customer_admin_on_alpha(keystone) as callers:
        yield callers


def whoami(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ.get("HTTP_X_IS_ADMIN_PROJECT")).encode()]


def is_admin_project_header(callers: Callers, who: str) -> str:
    """``X-Is-Admin-Project`` as keystonemiddleware passes it on for the caller's token."""
    app = callers.keystone.protect(whoami)
    with serving(app) as url:
        response = requests.get(url, headers={"X-Auth-Token": callers.token(who)},
                                timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_with_an_admin_project_only_its_tokens_are_for_the_admin_project(
        with_admin_project: Callers) -> None:
    seen = {who: is_admin_project_header(with_admin_project, who)
            for who in ("admin", CUSTOMER_ADMIN, "member", "service")}
    assert seen == {"admin": "True", CUSTOMER_ADMIN: "False", "member": "False",
                    "service": "False"}


def test_without_an_admin_project_every_token_is_for_the_admin_project(
        without_admin_project: Callers) -> None:
    # Keystone leaves is_admin_project out of its tokens; keystonemiddleware
    # (keystoneauth's AccessInfoV3) reads its absence as True.
    seen = {who: is_admin_project_header(without_admin_project, who)
            for who in ("admin", CUSTOMER_ADMIN, "member")}
    assert seen == {"admin": "True", CUSTOMER_ADMIN: "True", "member": "True"}


# -- the API servers -----------------------------------------------------------------


@dataclass
class Server:
    process: ServerProcess
    base: str  # the API's root path on it

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None,
             **params: str) -> requests.Response:
        return requests.request(method, f"{self.process.url}{self.base}{path}",
                                headers={"X-Auth-Token": token}, json=body,
                                params=params or None, timeout=60)


def start_standalone(directory: Path, keystone: Keystone, policy: str | None) -> Server:
    options = ""
    if policy is not None:
        directory.mkdir(parents=True)
        (directory / "policy.yaml").write_text(policy)
        options = f"[oslo_policy]\npolicy_file = {directory / 'policy.yaml'}\n"
    process = api_stack.start_standalone(directory / "ledger", auth_strategy="keystone",
                                         authtoken=keystone.authtoken_conf(),
                                         options=options)
    return Server(process, "/v1")


def start_cloudkitty(directory: Path, keystone: Keystone, policy: str, *,
                     ledger: Path) -> Server:
    """CloudKitty's API on ``ledger`` (a standalone server's, migrated)."""
    # /etc/cloudkitty/policy.yaml: [oslo_policy] policy_file's default, found
    # next to the configuration file.
    directory.mkdir(parents=True)
    (directory / "policy.yaml").write_text(policy)
    process = api_stack.start_cloudkitty_api(directory, ledger_directory=ledger,
                                             authtoken=keystone.authtoken_conf())
    return Server(process, CK_BASE)


@pytest.fixture(scope="module")
def servers(with_admin_project: Callers, without_admin_project: Callers,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """By name: ``{override|defaults}-{standalone|cloudkitty}`` on the admin-project
    Keystone, ``no-admin-project`` (the override, standalone) on the session's."""
    root = tmp_path_factory.mktemp("admin-project-api")
    policy = documented_policy()
    started: dict[str, Server] = {}
    try:
        started["override-standalone"] = start_standalone(
            root / "override", with_admin_project.keystone, policy)
        started["override-cloudkitty"] = start_cloudkitty(
            root / "override-ck", with_admin_project.keystone, policy,
            ledger=root / "override" / "ledger")
        started["defaults-standalone"] = start_standalone(
            root / "defaults", with_admin_project.keystone, None)
        started["no-admin-project"] = start_standalone(
            root / "no-admin-project", without_admin_project.keystone, policy)
        yield started
    finally:
        for server in started.values():
            server.process.stop()


def an_order(server: Server, callers: Callers) -> str:
    """A pending order of ``alpha``, made by its member."""
    response = server.call("POST", "/orders", callers.token("member"), {"amount": "40.00"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def pay(server: Server, token: str, order: str) -> requests.Response:
    return server.call("POST", f"/orders/{order}/payment", token,
                       {"amount": "40.00", "currency": "EUR"})


def a_credit(server: Server, callers: Callers) -> str:
    """A credit of ``alpha``: its member's order, paid by the payment system."""
    response = pay(server, callers.token("service"), an_order(server, callers))
    assert response.status_code == 200, response.text
    return str(response.json()["credit_id"])


def void(server: Server, token: str, credit: str) -> requests.Response:
    return server.call("POST", f"/credits/{credit}/void", token, {"reason": "charge-back"})


def pay_and_void(server: Server, callers: Callers, token: str) -> tuple[str, requests.Response]:
    """``token`` pays a new order of ``alpha`` and voids its credit, both allowed (200);
    the credit's id and the void's answer."""
    response = pay(server, token, an_order(server, callers))
    assert response.status_code == 200, response.text
    credit = str(response.json()["credit_id"])
    response = void(server, token, credit)
    assert response.status_code == 200, response.text
    return credit, response


@pytest.mark.parametrize("name", ["override-standalone", "override-cloudkitty"])
def test_with_the_override_the_admin_projects_admin_may(
        servers: dict[str, Server], with_admin_project: Callers, name: str) -> None:
    server, callers = servers[name], with_admin_project
    admin = callers.token("admin")
    credit, voided = pay_and_void(server, callers, admin)
    assert voided.json()["status"] == "voided"
    alpha = callers.keystone.personas["member"].project_id
    listed = server.call("GET", "/credits", admin, project_id=alpha)
    assert listed.status_code == 200, listed.text
    assert credit in [str(c["id"]) for c in listed.json()["credits"]]


@pytest.mark.parametrize("name", ["override-standalone", "override-cloudkitty"])
def test_with_the_override_a_customer_projects_admin_may_not(
        servers: dict[str, Server], with_admin_project: Callers, name: str) -> None:
    server, callers = servers[name], with_admin_project
    customer_admin = callers.token(CUSTOMER_ADMIN)
    # Its own project's order: confirming the payment would be free credit.
    order = an_order(server, callers)
    response = pay(server, customer_admin, order)
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["code"] == "cloud_credit.forbidden"
    response = server.call("GET", f"/orders/{order}", customer_admin)
    assert response.status_code == 200 and response.json()["status"] == "pending"
    credit = a_credit(server, callers)
    response = void(server, customer_admin, credit)
    assert response.status_code == 403, response.text
    # As a reader of alpha it still reads alpha (the credit:list override
    # keeps the project's readers), but not another project's credits.
    assert server.call("GET", "/credits", customer_admin).status_code == 200
    beta = callers.keystone.personas["other"].project_id
    assert server.call("GET", "/credits", customer_admin,
                       project_id=beta).status_code == 403
    # The payment system keeps its service role.
    assert pay(server, callers.token("service"), order).status_code == 200


def test_by_default_a_customer_projects_admin_may(
        servers: dict[str, Server], with_admin_project: Callers) -> None:
    # role:admin is global: an admin of any project is an admin of every one.
    server, callers = servers["defaults-standalone"], with_admin_project
    customer_admin = callers.token(CUSTOMER_ADMIN)
    pay_and_void(server, callers, customer_admin)
    beta = callers.keystone.personas["other"].project_id
    assert server.call("GET", "/credits", customer_admin,
                       project_id=beta).status_code == 200


def test_without_an_admin_project_the_override_changes_nothing(
        servers: dict[str, Server], without_admin_project: Callers) -> None:
    server, callers = servers["no-admin-project"], without_admin_project
    customer_admin = callers.token(CUSTOMER_ADMIN)
    pay_and_void(server, callers, customer_admin)
