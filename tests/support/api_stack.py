"""The REST API's servers for end-to-end tests: ``ovh-credit-api`` and CloudKitty's API.

Both are real processes on loopback ports: the ``ovh-credit-api`` console
script (``[api] auth_strategy`` noauth or keystone), and CloudKitty 25's API
application built as ``cloudkitty.api.app`` builds it (its paste pipeline,
keystonemiddleware included) served by tests/support/serve.py. Both use one
ledger (a SQLite file migrated with ``ovh-credit db upgrade``) and the file
voucher catalog.

Until the REST API (``ovh_credit_plugin.api``, branch ``api``) is in the tree,
:func:`api_skip_reason` says so and the tests skip with that reason; with
``OVH_CREDIT_REQUIRE_API=1`` (CI, once the package exists) it is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.process import ROOT, ServerProcess

REQUIRE_API = os.environ.get("OVH_CREDIT_REQUIRE_API") == "1"
BIN = Path(sys.executable).parent

VOUCHERS = {"vouchers": [
    {"code": "WELCOME-2026", "amount": "50.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": None, "validity_days": 90, "products": [],
     "max_redemptions": None, "redemptions": 0, "description": "Welcome voucher"},
    {"code": "SPRING-10", "amount": "10.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": None, "validity_days": 30, "products": [],
     "max_redemptions": None, "redemptions": 0, "description": "Spring voucher"},
]}


def api_skip_reason() -> str | None:
    try:
        import ovh_credit_plugin.api.app  # noqa: F401
    except ImportError as error:
        reason = (f"ovh_credit_plugin.api.app cannot be imported ({error}): the REST API "
                  "(branch api) is not in this tree yet")
        if REQUIRE_API:
            raise RuntimeError(f"OVH_CREDIT_REQUIRE_API=1 but {reason}") from error
        return reason
    if shutil.which("ovh-credit-api", path=str(BIN)) is None:
        reason = "the ovh-credit-api script is not installed (pip install -e .)"
        if REQUIRE_API:
            raise RuntimeError(f"OVH_CREDIT_REQUIRE_API=1 but {reason}")
        return reason
    return None


def client_skip_reason() -> str | None:
    """The real ``openstack`` program with python-cloudkittyclient (the client extra)."""
    if shutil.which("openstack", path=str(BIN)) is None:
        return "python-openstackclient is not installed (the client extra)"
    try:
        import cloudkittyclient  # noqa: F401
    except ImportError:
        return "python-cloudkittyclient is not installed (the client extra)"
    return None


def free_port() -> int:
    # ovh-credit-api takes its port from its configuration and does not print
    # it: a port the system just handed out, free again, is the best guess.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ledger_sections(directory: Path) -> str:
    """``[cloud_credit]`` and ``[voucher_catalog]`` for a ledger in ``directory``."""
    vouchers = directory / "vouchers.json"
    if not vouchers.exists():
        vouchers.write_text(json.dumps(VOUCHERS))
    return f"""[cloud_credit]
connection = sqlite:///{directory}/ledger.sqlite
default_currency = EUR
payment_url_template = https://pay.example.invalid/orders/{{order_id}}

[voucher_catalog]
driver = file
file_path = {vouchers}
"""


def authtoken_section(authtoken: dict[str, str]) -> str:
    return "[keystone_authtoken]\n" + "".join(f"{k} = {v}\n" for k, v in authtoken.items())


def migrate_ledger(config: Path) -> None:
    result = subprocess.run(
        [str(BIN / "ovh-credit"), "--config-file", str(config), "db", "upgrade"],
        capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ovh-credit db upgrade failed: {result.stderr}")


def start_standalone(directory: Path, *, auth_strategy: str,
                     authtoken: dict[str, str] | None = None,
                     options: str = "") -> ServerProcess:
    """``ovh-credit-api --config-file ...`` on a free loopback port.

    ``options``: more configuration, appended (oslo.config merges a section given twice).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "ovh-credit-api.conf"
    text = ledger_sections(directory) + f"""
[api]
bind_host = 127.0.0.1
bind_port = {port}
auth_strategy = {auth_strategy}
"""
    if authtoken:
        text += "\n" + authtoken_section(authtoken)
    config.write_text(text + ("\n" + options if options else ""))
    migrate_ledger(config)
    server = ServerProcess([str(BIN / "ovh-credit-api"), "--config-file", str(config)],
                           env={}, log_path=directory / "ovh-credit-api.log")
    server.port = port
    server.wait_until_answering("/")
    return server


CLOUDKITTY_PASTE = """[pipeline:cloudkitty+noauth]
pipeline = cors http_proxy_to_wsgi request_id ck_api

[pipeline:cloudkitty+keystone]
pipeline = cors http_proxy_to_wsgi request_id authtoken ck_api

[app:ck_api]
paste.app_factory = cloudkitty.api.app:app_factory

[filter:authtoken]
acl_public_routes = /, /v1, /v2, /healthcheck
paste.filter_factory = cloudkitty.api.middleware:AuthTokenMiddleware.factory

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = cloudkitty

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory
oslo_config_project = cloudkitty
"""


def start_cloudkitty_api(directory: Path, *, ledger_directory: Path,
                         authtoken: dict[str, str]) -> ServerProcess:
    """CloudKitty's API (keystone strategy) with the cloud_credit module, on a free port.

    CloudKitty's paste file is the one its source tree ships (etc/cloudkitty/
    api_paste.ini; the wheel does not carry it). v1 storage on SQLite, the
    fake messaging driver (no RabbitMQ: the rating module API does not use it).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api_paste.ini").write_text(CLOUDKITTY_PASTE)
    config = directory / "cloudkitty.conf"
    config.write_text(f"""[DEFAULT]
auth_strategy = keystone
api_paste_config = {directory}/api_paste.ini
transport_url = fake:/
use_stderr = true

[database]
connection = sqlite:///{directory}/cloudkitty.sqlite

[storage]
backend = sqlalchemy
version = 1

[oslo_concurrency]
lock_path = {directory}/locks

""" + ledger_sections(ledger_directory) + "\n" + authtoken_section(authtoken))
    return ServerProcess.wsgi("tests.support.api_stack:cloudkitty_app",
                              env={"OVH_CREDIT_TEST_CLOUDKITTY_CONF": str(config)},
                              log_path=directory / "cloudkitty-api.log")


def cloudkitty_app() -> Any:
    """In the child: CloudKitty's configuration parsed, then its API application loaded."""
    import warnings

    warnings.simplefilter("ignore")
    from cloudkitty import service
    from cloudkitty.api import app

    service.prepare_service(argv=[], config_files=[os.environ[
        "OVH_CREDIT_TEST_CLOUDKITTY_CONF"]])
    return app.load_app()


def osc_env() -> dict[str, str]:
    """The environment for the ``openstack`` program: none of the caller's OS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def openstack(*args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "openstack"), *args], capture_output=True, text=True,
        timeout=timeout, env=env or osc_env(), cwd=ROOT, check=False, stdin=subprocess.DEVNULL)
