"""What the API's routing and policy compute per request (docs/performance.md, figure 8).

Timings are for ``benchmarks/run.py``; these check that the work measured
there as avoidable stays avoided, and that the answers do not change.
"""

from __future__ import annotations

import inspect
from collections.abc import MutableMapping
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy
from pecan import util as pecan_util

from ovh_credit_plugin.api import controllers, policy


def test_pecan_reads_a_controllers_argument_spec_once() -> None:
    # Importing the controllers installs the cache (CloudKitty imports them too).
    assert hasattr(pecan_util._getargspec, "uncached")
    resource = controllers.CreditsController(runtime=None)  # type: ignore[arg-type]
    first = pecan_util.getargspec(resource.get_all)
    # A new bound method each attribute access, the same function: one answer.
    assert pecan_util.getargspec(resource.get_all) is first
    assert pecan_util.getargspec(controllers.CreditsController.get_all) is first
    # ... which is pecan's own.
    assert first == pecan_util._getargspec.uncached(resource.get_all)
    assert first.args == ["self"] and first.varargs == "args" and first.keywords == "kwargs"


def test_the_cache_gives_each_function_its_own_spec() -> None:
    def one(self: object, a: int, b: int = 2) -> None: ...

    def other(self: object, *rest: int) -> None: ...

    assert pecan_util.getargspec(one) == inspect.getfullargspec(one)[:4]
    assert pecan_util.getargspec(other) == inspect.getfullargspec(other)[:4]

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, x: int) -> None: ...

    assert pecan_util._getargspec(Unhashable()).args == ["self", "x"]


class _Counting:
    """``inspect`` for the cache to fall back on, counting ``getfullargspec`` calls."""

    def __init__(self) -> None:
        self.calls = 0

    def getfullargspec(self, function: Any) -> inspect.FullArgSpec:
        self.calls += 1
        return inspect.getfullargspec(function)


@oslo_policy.register("legacy_always")
class _LegacyCheck(_checks.Check):
    # The pre-current_rule signature oslo.policy still calls with three arguments.
    def __call__(self, target: Any, creds: MutableMapping[str, Any],  # type: ignore[override]
                 enforcer: Any) -> bool:
        return True


def test_oslo_policy_reads_a_checks_argument_spec_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing the policy module installs the cache (CloudKitty imports it too).
    assert isinstance(_checks.inspect, policy._ArgspecCache)
    counting = _Counting()
    monkeypatch.setattr(_checks, "inspect", policy._ArgspecCache(counting))
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[])
    enforcer = policy.make_enforcer(conf)
    enforcer.register_default(oslo_policy.RuleDefault(
        "test:legacy", "legacy_always:x and role:reader"))
    reader = context.RequestContext(project_id="p1", user_id="u", roles=["reader"])
    member = context.RequestContext(project_id="p1", user_id="u", roles=["member"])

    def decisions() -> list[bool]:
        return [policy.allowed(enforcer, rule, {"project_id": project}, caller)
                for rule in ("cloud_credit:credit:list", "test:legacy")
                for project in ("p1", "p2") for caller in (reader, member)]

    first = decisions()
    seen = counting.calls
    # The same answers, with the legacy check called the legacy way, and no new spec read.
    assert decisions() == first == [True, False, False, False, True, False, True, False]
    assert 0 < seen == counting.calls


def test_the_policy_cache_gives_each_check_its_own_spec() -> None:
    cache = policy._ArgspecCache(inspect)
    legacy = _LegacyCheck("legacy_always", "x")
    current = _checks.RoleCheck("role", "reader")
    assert len(cache.getfullargspec(legacy.__call__).args) == 4
    assert len(cache.getfullargspec(current.__call__).args) == 5
    assert cache.getfullargspec(current.__call__) == inspect.getfullargspec(current.__call__)
    # The rest of ``inspect`` is the module's own.
    assert cache.signature is inspect.signature
