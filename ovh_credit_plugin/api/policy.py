"""oslo.policy rules of the REST API, and the enforcer built on the host's ConfigOpts.

Defaults follow the secure-RBAC personas: a project reader reads, a project
member acts, an admin does anything, the ``service`` role confirms payments.
``oslopolicy-sample-generator --namespace cloud_credit`` prints them (entry
point ``oslo.policy.policies``; oslo.policy's other tools find the enforcer
through ``oslo.policy.enforcer``); a policy file (``[oslo_policy] policy_file``
of the host's configuration: CloudKitty's, or ovh-credit-api's) overrides
them. Authorization is only ever decided here, never by looking at roles.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import _checks, policy

from ovh_credit_plugin.api import argspecs

LOG = logging.getLogger(__name__)

ADMIN = "role:admin"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
SERVICE = "role:service"

PROJECT_READER_OR_ADMIN = f"({PROJECT_READER}) or {ADMIN}"
PROJECT_MEMBER_OR_ADMIN = f"({PROJECT_MEMBER}) or {ADMIN}"
SERVICE_OR_ADMIN = f"{SERVICE} or {ADMIN}"

_SCOPE = ["project"]


def _rule(name: str, check: str, description: str, method: str, path: str,
          *more_paths: str) -> policy.DocumentedRuleDefault:
    return policy.DocumentedRuleDefault(
        name=f"cloud_credit:{name}", check_str=check, description=description,
        operations=[{"method": method, "path": each} for each in (path, *more_paths)],
        scope_types=_SCOPE,
    )


_BASE = "{base}"

RULES: list[policy.DocumentedRuleDefault] = [
    _rule("credit:list", PROJECT_READER_OR_ADMIN,
          "List a project's credits, in consumption order (also as OVH's list of ids).",
          "GET", f"{_BASE}/credits", f"{_BASE}/ovh/cloud/project/{{project_id}}/credit"),
    _rule("credit:get", PROJECT_READER_OR_ADMIN,
          "Show a credit with its ledger entries (or in OVH's cloud.Credit shape).",
          "GET", f"{_BASE}/credits/{{credit_id}}",
          f"{_BASE}/ovh/cloud/project/{{project_id}}/credit/{{credit_id}}"),
    _rule("credit:void", ADMIN,
          "Void a credit's balance (fraud, charge-back), with a reason.",
          "POST", f"{_BASE}/credits/{{credit_id}}/void"),
    _rule("forecast:get", PROJECT_READER_OR_ADMIN,
          "Forecast when a project's credit runs out at its burn rate, and how much "
          "of it will expire unused.", "GET", f"{_BASE}/forecast"),
    _rule("voucher:activate", PROJECT_MEMBER_OR_ADMIN,
          "Activate a voucher code on a project.", "POST", f"{_BASE}/vouchers"),
    _rule("voucher:check", PROJECT_MEMBER_OR_ADMIN,
          "Preview what a voucher code would grant, without redeeming it.",
          "GET", f"{_BASE}/vouchers/{{code}}"),
    _rule("order:create", PROJECT_MEMBER_OR_ADMIN,
          "Create a purchase order (buy credit).", "POST", f"{_BASE}/orders"),
    _rule("order:list", PROJECT_READER_OR_ADMIN,
          "List a project's purchase orders.", "GET", f"{_BASE}/orders"),
    _rule("order:get", PROJECT_READER_OR_ADMIN,
          "Show a purchase order.", "GET", f"{_BASE}/orders/{{order_id}}"),
    _rule("order:cancel", PROJECT_MEMBER_OR_ADMIN,
          "Cancel a pending purchase order.", "POST", f"{_BASE}/orders/{{order_id}}/cancel"),
    _rule("order:pay", SERVICE_OR_ADMIN,
          "Confirm an order's payment (the payment system): creates its credit once.",
          "POST", f"{_BASE}/orders/{{order_id}}/payment"),
    _rule("settlement:get", PROJECT_READER_OR_ADMIN,
          "Show a recorded settlement of the project: which credit paid how much of each "
          "line, and why.", "GET", f"{_BASE}/settlements"),
]


def list_rules() -> list[policy.DocumentedRuleDefault]:
    """Entry point ``oslo.policy.policies`` = ``cloud_credit``."""
    return list(RULES)


class _ArgspecCache:
    """What oslo.policy's rule evaluation sees as ``inspect``: ``getfullargspec``
    remembered per function (:func:`argspecs.per_function`), the rest the real module's.

    oslo.policy evaluates every check of a rule through ``_checks._check``,
    which asks ``inspect.getfullargspec(rule.__call__)`` each time to choose
    between the current and the legacy ``__call__`` signature: four times a
    ``GET credits``, ~15% of the request (docs/performance.md, figure 8). It
    only reads the answer's number of arguments.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.getfullargspec = argspecs.per_function(real.getfullargspec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


if getattr(_checks, "inspect", None) is inspect:
    _checks.inspect = _ArgspecCache(inspect)  # type: ignore[attr-defined,assignment]


#: How often the enforcer looks for a new or changed policy file, in seconds.
RECHECK_SECONDS = 1.0
#: The enforcer's clock (a test moves it).
_now = time.monotonic


class Enforcer(policy.Enforcer):
    """oslo.policy's enforcer, looking at the policy files at most once per RECHECK_SECONDS.

    oslo.policy looks for them before every check (the policy file searched
    for in every configuration directory when there is none, then the
    ``policy.d`` directories listed): about two thirds of an ``authorize``,
    ~7% of a ``GET credits``. A file added or changed still takes effect,
    within a second.
    """

    _checked_at: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # oslo.policy rebuilds the rules in place (the file's, then the registered
        # defaults one by one): a check made meanwhile by another thread found no
        # rule for its action, fell to the "default" rule and refused an allowed
        # caller (403). Reloads and checks take turns (a check costs microseconds).
        self._turns = threading.RLock()
        super().__init__(*args, **kwargs)

    def load_rules(self, force_reload: bool = False) -> None:
        with self._turns:
            now = _now()
            if (not force_reload and self._checked_at is not None
                    and now - self._checked_at < RECHECK_SECONDS):
                return
            super().load_rules(force_reload)
            self._checked_at = now

    def enforce(self, *args: Any, **kwargs: Any) -> Any:
        with self._turns:  # authorize() is enforce() with the rule registered
            return super().enforce(*args, **kwargs)

    def _load_policy_file(self, path: str, force_reload: bool, overwrite: bool = True
                          ) -> bool:
        # oslo.policy's own (the policy file, then each file of policy_dirs):
        # the only place that knows which file failed, and its error does not
        # say (a YAML error names "<unicode string>"). The request then fails
        # (500): a policy that cannot be read lets no one through.
        try:
            return bool(super()._load_policy_file(path, force_reload, overwrite))
        except (OSError, ValueError, TypeError, AttributeError) as error:
            LOG.error("[api] policy file %s cannot be loaded: %s", path, error)
            raise

    def clear(self) -> None:
        super().clear()
        self._checked_at = None


def make_enforcer(conf: cfg.ConfigOpts) -> policy.Enforcer:
    """An enforcer on the host's options: ``[oslo_policy]`` there names the policy file.

    A policy file added or changed takes effect within RECHECK_SECONDS.
    """
    enforcer = Enforcer(conf)
    enforcer.register_defaults(RULES)
    return enforcer


def get_enforcer() -> policy.Enforcer:
    """Entry point ``oslo.policy.enforcer`` = ``cloud_credit``, for oslo.policy's tools.

    ``oslopolicy-policy-generator``, ``-list-redundant`` and ``-validator``
    have parsed their ``--config-file`` (the host's) into ``cfg.CONF`` before
    asking: its ``[oslo_policy]`` names the policy file they read.
    """
    return make_enforcer(cfg.CONF)


def _credential(credentials: Any, *names: str) -> Any:
    if isinstance(credentials, Mapping):
        return next((credentials[name] for name in names if credentials.get(name)), None)
    return next((value for name in names if (value := getattr(credentials, name, None))),
                None)


def project_scoped(credentials: Any) -> bool:
    """Whether ``credentials`` are a project-scoped token's: a project, no system or domain scope.

    The rules' ``scope_types`` are ``["project"]``, but oslo.policy only
    refuses another scope when ``[oslo_policy] enforce_scope`` is on (off by
    default before oslo.policy 4.4, and an operator may turn it off): a
    system- or domain-scoped admin token would then pass ``role:admin`` on
    every project. A caller without a project would match
    ``project_id:%(project_id)s`` on the project "None". Refused here, whatever
    the option says.
    """
    return (_credential(credentials, "project_id") is not None
            and _credential(credentials, "system_scope", "system") is None
            and _credential(credentials, "domain_id") is None)


def allowed(enforcer: policy.Enforcer, rule: str, target: dict[str, Any], credentials: Any
            ) -> bool:
    """Whether ``credentials`` (an oslo.context) may apply ``rule`` to ``target``.

    Only a project-scoped token may (:func:`project_scoped`); then oslo.policy decides.
    """
    if not project_scoped(credentials):
        return False
    try:
        return bool(enforcer.authorize(rule, target, credentials, do_raise=False))
    except policy.InvalidScope:
        # A system- or domain-scoped token: these rules are for projects.
        return False
