"""Only project-scoped tokens pass the API's rules, whatever oslo.policy's own settings.

docs/api.md: the rules have ``scope_types = ['project']`` and "system-scoped
tokens are refused"; "a caller acts on its token's project". pyproject allows
oslo.policy >= 4.0, whose ``[oslo_policy] enforce_scope`` defaulted to False
until 4.4 (and may still be set False by an operator up to its removal): the
scope check then only logs a warning, and a system- or domain-scoped admin
token passes ``role:admin`` on every project. Simulated here by making
oslo.policy's scope check lenient, as ``enforce_scope = False`` does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import webob
from oslo_config import cfg
from oslo_context import context
from oslo_policy import policy as oslo_policy

from ovh_credit_plugin.api import policy
from ovh_credit_plugin.api.app import make_app
from tests.functional.test_api_policy import seed
from tests.support.api import PROJECT, api_conf
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Policy does not depend on the database: SQLite only here."""
    return str(request.param)


@pytest.fixture(params=["enforced", "lenient"])
def scope_enforcement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """oslo.policy's scope check as installed, or as ``enforce_scope = False`` makes it."""
    if request.param == "lenient":
        def lenient(self: Any, creds: Any, rule: Any, **_: Any) -> bool:
            return True  # oslo.policy < 4.4 default: a warning, no refusal

        monkeypatch.setattr(oslo_policy.Enforcer, "_enforce_scope", lenient)
    return str(request.param)


def _enforcer() -> oslo_policy.Enforcer:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    return policy.make_enforcer(conf)


NOT_PROJECT_SCOPED = {
    "system admin": context.RequestContext(user_id="u", roles=["admin"], system_scope="all"),
    "domain admin": context.RequestContext(user_id="u", roles=["admin"], domain_id="default"),
    "unscoped admin": context.RequestContext(user_id="u", roles=["admin"]),
    "unscoped reader": context.RequestContext(user_id="u", roles=["reader", "member"]),
    "unscoped service": context.RequestContext(user_id="u", roles=["service"]),
}


@pytest.mark.parametrize("who", sorted(NOT_PROJECT_SCOPED))
def test_a_token_not_scoped_to_a_project_is_refused_every_rule(
        scope_enforcement: str, who: str) -> None:
    enforcer = _enforcer()
    caller = NOT_PROJECT_SCOPED[who]
    for rule in policy.list_rules():
        # "None": what %(project_id)s renders for a caller without a project.
        for project in ("p1", "None", None):
            assert not policy.allowed(enforcer, rule.name, {"project_id": project}, caller), (
                rule.name, project)


def test_project_scoped_tokens_keep_their_defaults(scope_enforcement: str) -> None:
    enforcer = _enforcer()
    admin = context.RequestContext(project_id="ops", user_id="u", roles=["admin"])
    reader = context.RequestContext(project_id="p1", user_id="u", roles=["reader"])
    service = context.RequestContext(project_id="svc", user_id="u", roles=["service"])
    assert policy.allowed(enforcer, "cloud_credit:credit:void", {"project_id": "p1"}, admin)
    assert policy.allowed(enforcer, "cloud_credit:credit:list", {"project_id": "p1"}, reader)
    assert not policy.allowed(enforcer, "cloud_credit:credit:list", {"project_id": "p2"}, reader)
    assert policy.allowed(enforcer, "cloud_credit:order:pay", {"project_id": "p1"}, service)


def _call(app: Any, method: str, path: str, headers: dict[str, str],
          body: Any = None) -> webob.Response:
    request = webob.Request.blank(path, method=method, headers=headers)
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    return request.get_response(app)


@pytest.mark.parametrize(("who", "headers"), [
    ("system admin", {"OpenStack-System-Scope": "all", "X-User-Id": "u", "X-Roles": "admin"}),
    ("domain admin", {"X-Domain-Id": "default", "X-User-Id": "u", "X-Roles": "admin"}),
    ("unscoped admin", {"X-User-Id": "u", "X-Roles": "admin"}),
])
def test_the_api_refuses_a_system_or_domain_scoped_admin(
        ledger: Ledger, scope_enforcement: str, who: str, headers: dict[str, str]) -> None:
    objects = seed(ledger)
    before = ledger.checksum()
    app = make_app(api_conf(ledger, auth="noauth"))
    try:
        listed = _call(app, "GET", f"/v1/credits?project_id={PROJECT}", headers)
        assert listed.status_code == 403, listed.text
        shown = _call(app, "GET", f"/v1/credits/{objects.credit_id}", headers)
        assert shown.status_code in (403, 404), shown.text
        voided = _call(app, "POST", f"/v1/credits/{objects.credit_id}/void", headers,
                       {"reason": "charge-back"})
        assert voided.status_code == 403, voided.text
        paid = _call(app, "POST", f"/v1/orders/{objects.pending_order}/payment", headers,
                     {"amount": "30.00", "currency": "EUR"})
        assert paid.status_code == 403, paid.text
    finally:
        app.close()
    assert ledger.checksum() == before
