"""An operator's policy file through the API: overrides in YAML or JSON, and mistakes.

A mistake never lets a caller through. A rule that does not parse, or that
names a rule nowhere defined, refuses (403) and oslo.policy logs it; a file
that is not a policy at all (broken YAML, not a mapping) fails every request
(500) and the log names that file, so the on-call knows what to fix.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovh_credit_plugin.api import policy
from ovh_credit_plugin.api.app import make_app
from tests.support.api import PERSONAS, api_conf, call, noauth_headers, serving
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Policy does not depend on the database: SQLite only here."""
    return str(request.param)


@pytest.fixture
def with_policy(ledger: Ledger, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """ovh-credit-api (noauth) whose ``[oslo_policy] policy_file`` is a file the test writes."""
    policy_file = tmp_path / "policy.yaml"
    conf = api_conf(ledger, auth="noauth")
    policy.make_enforcer(conf)  # registers [oslo_policy]
    conf.set_override("policy_file", str(policy_file), "oslo_policy")
    app = make_app(conf)
    try:
        with serving(app) as url:
            yield policy_file, url
    finally:
        app.close()


def _credits(url: str, persona: str) -> int:
    return call("GET", f"{url}/v1/credits", headers=noauth_headers(PERSONAS[persona])).status_code


@pytest.mark.parametrize("text", [
    '"cloud_credit:credit:list": "role:admin"\n',
    '{"cloud_credit:credit:list": "role:admin"}\n',
], ids=["yaml", "json"])
def test_an_override_applies_in_yaml_or_json(with_policy: tuple[Path, str], text: str) -> None:
    policy_file, url = with_policy
    policy_file.write_text(text)
    assert _credits(url, "reader") == 403
    assert _credits(url, "admin") == 200


@pytest.mark.parametrize(("text", "logged"), [
    ('"cloud_credit:credit:list": "rule:admin_or_owner"\n',
     "reference a rule that is not defined"),
    ('"cloud_credit:credit:list": "role:reader and (("\n', "Failed to understand rule"),
], ids=["undefined rule", "unparsable rule"])
def test_a_wrong_rule_refuses_and_is_logged(with_policy: tuple[Path, str], text: str,
                                            logged: str, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    policy_file, url = with_policy
    policy_file.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert _credits(url, "reader") == 403
        assert _credits(url, "admin") == 403
    assert logged in caplog.text


@pytest.mark.parametrize("text", [
    '"cloud_credit:credit:list": [role:admin\n',
    '- "cloud_credit:credit:list"\n',
], ids=["broken yaml", "not a mapping"])
def test_a_file_that_is_not_a_policy_fails_and_the_log_names_it(
        with_policy: tuple[Path, str], text: str, caplog: pytest.LogCaptureFixture) -> None:
    policy_file, url = with_policy
    policy_file.write_text(text)
    with caplog.at_level(logging.ERROR):
        answer = call("GET", f"{url}/v1/credits", headers=noauth_headers(PERSONAS["reader"]))
    assert answer.status_code == 500
    assert answer.json()["errors"][0]["code"] == "cloud_credit.internal_error"
    assert str(policy_file) not in answer.text
    assert f"policy file {policy_file} cannot be loaded" in caplog.text


def test_a_good_file_broken_later_never_falls_back_to_the_defaults(
        with_policy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    policy_file, url = with_policy
    clock = [0.0]
    monkeypatch.setattr(policy, "_now", lambda: clock[0])
    policy_file.write_text('"cloud_credit:credit:list": "role:admin"\n')
    assert _credits(url, "reader") == 403
    policy_file.write_text('"cloud_credit:credit:list": [role:admin\n')
    stat = policy_file.stat()
    os.utime(policy_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    clock[0] += policy.RECHECK_SECONDS
    assert _credits(url, "reader") == 500
    clock[0] += policy.RECHECK_SECONDS
    # The operator's last good rules, not the (more generous) defaults.
    assert _credits(url, "reader") == 403
    assert _credits(url, "admin") == 200


def test_a_broken_file_added_while_serving_fails_one_request_and_the_defaults_stay(
        with_policy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """As a good file broken later: the request that finds it fails, then the rules in
    force before it (here the defaults, there was no file) stay, and the log says so.
    A broken file there at start fails every request instead (the test above)."""
    policy_file, url = with_policy
    clock = [time.monotonic()]
    monkeypatch.setattr(policy, "_now", lambda: clock[0])
    assert _credits(url, "reader") == 200
    policy_file.write_text('"cloud_credit:credit:list": [role:admin\n')
    clock[0] += policy.RECHECK_SECONDS
    with caplog.at_level(logging.ERROR):
        assert _credits(url, "reader") == 500
    assert f"policy file {policy_file} cannot be loaded" in caplog.text
    for _ in range(2):
        clock[0] += policy.RECHECK_SECONDS
        assert _credits(url, "reader") == 200


def test_a_broken_file_there_at_start_fails_every_request_until_fixed(
        ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"cloud_credit:credit:list": [role:admin\n')
    conf = api_conf(ledger, auth="noauth")
    policy.make_enforcer(conf)
    conf.set_override("policy_file", str(policy_file), "oslo_policy")
    clock = [time.monotonic()]
    monkeypatch.setattr(policy, "_now", lambda: clock[0])
    app = make_app(conf)
    try:
        with serving(app) as url:
            for _ in range(3):
                assert _credits(url, "reader") == 500
                clock[0] += policy.RECHECK_SECONDS
            policy_file.write_text('"cloud_credit:credit:list": "role:admin"\n')
            stat = policy_file.stat()
            os.utime(policy_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            assert _credits(url, "reader") == 403
            assert _credits(url, "admin") == 200
    finally:
        app.close()
