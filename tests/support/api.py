"""The REST API over a real socket: the standalone app (or any WSGI app) on 127.0.0.1.

``serving(app)`` runs the standard library's threaded WSGI server on a free
loopback port and stops it on exit. ``Personas`` are keystonemiddleware
AuthTokenFixture tokens for the policy table's callers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from oslo_config import cfg

from ovh_credit_plugin.api.app import make_app, make_server
from ovh_credit_plugin.conf import register_api_opts, register_opts
from tests.support.ledgers import Ledger

PROJECT = "a" * 32
OTHER = "b" * 32
ADMIN_PROJECT = "c" * 32
SERVICE_PROJECT = "d" * 32


@dataclass(frozen=True)
class Persona:
    name: str
    project_id: str
    roles: tuple[str, ...]


# Keystone expands implied roles into the token: a member is a reader too.
PERSONAS = {
    "reader": Persona("reader", PROJECT, ("reader",)),
    "member": Persona("member", PROJECT, ("member", "reader")),
    "admin": Persona("admin", ADMIN_PROJECT, ("admin", "member", "reader")),
    "other": Persona("other", OTHER, ("member", "reader")),
    "service": Persona("service", SERVICE_PROJECT, ("service",)),
}


# Where a client would get a token: named in 401 answers, never contacted
# (the AuthTokenFixture validates tokens in-process).
KEYSTONE_CONFIG = """
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:9/identity/v3
"""


def api_conf(ledger: Ledger, *, auth: str, max_body: int | None = None) -> cfg.ConfigOpts:
    keystone = ledger.config.with_name("keystone.conf")
    keystone.write_text(KEYSTONE_CONFIG)
    conf = cfg.ConfigOpts()
    register_opts(conf)
    register_api_opts(conf)
    conf(args=[], default_config_files=[str(ledger.config), str(keystone)])
    conf.set_override("auth_strategy", auth, "api")
    if max_body is not None:
        conf.set_override("max_request_body_size", max_body, "api")
    return conf


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served on 127.0.0.1 (a free port); yields its base URL."""
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@contextlib.contextmanager
def standalone(ledger: Ledger, *, auth: str = "noauth", max_body: int | None = None,
               voucher_catalog: Mapping[str, Any] | None = None) -> Iterator[str]:
    """ovh-credit-api's application on ``ledger``; yields ``http://127.0.0.1:PORT``.

    ``voucher_catalog``: option overrides of that group (another driver, its endpoint).
    """
    conf = api_conf(ledger, auth=auth, max_body=max_body)
    for name, value in (voucher_catalog or {}).items():
        conf.set_override(name, value, "voucher_catalog")
    app = make_app(conf)
    try:
        with serving(app) as url:
            yield url
    finally:
        app.close()


def noauth_headers(persona: Persona) -> dict[str, str]:
    return {"X-Project-Id": persona.project_id, "X-User-Id": f"user-{persona.name}",
            "X-Roles": ",".join(persona.roles)}


class Tokens:
    """AuthTokenFixture tokens, one per persona, plus an expired one."""

    def __init__(self, fixture: Any) -> None:
        self.by_persona = {name: _add(fixture, persona, f"tok-{name}")
                           for name, persona in PERSONAS.items()}
        self.expired = _add(fixture, PERSONAS["member"], "tok-expired",
                            expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))

    def headers(self, persona: str) -> dict[str, str]:
        return {"X-Auth-Token": self.by_persona[persona]}


def _add(fixture: Any, persona: Persona, token_id: str, **kwargs: Any) -> str:
    fixture.add_token_data(
        token_id=token_id, user_id=f"user-{persona.name}", user_name=persona.name,
        project_id=persona.project_id, project_name=f"project-{persona.name}",
        user_domain_id="default", project_domain_id="default", role_list=list(persona.roles),
        **kwargs,
    )
    return token_id


@contextlib.contextmanager
def auth_token_fixture() -> Iterator[Tokens]:
    """keystonemiddleware's own test fixture: tokens validated without a Keystone."""
    from keystonemiddleware import fixture as ksm_fixture

    fixture = ksm_fixture.AuthTokenFixture()
    fixture.setUp()
    try:
        yield Tokens(fixture)
    finally:
        fixture.cleanUp()


def call(method: str, url: str, *, headers: dict[str, str] | None = None,
         json_body: Any = None, data: bytes | None = None, timeout: float = 60
         ) -> requests.Response:
    return requests.request(method, url, headers=headers, json=json_body, data=data,
                            timeout=timeout)


def exchange_raw(url: str, request: bytes) -> tuple[bytes, bytes]:
    """``request`` sent as is on a new connection (its sending side then closed); the
    head and the body answered."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body
