"""A policy check in one thread while another reloads the rules: never a false refusal.

oslo.policy builds a new rule set in place: the file's rules first, then the
registered defaults one by one. A check made meanwhile by another thread of
the same process (ovh-credit-api's threads, uWSGI's or gunicorn's --threads,
CloudKitty's API) found no rule for its action, fell to the ``default`` rule,
and refused a customer who is allowed (403): at every first request of a
worker's threads, and within a second of any edit of the policy file. Found by
the WSGI servers walk (a 403 on ``GET credits`` just after gunicorn's reload).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context

from ovh_credit_plugin.api import policy

PROJECT = "p1"
MEMBER = context.RequestContext(project_id=PROJECT, user_id="u1", roles=["member", "reader"])
PAUSE = 0.3


def enforcer_with_file(tmp_path: Path, text: str | None) -> policy.Enforcer:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    policy.make_enforcer(conf)  # registers [oslo_policy]
    policy_file = tmp_path / "policy.yaml"
    if text is not None:
        policy_file.write_text(text)
    conf.set_override("policy_file", str(policy_file), "oslo_policy")
    return policy.make_enforcer(conf)


def allowed_while_another_thread_loads(enforcer: policy.Enforcer,
                                       monkeypatch: pytest.MonkeyPatch, slow: str) -> bool:
    """A check while another thread is in the middle of ``load_rules``: it is paused
    for PAUSE seconds right after oslo.policy's ``slow`` step."""
    real = getattr(type(enforcer).__mro__[1], slow)
    in_the_middle = threading.Event()

    def paused(self: Any, *args: Any, **kwargs: Any) -> Any:
        done = real(self, *args, **kwargs)
        if threading.current_thread().name == "loader":
            in_the_middle.set()
            time.sleep(PAUSE)
        return done

    monkeypatch.setattr(type(enforcer).__mro__[1], slow, paused)
    loader = threading.Thread(target=enforcer.load_rules, kwargs={"force_reload": True},
                              name="loader")
    loader.start()
    assert in_the_middle.wait(10)
    try:
        return policy.allowed(enforcer, "cloud_credit:credit:list",
                              {"project_id": PROJECT}, MEMBER)
    finally:
        loader.join(10)


@pytest.mark.parametrize("text", ["{}\n", '"cloud_credit:order:create": "role:member"\n'],
                         ids=["empty file", "one override"])
def test_a_check_during_a_reload_of_the_file_is_not_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    enforcer = enforcer_with_file(tmp_path, text)
    assert policy.allowed(enforcer, "cloud_credit:credit:list", {"project_id": PROJECT}, MEMBER)
    assert allowed_while_another_thread_loads(enforcer, monkeypatch, "set_rules")

