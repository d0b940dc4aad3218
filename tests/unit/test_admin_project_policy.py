"""``role:admin`` is global by default; a policy file can keep admins to the cloud's admin
project with ``is_admin_project:True`` (Keystone's ``X-Is-Admin-Project``, read by
oslo.context as keystonemiddleware passes it on).
"""

from __future__ import annotations

from pathlib import Path

from oslo_config import cfg
from oslo_context import context

from ovh_credit_plugin.api import policy

VOID = "cloud_credit:credit:void"
TARGET = {"project_id": "customer-1"}


def _admin_of(project: str, *, admin_project: bool) -> context.RequestContext:
    # What the API builds from the request's headers (api/context.py).
    return context.RequestContext.from_environ({
        "HTTP_X_PROJECT_ID": project, "HTTP_X_USER_ID": "u", "HTTP_X_ROLES": "admin",
        "HTTP_X_IS_ADMIN_PROJECT": str(admin_project)})


def _enforcer(tmp_path: Path, rules: str | None) -> policy.Enforcer:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    policy.make_enforcer(conf)  # registers [oslo_policy]
    if rules is not None:
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(rules)
        conf.set_override("policy_file", str(policy_file), "oslo_policy")
    return policy.make_enforcer(conf)


def test_by_default_an_admin_of_any_project_may_void_any_projects_credit(
        tmp_path: Path) -> None:
    enforcer = _enforcer(tmp_path, None)
    assert policy.allowed(enforcer, VOID, TARGET, _admin_of("ops", admin_project=True))
    assert policy.allowed(enforcer, VOID, TARGET, _admin_of("reseller", admin_project=False))


def test_a_policy_file_keeps_admins_to_the_admin_project(tmp_path: Path) -> None:
    enforcer = _enforcer(tmp_path, f'"{VOID}": "role:admin and is_admin_project:True"\n')
    assert policy.allowed(enforcer, VOID, TARGET, _admin_of("ops", admin_project=True))
    assert not policy.allowed(enforcer, VOID, TARGET,
                              _admin_of("reseller", admin_project=False))


def test_the_documented_override_of_a_reader_rule_keeps_the_projects_own_readers(
        tmp_path: Path) -> None:
    # docs/api.md's example for cloud_credit:credit:list, as an operator copies it.
    enforcer = _enforcer(tmp_path, (
        '"cloud_credit:credit:list": "(role:reader and project_id:%(project_id)s) or '
        '(role:admin and is_admin_project:True)"\n'))
    reader = context.RequestContext.from_environ({
        "HTTP_X_PROJECT_ID": "customer-1", "HTTP_X_USER_ID": "u", "HTTP_X_ROLES": "reader",
        "HTTP_X_IS_ADMIN_PROJECT": "False"})
    rule = "cloud_credit:credit:list"
    assert policy.allowed(enforcer, rule, TARGET, reader)
    assert policy.allowed(enforcer, rule, TARGET, _admin_of("ops", admin_project=True))
    assert not policy.allowed(enforcer, rule, TARGET, _admin_of("reseller", admin_project=False))
