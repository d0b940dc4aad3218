"""The REST API under uWSGI and gunicorn, run as docs/api.md tells an operator to.

Each server runs docs/api.md's command line (read from the document: only the
port and the paths change; 4 processes of 4 threads) on docs/api.md's
``wsgi.py``, with ``[api] auth_strategy = noauth`` and a PostgreSQL ledger
migrated by ``ovh-credit db upgrade``; gunicorn also with ``--preload``, where
the application is loaded before the workers fork, as in uWSGI's default mode.
One server per command for the module (a test that stops it has the next one
start it again).

What an operator needs from a pre-forking server: many clients at once get
right answers, each once, and the ledger balances; the workers are several
processes and share no database connection (loading the application opens
none: each worker opens its own); the log says, for each line, when, which
worker, how bad, which logger and which request; a reload (SIGHUP) and a stop
(SIGTERM) let the requests in flight finish; a configuration ``load_app``
refuses stops the server instead of serving errors.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.support import dbservers
from tests.support.ledgers import ServerPool, new_database_url, write_config
from tests.support.wsgi_servers import (
    DOC_CONFIG,
    PAYMENTS,
    VOUCHERS,
    Answer,
    Server,
    call,
    check_customer,
    connections_to,
    credits_locked,
    doc_wsgi_py,
    error_code,
    ledger_sessions,
    log_lines,
    member,
    new_project,
    reload_while_customers_order,
    server_for,
    skip_reason,
)

BIN = Path(sys.executable).parent
WORKERS = 4  # docs/api.md: 4 processes of 4 threads

#: What the application logs when it is loaded (noauth).
NOAUTH_WARNING = "[api] auth_strategy = noauth: callers are whoever"

# -- the deployments ---------------------------------------------------------------------


@dataclass
class Deployment:
    """One server of docs/api.md's on its own migrated PostgreSQL ledger."""

    name: str
    site: Path
    config: Path
    url: str
    policy_file: Path
    make_server: Callable[[], Server]
    server: Server | None = None
    #: Once the server answered and its workers loaded the application, before any
    #: request of the API's (at each start): the connections the ledger's database
    #: has, and those the server's processes hold (/proc).
    connections_at_load: list[int] = field(default_factory=list)
    held_at_load: list[dict[int, set[int]]] = field(default_factory=list)

    @property
    def database_port(self) -> int:
        return int(sa.make_url(self.url).port or 0)

    def running(self) -> Server:
        """The server, started again if a test stopped it."""
        if self.server is None or not self.server.running():
            if self.server is not None:
                self.server.stop()
            self.server = self.make_server()
            self.server.start()
            self.server.wait_until_answering()
            # Each gunicorn worker loads the application (but with --preload); uWSGI's
            # master loads it before forking its workers.
            self.server.wait_until_loaded(WORKERS, NOAUTH_WARNING,
                                          in_workers=self.name == "gunicorn")
            self.connections_at_load.append(ledger_sessions(self.url))
            self.held_at_load.append(connections_to(
                self.database_port, {self.server.pid} | self.server.workers()))
        return self.server

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``ovh-credit --config-file CONFIG ARGS`` as an operator runs it."""
        return subprocess.run([str(BIN / "ovh-credit"), "--config-file", str(self.config),
                               *args], input=stdin, capture_output=True, text=True,
                              timeout=120, check=False)


def write_wsgi_py(site: Path, config: Path) -> None:
    """docs/api.md's wsgi.py in ``site``, on the configuration file ``config``."""
    (site / "wsgi.py").write_text(doc_wsgi_py().replace(DOC_CONFIG, str(config)))


DEPLOYMENTS = ["uwsgi", "gunicorn", "gunicorn --preload"]
DOCUMENTED = ["uwsgi", "gunicorn"]


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, server_pool: ServerPool,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    name = str(request.param)
    program, _, option = name.partition(" ")
    reason = skip_reason(program)
    if reason:
        pytest.skip(reason)
    site = tmp_path_factory.mktemp(name.replace(" --", "-")) / "srv"
    site.mkdir()
    url = new_database_url("postgresql", server_pool, site)
    vouchers = site / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    policy_file = site / "policy.yaml"  # none yet: the defaults
    config = write_config(site / "ovh-credit-plugin.conf", url, vouchers,
                          "[api]\nauth_strategy = noauth\n"
                          f"[oslo_policy]\npolicy_file = {policy_file}\n")
    write_wsgi_py(site, config)
    made = Deployment(name, site, config, url, policy_file,
                      lambda: server_for(program, site=site, extra=[option] if option else []))
    upgraded = made.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        yield made
    finally:
        if made.server is not None:
            made.server.stop()
        dbservers.drop_database(server_pool.get("postgresql"), sa.make_url(url).database or "")


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True)
def test_loading_the_application_opens_no_ledger_connection(deployment: Deployment) -> None:
    server = deployment.running()
    assert len(server.workers()) == WORKERS
    # Loaded by uWSGI's master (and gunicorn's with --preload) before it forked its
    # workers, or by each gunicorn worker: no connection to share, none at all.
    assert deployment.connections_at_load[-1] == 0
    assert deployment.held_at_load[-1] == {}


@pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True)
def test_customers_and_the_payment_system_at_once(deployment: Deployment) -> None:
    server = deployment.running()
    api = f"{server.url}/v1"
    projects = [new_project() for _ in range(8)]
    twins = [(project, twin) for project in projects for twin in range(2)]
    barrier = threading.Barrier(len(twins), timeout=60)
    # WELCOME-2026 is new: its first activations come all at once, as at a campaign's
    # launch (where a race of the file catalog's counter refused some projects:
    # tests/functional/test_file_catalog_first_redemptions_race.py).

    def walk(project: str, _twin: int) -> list[Answer]:
        """What two browser tabs of one customer, and the payment system's two
        deliveries of one webhook, do at the same moment."""
        answers = []
        barrier.wait()
        order = call("POST", f"{api}/orders", {**member(project), "Idempotency-Key": "cart-1"},
                     {"amount": "20.00"})
        answers.append(order)
        barrier.wait()
        order_id = order.body["id"]
        answers.append(call("POST", f"{api}/orders/{order_id}/payment", PAYMENTS,
                            {"amount": "20.00", "currency": "EUR"}))
        barrier.wait()
        answers.append(call("POST", f"{api}/vouchers", member(project), {"code": "WELCOME-2026"}))
        barrier.wait()
        answers.append(call("POST", f"{api}/vouchers", member(project), {"code": "only-one"}))
        barrier.wait()
        answers.append(call("GET", f"{api}/credits", member(project)))
        return answers

    with ThreadPoolExecutor(max_workers=len(twins)) as pool:
        walks = list(pool.map(lambda each: walk(*each), twins, timeout=180))
    by_project: dict[str, list[list[Answer]]] = {}
    for (project, _twin), answers in zip(twins, walks, strict=True):
        by_project.setdefault(project, []).append(answers)

    every = [answer for answers in walks for answer in answers]
    assert not [a.body for a in every if a.status >= 500]
    # Each request answered once: no answer carries another's request id.
    assert len({a.request_id for a in every}) == len(every)

    only_one_winners = []
    for project, (one, other) in by_project.items():
        if check_customer(project, *zip(one, other, strict=True)):
            only_one_winners.append(project)
    assert len(only_one_winners) == 1

    # The host settles invoices (ovh-credit settle) while customers read and retry.
    # Issued now: after every credit above started (the server's clock is this machine's).
    issued_at = dt.datetime.now(dt.timezone.utc).isoformat()
    invoices = [{"id": "INV-1", "project_id": project, "currency": "EUR",
                 "issued_at": issued_at,
                 "lines": [{"id": "l1", "product": "compute", "amount": "60.00"}]}
                for project in projects]
    stop = threading.Event()

    def customer(project: str) -> list[Answer]:
        seen = []
        while not stop.is_set():
            seen.append(call("GET", f"{api}/credits", member(project)))
            seen.append(call("POST", f"{api}/vouchers", member(project),
                             {"code": "WELCOME-2026"}))
        return seen

    with ThreadPoolExecutor(max_workers=len(projects)) as pool:
        readers = [pool.submit(customer, project) for project in projects]
        try:
            settled = deployment.cli("settle", "-", "-f", "json", stdin=json.dumps(invoices))
        finally:
            stop.set()
        during = [answer for reader in readers for answer in reader.result(timeout=120)]
    assert settled.returncode == 0, settled.stderr
    assert during and {a.status for a in during} == {200}, [a.body for a in during]
    settlements = {s["project_id"]: s for s in json.loads(settled.stdout)}
    assert {s["credit_applied"] for s in settlements.values()} == {"60.00"}

    for project in projects:
        shown = call("GET", f"{api}/settlements?invoice=INV-1", member(project))
        assert shown.status == 200, shown.body
        cli = settlements[project]
        assert {k: shown.body[k] for k in ("invoice_id", "project_id", "total",
                                           "credit_applied", "amount_due")} == {
            k: cli[k] for k in ("invoice_id", "project_id", "total", "credit_applied",
                                "amount_due")}
        assert [(a["line_id"], a["credit_id"], a["amount"]) for a in shown.body["allocations"]
                ] == [(a["line_id"], a["credit_id"], a["amount"]) for a in cli["allocations"]]
        left = call("GET", f"{api}/credits", member(project)).body["credits"]
        holding = Decimal("75.00") if project in only_one_winners else Decimal("70.00")
        assert sum(Decimal(c["available"]) for c in left) == holding - Decimal("60.00")

    audit = deployment.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Several processes served, each on connections of its own; the master (which
    # loaded the application in uWSGI and with --preload) holds none.
    workers = server.workers()
    assert len(workers) == WORKERS
    held = connections_to(deployment.database_port, {server.pid} | workers)
    assert all(len(pids) == 1 for pids in held.values()), held
    holders = {pid for pids in held.values() for pid in pids}
    assert server.pid not in holders
    assert len(holders) >= 2, held


@pytest.mark.parametrize("deployment", DOCUMENTED, indirect=True)
def test_the_log_tells_the_on_call_engineer_what_happened(deployment: Deployment) -> None:
    server = deployment.running()
    api = f"{server.url}/v1"
    workers = server.workers()
    project = new_project()

    created = [call("POST", f"{api}/orders", member(project), {"amount": "10.00"})
               for _ in range(3)]
    assert {a.status for a in created} == {201}
    refused = call("POST", f"{api}/orders", member(project),
                   {"amount": "10.00", "currency": "GBP"})
    assert (refused.status, error_code(refused)) == (400, "cloud_credit.invalid_request")

    # An operator's policy file that is not one: the first request each worker serves
    # after it changed fails; the rules loaded before stay (docs/api.md, Authorization).
    deployment.policy_file.write_text('"cloud_credit:credit:list": [role:admin\n')
    try:
        time.sleep(1.1)  # api/policy.py RECHECK_SECONDS: every worker looks again
        tried = [call("GET", f"{api}/credits", member(project)) for _ in range(4)]
    finally:
        deployment.policy_file.write_text("{}\n")  # fixed: read at each worker's next look
    assert tried[0].status == 500
    failed = [answer for answer in tried if answer.status != 200]
    assert {(a.status, error_code(a)) for a in failed} == {(500, "cloud_credit.internal_error")}

    lines = log_lines(server.log())
    by_request: dict[str, list[Any]] = {}
    for line in lines:
        by_request.setdefault(line.request_id, []).append(line)

    for answer in created:
        infos = [line for line in by_request.get(answer.request_id, [])
                 if line.message.startswith(f"order {answer.body['id']} created")]
        assert len(infos) == 1, server.tail()
        assert (infos[0].level, infos[0].logger) == ("INFO", "ovh_credit_plugin.service.orders")
        assert infos[0].pid in workers
    warnings = by_request.get(refused.request_id, [])
    assert len(warnings) == 1, server.tail()
    (warning,) = warnings
    assert (warning.level, warning.logger) == ("WARNING", "ovh_credit_plugin.service.orders")
    assert warning.message.startswith(f"order refused for project {project}: no purchase "
                                      "limits for GBP; set [cloud_credit] purchase_min_amount")
    for answer in failed:
        assert answer.body["errors"][0]["request_id"] == answer.request_id
        logged = by_request.get(answer.request_id, [])
        assert ("ERROR", "ovh_credit_plugin.api.policy") in {(x.level, x.logger)
                                                             for x in logged}, logged
        (error,) = [x for x in logged if x.logger == "ovh_credit_plugin.api.controllers"]
        assert error.level == "ERROR"
        assert error.message == f"GET /v1/credits failed (request {answer.request_id})"
        assert error.next_line == "Traceback (most recent call last):"
    assert any(x.level == "ERROR" and str(deployment.policy_file) in x.message
               for x in lines)
    # At start, outside any request: the warning that noauth is for development only.
    assert any(x.request_id == "-" and x.level == "WARNING" and "auth_strategy = noauth"
               in x.message for x in lines)


@pytest.mark.parametrize("deployment", DOCUMENTED, indirect=True)
def test_a_graceful_reload_fails_no_request(deployment: Deployment) -> None:
    server = deployment.running()
    reload_while_customers_order(server, f"{server.url}/v1", deployment.url, WORKERS)
    audit = deployment.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.mark.parametrize("deployment", DOCUMENTED, indirect=True)
def test_a_request_with_kilobytes_of_headers_is_answered(deployment: Deployment) -> None:
    # A portal's cookies, a proxy's X-Forwarded-* headers: several kilobytes.
    server = deployment.running()
    headers = {**member(new_project()), "Cookie": "portal=" + "a" * 6000}
    answer = call("GET", f"{server.url}/v1/credits", headers)
    assert (answer.status, answer.body) == (200, {"credits": [], "links": []})


@pytest.mark.parametrize("deployment", DOCUMENTED, indirect=True)
def test_sigterm_lets_the_requests_in_flight_finish(deployment: Deployment) -> None:
    server = deployment.running()
    api = f"{server.url}/v1"
    project = new_project()
    workers = server.workers()
    with ThreadPoolExecutor(max_workers=6) as pool:
        with credits_locked(deployment.url) as in_flight:
            flights = [pool.submit(call, "GET", f"{api}/credits", member(project))
                       for _ in range(6)]
            in_flight(6)
            server.signal(signal.SIGTERM)  # systemd's stop
            time.sleep(0.5)
        answers = [flight.result(timeout=60) for flight in flights]
    assert [a.status for a in answers] == [200] * 6
    assert server.wait(timeout=60) == 0, server.tail()
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("program", ["uwsgi", "gunicorn"])
def test_a_configuration_load_app_refuses_stops_the_server(program: str,
                                                           tmp_path: Path) -> None:
    reason = skip_reason(program)
    if reason:
        pytest.skip(reason)
    site = tmp_path / "srv"
    site.mkdir()
    config = site / "ovh-credit-plugin.conf"
    config.write_text("[api]\nauth_strategy = noauth\nbind_prot = 8890\n")  # bind_port
    write_wsgi_py(site, config)
    server = server_for(program, site=site)
    server.start()
    try:
        status = server.wait(timeout=30)  # both stop within seconds
    except subprocess.TimeoutExpired:
        answer = requests.get(f"{server.url}/v1/credits", headers=member("p"), timeout=10)
        pytest.fail(f"{program} still runs, answering {answer.status_code} {answer.text!r}")
    finally:
        server.stop()
    assert status != 0
    assert "unknown option 'bind_prot' in [api]" in server.log()


def test_a_logging_configuration_of_the_operators_own_is_left_alone(tmp_path: Path) -> None:
    # A wsgi.py that configures logging before load_app: its lines stay as it set them
    # (one handler, its format, its level), none is written twice or in another shape.
    config = tmp_path / "ovh-credit-plugin.conf"
    config.write_text("[api]\nauth_strategy = noauth\n[cloud_credit]\n"
                      f"connection = sqlite:///{tmp_path}/ledger.sqlite\n")
    write_wsgi_py(tmp_path, config)
    wsgi_py = tmp_path / "wsgi.py"
    wsgi_py.write_text(
        "import logging\n"
        "logging.basicConfig(level=logging.ERROR, format='operator: %(levelname)s %(message)s')\n"
        "logging.getLogger('ovh_credit_plugin').setLevel(logging.WARNING)\n"
        + wsgi_py.read_text()
        + "root = logging.getLogger()\n"
        "print(len(root.handlers), logging.getLevelName(root.level))\n")
    done = subprocess.run([sys.executable, str(wsgi_py)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1 ERROR\n"), done.stderr
    assert done.stderr.splitlines() == [
        "operator: WARNING [api] auth_strategy = noauth: callers are whoever the X-Project-Id "
        "and X-Roles headers say; for development only, never expose this server"]


@pytest.mark.parametrize(("setup", "expected"), [
    # A handler on the plugin's own logger only: its lines once, by that handler.
    ("h = logging.StreamHandler(); h.setFormatter(logging.Formatter('plugin: %(message)s'))\n"
     "logging.getLogger('ovh_credit_plugin').addHandler(h)\n", ["plugin: "]),
    # The root level set to DEBUG, no handler: kept (our handler writes the DEBUG lines).
    ("logging.getLogger().setLevel(logging.DEBUG)\n", ["DEBUG"]),
], ids=["plugin handler", "root at DEBUG"])
def test_a_partial_logging_setup_of_the_operators_is_kept(
        tmp_path: Path, setup: str, expected: list[str]) -> None:
    config = tmp_path / "ovh-credit-plugin.conf"
    config.write_text("[api]\nauth_strategy = noauth\n[cloud_credit]\n"
                      f"connection = sqlite:///{tmp_path}/ledger.sqlite\n")
    write_wsgi_py(tmp_path, config)
    wsgi_py = tmp_path / "wsgi.py"
    wsgi_py.write_text("import logging\n" + setup + wsgi_py.read_text()
                       + "print(logging.getLevelName(logging.getLogger().level))\n")
    done = subprocess.run([sys.executable, str(wsgi_py)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    noauth = [line for line in done.stderr.splitlines() if "auth_strategy = noauth" in line]
    assert len(noauth) == 1, done.stderr  # written once, not by two handlers
    if expected == ["DEBUG"]:
        assert done.stdout == "DEBUG\n"
    else:
        assert noauth[0].startswith(expected[0]), noauth
