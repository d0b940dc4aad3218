"""A real Keystone on a loopback port, with projects, users and roles made through its API.

The ``keystone`` package (the ``keystone-tests`` extra: the release of cloudkitty 25)
runs in a child process: SQLite, fernet tokens, ``keystone-manage db_sync`` and
``bootstrap``, its WSGI application (``keystone.server.wsgi``) served by
tests/support/serve.py. The personas are created with keystoneauth against the
running server:

=========== =========================================================
persona     role assignments
=========== =========================================================
``reader``  reader on project ``alpha``
``member``  member on project ``alpha``
``other``   member on project ``beta`` (another customer)
``admin``   admin on project ``admin`` (keystone-manage bootstrap's)
``service`` service on project ``service`` (a payment system)
``ksm``     service on project ``service`` (keystonemiddleware's own user)
=========== =========================================================

Setting one up takes tens of seconds (db_sync, bcrypt): the migrated and
populated database, its fernet keys and the persona ids are built once per
keystone version and kept in a cache directory; each run copies them, starts
the server and points the catalog's identity endpoints at its port.

Skipped when keystone is not installed, unless ``OVH_CREDIT_REQUIRE_KEYSTONE=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.support.process import ServerProcess, exclusive

REQUIRE_KEYSTONE = os.environ.get("OVH_CREDIT_REQUIRE_KEYSTONE") == "1"
PASSWORD = "secret-test-password"
DOMAIN = "default"
PERSONAS = {
    # name: (project, role)
    "reader": ("alpha", "reader"),
    "member": ("alpha", "member"),
    "other": ("beta", "member"),
    "service": ("service", "service"),
    "ksm": ("service", "service"),
}


def keystone_version() -> str | None:
    try:
        return metadata.version("keystone")
    except metadata.PackageNotFoundError:
        return None


def skip_reason() -> str | None:
    """Why the Keystone tier cannot run here, or None. Raises when it is required."""
    if keystone_version() is None or shutil.which("keystone-manage",
                                                  path=str(Path(sys.executable).parent)) is None:
        reason = ("keystone is not installed (pip install -c .ci/constraints.txt "
                  "-e '.[keystone-tests]')")
        if REQUIRE_KEYSTONE:
            raise RuntimeError(f"OVH_CREDIT_REQUIRE_KEYSTONE=1 but {reason}")
        return reason
    return None


@dataclass
class Persona:
    name: str
    user_id: str
    project_id: str
    project_name: str
    role: str


@dataclass
class Keystone:
    """A running Keystone; ``url`` is its root (the identity v3 API is ``url + '/v3'``)."""

    server: ServerProcess
    directory: Path
    personas: dict[str, Persona] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth_url(self) -> str:
        return f"{self.server.url}/v3"

    def auth(self, persona: str) -> Any:
        """A keystoneauth password plugin scoped to the persona's project."""
        from keystoneauth1.identity import v3

        p = self.personas[persona]
        return v3.Password(auth_url=self.auth_url, user_id=p.user_id, password=PASSWORD,
                           project_id=p.project_id)

    def session(self, persona: str) -> Any:
        from keystoneauth1 import session

        return session.Session(auth=self.auth(persona))

    def token(self, persona: str) -> str:
        """A fresh project-scoped token for the persona."""
        return str(self.session(persona).get_token())

    def revoke(self, token: str) -> None:
        admin = self.session("admin")
        admin.delete(f"{self.auth_url}/auth/tokens", headers={"X-Subject-Token": token})

    def authtoken_conf(self) -> dict[str, str]:
        """keystonemiddleware's ``[keystone_authtoken]`` for a service of this Keystone."""
        ksm = self.personas["ksm"]
        return {
            "www_authenticate_uri": self.auth_url,
            "auth_url": self.auth_url,
            "auth_type": "password",
            "username": "ksm",
            "user_domain_id": DOMAIN,
            "password": PASSWORD,
            "project_name": ksm.project_name,
            "project_domain_id": DOMAIN,
            "interface": "public",
            "region_name": "RegionOne",
            # No memcached here: keystonemiddleware's in-process cache.
            "memcached_servers": "",
        }

    def protect(self, app: Any) -> Any:
        """``app`` behind keystonemiddleware, in this process, for this Keystone.

        On a configuration of its own: keystonemiddleware registers the auth
        plugin's options (``auth_url`` required) on its ConfigOpts, by default the
        process-wide ``cfg.CONF``, where a later ``cfg.CONF([])`` (CloudKitty's API
        tests) would find a required option without a value.
        """
        from keystonemiddleware import auth_token
        from oslo_config import cfg

        return auth_token.AuthProtocol(
            app, {**self.authtoken_conf(), "oslo_config_config": cfg.ConfigOpts()})

    def stop(self) -> None:
        self.server.stop()


def _conf(directory: Path) -> str:
    return f"""[DEFAULT]
debug = false
use_stderr = true

[database]
connection = sqlite:///{directory}/keystone.sqlite

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = {directory}/fernet-keys
max_active_keys = 3

[fernet_receipts]
key_repository = {directory}/fernet-receipts

[credential]
key_repository = {directory}/credential-keys

[identity]
# Test passwords: bcrypt's default cost makes every token request slow.
password_hash_rounds = 4

[cache]
enabled = false

[oslo_policy]
enforce_new_defaults = true
enforce_scope = true
"""


def _manage(directory: Path, *args: str) -> None:
    manage = str(Path(sys.executable).parent / "keystone-manage")
    result = subprocess.run(
        [manage, "--config-file", str(directory / "keystone.conf"), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"keystone-manage {args[0]} failed:\n{result.stderr[-3000:]}")


def _start(directory: Path) -> ServerProcess:
    env = {"OS_KEYSTONE_CONFIG_FILES": str(directory / "keystone.conf")}
    return ServerProcess.wsgi("keystone.server.wsgi:initialize_public_application",
                              env=env, log_path=directory / "keystone.log")


def _bootstrap(directory: Path, url: str) -> None:
    _manage(directory, "bootstrap", "--bootstrap-password", PASSWORD,
            "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
            "--bootstrap-role-name", "admin",
            "--bootstrap-admin-url", f"{url}/v3", "--bootstrap-internal-url", f"{url}/v3",
            "--bootstrap-public-url", f"{url}/v3", "--bootstrap-region-id", "RegionOne")


def _api(session: Any, method: str, url: str, body: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    response = session.request(url, method, json=body, raise_exc=True)
    return response.json() if response.content else {}


def _populate(directory: Path, url: str) -> dict[str, Persona]:
    """The projects, users and role assignments, made through Keystone's API."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    admin = session.Session(auth=v3.Password(
        auth_url=f"{url}/v3", username="admin", password=PASSWORD, user_domain_id=DOMAIN,
        project_name="admin", project_domain_id=DOMAIN))
    v3url = f"{url}/v3"
    roles = {r["name"]: r["id"] for r in _api(admin, "GET", f"{v3url}/roles")["roles"]}
    for name in ("reader", "member", "service"):
        if name not in roles:
            roles[name] = _api(admin, "POST", f"{v3url}/roles",
                               {"role": {"name": name}})["role"]["id"]
    projects: dict[str, str] = {}
    for name in ("alpha", "beta", "service"):
        projects[name] = _api(admin, "POST", f"{v3url}/projects", {"project": {
            "name": name, "domain_id": DOMAIN, "description": "ovh-credit-plugin tests"}}
        )["project"]["id"]
    personas: dict[str, Persona] = {}
    for user, (project, role) in PERSONAS.items():
        user_id = _api(admin, "POST", f"{v3url}/users", {"user": {
            "name": user, "domain_id": DOMAIN, "password": PASSWORD}})["user"]["id"]
        _api(admin, "PUT",
             f"{v3url}/projects/{projects[project]}/users/{user_id}/roles/{roles[role]}")
        personas[user] = Persona(user, user_id, projects[project], project, role)
    admin_user = _api(admin, "GET", f"{v3url}/users?name=admin")["users"][0]["id"]
    admin_project = _api(admin, "GET", f"{v3url}/projects?name=admin")["projects"][0]["id"]
    personas["admin"] = Persona("admin", admin_user, admin_project, "admin", "admin")
    return personas


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovh-credit-plugin" / f"keystone-{keystone_version()}"


_STATE = ("keystone.sqlite", "fernet-keys", "fernet-receipts", "credential-keys",
          "personas.json")


def _build_template(template: Path) -> None:
    """db_sync, keys, bootstrap and personas, once: the slow part."""
    work = Path(tempfile.mkdtemp(prefix="keystone-build-", dir=template.parent))
    try:
        (work / "keystone.conf").write_text(_conf(work))
        _manage(work, "db_sync")
        for repository in ("fernet_setup", "credential_setup"):
            _manage(work, repository, "--keystone-user", str(os.getuid()),
                    "--keystone-group", str(os.getgid()))
        (work / "fernet-receipts").mkdir(exist_ok=True)
        server = _start(work)
        try:
            _bootstrap(work, server.url)
            personas = _populate(work, server.url)
        finally:
            server.stop()
        (work / "personas.json").write_text(json.dumps(
            {name: p.__dict__ for name, p in personas.items()}))
        (work / "keystone.conf").unlink()
        (work / "keystone.log").unlink(missing_ok=True)
        work.rename(template)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def start_keystone(directory: Path, *, extra_conf: str = "") -> Keystone:
    """A Keystone of its own in ``directory`` (copied from the cached template).

    ``extra_conf``: more keystone.conf, appended (e.g. a ``[resource]`` section);
    the template, built without it, is the same.
    """
    template = _cache_root() / "template"
    with exclusive(_cache_root() / "lock"):
        if not (template / "personas.json").exists():
            shutil.rmtree(template, ignore_errors=True)
            _build_template(template)
    directory.mkdir(parents=True, exist_ok=True)
    for name in _STATE:
        source = template / name
        if source.is_dir():
            shutil.copytree(source, directory / name)
        else:
            shutil.copy2(source, directory / name)
    (directory / "keystone.conf").write_text(_conf(directory) + extra_conf)
    # fernet keys must not be readable by others, or keystone refuses them.
    for repository in ("fernet-keys", "fernet-receipts", "credential-keys"):
        os.chmod(directory / repository, 0o700)
    server = _start(directory)
    try:
        keystone = Keystone(server, directory)
        keystone.personas = {
            name: Persona(**fields)
            for name, fields in json.loads((directory / "personas.json").read_text()).items()
        }
        _point_catalog_at(keystone)
    except BaseException:
        server.stop()
        raise
    return keystone


def _point_catalog_at(keystone: Keystone) -> None:
    """The identity endpoints of the copied catalog, moved to this run's port."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    admin_plugin = v3.Password(
        auth_url=keystone.auth_url, username="admin", password=PASSWORD,
        user_domain_id=DOMAIN, project_name="admin", project_domain_id=DOMAIN)
    admin = session.Session(auth=admin_plugin)
    # The token request itself goes to auth_url; the catalog is only read.
    endpoints = _api(admin, "GET", f"{keystone.auth_url}/endpoints")["endpoints"]
    services = {s["id"]: s["type"]
                for s in _api(admin, "GET", f"{keystone.auth_url}/services")["services"]}
    for endpoint in endpoints:
        if services.get(endpoint["service_id"]) == "identity" \
                and endpoint["url"] != keystone.auth_url:
            _api(admin, "PATCH", f"{keystone.auth_url}/endpoints/{endpoint['id']}",
                 {"endpoint": {"url": keystone.auth_url}})


def register_service(keystone: Keystone, service_type: str, url: str) -> None:
    """A service and its public/internal/admin endpoints in the catalog (e.g. ``rating``)."""
    from keystoneauth1 import session

    admin = session.Session(auth=v3_admin(keystone))
    base = keystone.auth_url
    service = _api(admin, "POST", f"{base}/services",
                   {"service": {"type": service_type, "name": service_type}})["service"]
    for interface in ("public", "internal", "admin"):
        _api(admin, "POST", f"{base}/endpoints", {"endpoint": {
            "service_id": service["id"], "interface": interface, "url": url,
            "region_id": "RegionOne"}})


def v3_admin(keystone: Keystone) -> Any:
    from keystoneauth1.identity import v3

    return v3.Password(auth_url=keystone.auth_url, username="admin", password=PASSWORD,
                       user_domain_id=DOMAIN, project_name="admin", project_domain_id=DOMAIN)


def keystone_fixture(tmp_path_factory: Any) -> Iterator[Keystone]:
    """Body of the session-scoped ``keystone`` fixture (tests/integration/conftest.py)."""
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    keystone = start_keystone(tmp_path_factory.mktemp("keystone"))
    try:
        yield keystone
    finally:
        keystone.stop()
