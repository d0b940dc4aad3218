"""The real-Keystone harness: its tokens, validated by keystonemiddleware over a socket.

A trivial WSGI application behind keystonemiddleware's ``auth_token`` (as
CloudKitty's API and ``ovh-credit-api`` with ``auth_strategy = keystone`` are)
sees the caller Keystone put in the token, and a missing, wrong or revoked
token never reaches it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.support.keystone import Keystone
from tests.support.wsgi_thread import serving


def whoami(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({
        "project_id": environ.get("HTTP_X_PROJECT_ID"),
        "user_id": environ.get("HTTP_X_USER_ID"),
        "roles": sorted((environ.get("HTTP_X_ROLES") or "").split(",")),
        "identity_status": environ.get("HTTP_X_IDENTITY_STATUS"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture(scope="module")
def protected(keystone: Keystone) -> Any:
    app = keystone.protect(whoami)
    with serving(app) as url:
        yield url


def get(url: str, token: str | None) -> requests.Response:
    headers = {"X-Auth-Token": token} if token is not None else {}
    return requests.get(url, headers=headers, timeout=30)


@pytest.mark.parametrize("persona,project,role", [
    ("reader", "alpha", "reader"), ("member", "alpha", "member"),
    ("other", "beta", "member"), ("service", "service", "service"),
    ("admin", "admin", "admin"),
])
def test_each_personas_token_carries_its_project_and_role(
        keystone: Keystone, protected: str, persona: str, project: str, role: str) -> None:
    response = get(protected, keystone.token(persona))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["project_id"] == keystone.personas[persona].project_id
    assert keystone.personas[persona].project_name == project
    assert seen["user_id"] == keystone.personas[persona].user_id
    assert role in seen["roles"]
    assert seen["identity_status"] == "Confirmed"


def test_member_implies_reader_but_reader_is_not_member(keystone: Keystone,
                                                        protected: str) -> None:
    # Keystone's implied roles (bootstrap: admin > member > reader): the
    # policy defaults rely on them.
    assert "reader" in get(protected, keystone.token("member")).json()["roles"]
    assert "member" not in get(protected, keystone.token("reader")).json()["roles"]


def test_alpha_and_beta_are_different_projects(keystone: Keystone) -> None:
    assert keystone.personas["member"].project_id != keystone.personas["other"].project_id


@pytest.mark.parametrize("token", [None, "", "not-a-token",
                                   "gAAAAABnotavalidfernettokenatall0000000000000000000"])
def test_no_or_wrong_token_is_401(protected: str, token: str | None) -> None:
    response = get(protected, token)
    assert response.status_code == 401
    assert "Keystone uri=" in response.headers.get("WWW-Authenticate", "")


def test_a_revoked_token_is_401(keystone: Keystone, protected: str) -> None:
    token = keystone.token("member")
    keystone.revoke(token)
    assert get(protected, token).status_code == 401
