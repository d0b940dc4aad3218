"""oslo.policy's operator tools on our namespace, run for real through the entry points.

``oslopolicy-policy-generator``, ``oslopolicy-list-redundant`` and
``oslopolicy-validator`` find the enforcer under ``oslo.policy.enforcer``
(``oslopolicy-sample-generator`` only needs the rules, ``oslo.policy.policies``).
They read the policy file the host's configuration names (``--config-file``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name(name)
    return subprocess.run([str(tool), "--namespace", "cloud_credit", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _host_config(tmp_path: Path, policy_text: str) -> Path:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy_text)
    conf = tmp_path / "host.conf"
    conf.write_text(f"[oslo_policy]\npolicy_file = {policy_file}\n")
    return conf


def test_the_policy_generator_merges_the_operators_file_with_the_defaults(
        tmp_path: Path) -> None:
    conf = _host_config(tmp_path, '"cloud_credit:credit:void": "role:admin or role:fraud"\n')
    run = _tool("oslopolicy-policy-generator", "--config-file", str(conf))
    assert run.returncode == 0, run.stderr
    effective = yaml.safe_load(run.stdout)
    assert effective["cloud_credit:credit:void"] == "role:admin or role:fraud"
    assert effective["cloud_credit:order:pay"] == "role:service or role:admin"


def test_list_redundant_names_an_override_equal_to_its_default(tmp_path: Path) -> None:
    conf = _host_config(tmp_path, '"cloud_credit:credit:void": "role:admin"\n'
                                  '"cloud_credit:order:pay": "role:service"\n')
    run = _tool("oslopolicy-list-redundant", "--config-file", str(conf))
    assert run.returncode == 0, run.stderr
    assert "cloud_credit:credit:void" in run.stdout
    assert "cloud_credit:order:pay" not in run.stdout


def test_the_validator_accepts_a_good_file_and_names_what_is_wrong_in_a_bad_one(
        tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    good = _host_config(tmp_path / "good", '"cloud_credit:order:create": "role:member and '
                                           'project_id:%(project_id)s"\n')
    run = _tool("oslopolicy-validator", "--config-file", str(good))
    assert run.returncode == 0, run.stdout + run.stderr

    (tmp_path / "bad").mkdir()
    bad = _host_config(tmp_path / "bad", '"cloud_credit:order:create": "rule:admin_or_owner"\n'
                                         '"cloud_credit:order:refund": "role:admin"\n')
    run = _tool("oslopolicy-validator", "--config-file", str(bad))
    assert run.returncode == 1
    assert "Invalid rules found" in run.stdout
    assert "Unknown rule found in policy file: cloud_credit:order:refund" in run.stdout
