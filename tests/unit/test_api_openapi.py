"""docs/api.openapi.yaml matches the code: routes, policy rules, error codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ovh_credit_plugin.api import errors, policy
from ovh_credit_plugin.api.controllers import served_routes

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs/api.openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_paths_and_methods_are_the_routes_the_controllers_serve() -> None:
    documented = {(method.upper(), path.lstrip("/"))
                  for path, item in document()["paths"].items()
                  for method in item if method in METHODS}
    assert documented == served_routes()


def test_each_operation_names_its_policy_rule() -> None:
    rules = {rule.name: rule for rule in policy.list_rules()}
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            named = [name for name in rules if f"`{name}`" in operation["description"]]
            assert len(named) == 1, (method, path)
            (rule,) = named
            # The rule documents the same operation (paths under {base}).
            assert {"method": method.upper(), "path": f"{{base}}{path}"} in (
                rules[rule].operations), (method, path, rule)


def test_error_codes_are_the_codes_the_api_answers() -> None:
    schema = document()["components"]["schemas"]["Errors"]
    codes = schema["properties"]["errors"]["items"]["properties"]["code"]["enum"]
    assert set(codes) == {f"cloud_credit.{code}" for code in errors.CODES}
