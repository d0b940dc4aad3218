"""CloudKitty's API, our REST API mounted in it, under uWSGI with several processes.

Operators serve CloudKitty's API as its docs and devstack do: its WSGI script
(``cloudkitty/wsgi/api.py``, ``cloudkitty.api.app.build_wsgi_app``) under uWSGI,
several processes. One server for the module, as an operator would start it::

    uwsgi --master --need-app --processes 3 --threads 4 --http-socket 127.0.0.1:PORT \\
          --wsgi-file .../cloudkitty/wsgi/api.py --pyargv "--config-file cloudkitty.conf"

(and docs/api.md's ``--buffer-size``, ``--hook-master-start`` and, for the
pyuwsgi wheel, ``--binary-path``), on one ``cloudkitty.conf``: ``auth_strategy =
noauth``, CloudKitty's database on MariaDB and the ledger on PostgreSQL, both
created by ``cloudkitty-dbsync upgrade`` (CloudKitty 25's hashmap migrations
fail on PostgreSQL), storage v1, the ``file`` voucher catalog, CloudKitty's
``[DEFAULT] log_file``.

uWSGI's master loads the application before it forks its workers (no
``--lazy-apps``), and CloudKitty's load builds every rating processor and its
API controller, ours included; uWSGI runs no ``os.register_at_fork`` hook in
its workers. What is checked, with the real thing: nothing of ours is open in
the master after the load (no ledger connection, no thread, no file of ours),
so nothing is shared by the workers; many clients at once get right answers,
each once, and the ledger audits clean; a graceful reload (SIGHUP) fails no
request; our log lines are in CloudKitty's log file with the request id each
answer carried.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.request_ids import REQUEST_ID_PATTERN
from tests.integration.conftest import HAVE_CLOUDKITTY, REQUIRE_CLOUDKITTY
from tests.support import dbservers
from tests.support.api_stack import free_port
from tests.support.ledgers import ServerPool, new_database_url, write_config
from tests.support.wsgi_servers import (
    DOC_VENV_PYTHON,
    PAYMENTS,
    VOUCHERS,
    Answer,
    Server,
    call,
    check_customer,
    children,
    connections_to,
    doc_pyuwsgi_option,
    error_code,
    is_pyuwsgi,
    ledger_sessions,
    member,
    new_project,
    reload_while_customers_order,
)

BIN = Path(sys.executable).parent


def _missing() -> str | None:
    if not HAVE_CLOUDKITTY:
        return "cloudkitty is not installed (pip install -e '.[cloudkitty]')"
    if not (BIN / "uwsgi").exists():
        return "uwsgi is not installed in this environment (pip install pyuwsgi)"
    if not Path("/proc/self/fd").is_dir():
        return "no /proc: the server's processes cannot be inspected"
    return None


MISSING = _missing()
if MISSING and not REQUIRE_CLOUDKITTY:
    pytest.skip(MISSING, allow_module_level=True)

pytestmark = [pytest.mark.integration]

WORKERS = 3
THREADS = 4
BASE = "/v1/rating/module_config/cloud_credit"
#: What uWSGI logs once the master loaded the application.
LOADED = "(default app)"
#: CloudKitty's rating:get_module is role:admin.
ADMIN = {"X-Project-Id": "admin-project", "X-User-Id": "operator", "X-Roles": "admin"}


# -- the deployment -------------------------------------------------------------------


@dataclass
class Loaded:
    """What the server's processes held once the application was loaded, before any
    request of ours: per process, its threads and its files (not sockets); the
    connections to the ledger's database (/proc, and what the database counts)."""

    master: int
    workers: set[int]
    threads: dict[int, int]
    files: dict[int, set[str]]
    ledger_held: dict[int, set[int]]
    ledger_sessions: int


@dataclass
class Stack:
    site: Path
    config: Path
    ledger_url: str
    cloudkitty_url: str
    log_file: Path  # CloudKitty's [DEFAULT] log_file
    server: Server
    loads: list[Loaded] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{self.server.url}{BASE}"

    @property
    def ledger_port(self) -> int:
        return int(sa.make_url(self.ledger_url).port or 0)

    def record_load(self) -> None:
        master = self.server.pid
        workers = self.server.workers()
        pids = {master} | workers
        self.loads.append(Loaded(
            master=master, workers=workers,
            threads={pid: _threads(pid) for pid in pids},
            files={pid: _files(pid) for pid in pids},
            ledger_held=connections_to(self.ledger_port, pids),
            ledger_sessions=ledger_sessions(self.ledger_url),
        ))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ovh-credit --config-file cloudkitty.conf ARGS``, as docs/cloudkitty.md runs it."""
        return subprocess.run([str(BIN / "ovh-credit"), "--config-file", str(self.config),
                               *args], capture_output=True, text=True, timeout=120,
                              check=False)


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def _files(pid: int) -> set[str]:
    """The regular files ``pid`` holds open (not its sockets, pipes, devices)."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.startswith("/dev/"):
            found.add(target)
    return found


def _cloudkitty_script() -> str:
    """CloudKitty's WSGI script: what devstack's uWSGI and Apache serve."""
    spec = importlib.util.find_spec("cloudkitty.wsgi.api")
    assert spec is not None and spec.origin is not None
    return spec.origin


def _paste_ini() -> Path:
    """CloudKitty's API pipeline (its etc/cloudkitty/api_paste.ini, shipped with its tests)."""
    spec = importlib.util.find_spec("cloudkitty")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "tests" / "gabbi" / "gabbi_paste.ini"


def _write_config(site: Path, *, ledger_url: str, cloudkitty_url: str) -> Path:
    vouchers = site / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    paste = site / "api_paste.ini"
    shutil.copyfile(_paste_ini(), paste)
    return write_config(
        site / "cloudkitty.conf", ledger_url, vouchers,
        "[DEFAULT]\n"
        "transport_url = fake://\n"
        "auth_strategy = noauth\n"
        f"api_paste_config = {paste}\n"
        f"log_file = {site / 'cloudkitty-api.log'}\n"
        "debug = False\n"
        f"[database]\nconnection = {cloudkitty_url}\n"
        "[storage]\nversion = 1\nbackend = sqlalchemy\n")


def _uwsgi(site: Path, config: Path) -> Server:
    port = free_port()
    argv = [str(BIN / "uwsgi"), "--master", "--need-app",
            "--processes", str(WORKERS), "--threads", str(THREADS),
            "--http-socket", f"127.0.0.1:{port}",
            "--wsgi-file", _cloudkitty_script(),
            # CloudKitty's script parses sys.argv (service.prepare_service()).
            "--pyargv", f"--config-file {config}",
            # docs/api.md's: headers up to 64 KiB; SIGTERM lets requests finish.
            "--buffer-size", "65535",
            "--hook-master-start", "unix_signal:15 gracefully_kill_them_all"]
    if is_pyuwsgi():  # a reload executes uWSGI again: with this virtualenv's python
        argv += [word.replace(DOC_VENV_PYTHON, sys.executable)
                 for word in doc_pyuwsgi_option()]
    return Server(argv=argv, port=port, log_path=site / "uwsgi.log", cwd=site.parent,
                  env={**os.environ, "HOME": str(site)})


def _drop(pool: ServerPool, url: str) -> None:
    parsed = sa.make_url(url)
    kind = "postgresql" if parsed.get_backend_name() == "postgresql" else "mariadb"
    dbservers.drop_database(pool.get(kind), str(parsed.database))


@pytest.fixture(scope="module")
def stack(server_pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if MISSING:  # OVH_CREDIT_REQUIRE_CLOUDKITTY=1 (CI): a failure, not a skip
        pytest.fail(MISSING, pytrace=False)
    site = tmp_path_factory.mktemp("cloudkitty-api") / "srv"
    site.mkdir()
    cloudkitty_url = new_database_url("mariadb", server_pool, site)
    ledger_url = new_database_url("postgresql", server_pool, site)
    try:
        config = _write_config(site, ledger_url=ledger_url, cloudkitty_url=cloudkitty_url)
        # CloudKitty's tables on MariaDB and the ledger on PostgreSQL (docs/cloudkitty.md 3).
        done = subprocess.run([str(BIN / "cloudkitty-dbsync"), "--config-file", str(config),
                               "upgrade"], capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        server = _uwsgi(site, config)
        made = Stack(site, config, ledger_url, cloudkitty_url, site / "cloudkitty-api.log",
                     server)
        server.start()
        try:
            server.wait_until_answering()  # CloudKitty's version list, at /
            server.wait_until_loaded(WORKERS, LOADED, in_workers=False)
            made.record_load()
            yield made
        finally:
            server.stop()
    finally:
        _drop(server_pool, ledger_url)
        _drop(server_pool, cloudkitty_url)


# -- helpers ------------------------------------------------------------------------------


#: oslo.log's lines (CloudKitty's log_file): time, pid, level, logger, [context], message.
OSLO_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (?P<pid>\d+) "
                       r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>\S+) "
                       r"\[(?P<context>[^\]]*)\] (?P<message>.*)$")


@dataclass(frozen=True)
class OsloLine:
    pid: int
    level: str
    logger: str
    request_id: str | None
    message: str


def oslo_lines(text: str) -> list[OsloLine]:
    found = []
    for line in text.splitlines():
        match = OSLO_LINE.match(line)
        if match:
            request_id = re.search(REQUEST_ID_PATTERN, match["context"])
            found.append(OsloLine(int(match["pid"]), match["level"], match["logger"],
                                  request_id.group(0) if request_id else None,
                                  match["message"]))
    return found


# -- the tests ----------------------------------------------------------------------------


def test_loading_cloudkittys_api_opens_nothing_of_ours_before_the_fork(stack: Stack) -> None:
    loaded = stack.loads[0]
    assert len(loaded.workers) == WORKERS
    # CloudKitty's load built our processor and controllers in the master: no ledger
    # connection anywhere (none for the workers to share), none on the server's side.
    assert loaded.ledger_held == {}
    assert loaded.ledger_sessions == 0
    # No thread in the master but its own: nothing of ours (nor of CloudKitty's) runs
    # there, whose state a worker would inherit without the thread.
    assert loaded.threads[loaded.master] == 1, loaded.threads
    # No file of ours (the voucher catalog's, a policy file): the only files the
    # processes hold are the two logs, uWSGI's and CloudKitty's [DEFAULT] log_file.
    logs = {str(stack.server.log_path), str(stack.log_file)}
    assert loaded.files == dict.fromkeys({loaded.master} | loaded.workers, logs), loaded.files


def test_customers_and_the_payment_system_at_once_through_cloudkittys_api(stack: Stack) -> None:
    server = stack.server
    base = stack.base
    projects = [new_project() for _ in range(6)]
    twins = [(project, twin) for project in projects for twin in range(2)]  # 12 clients
    barrier = threading.Barrier(len(twins), timeout=60)
    # WELCOME-2026 is new: its first activations come all at once (a campaign's launch).

    def walk(project: str, _twin: int) -> list[Answer]:
        """Two browser tabs of one customer and two deliveries of one payment webhook."""
        answers = []
        barrier.wait()
        order = call("POST", f"{base}/orders", {**member(project), "Idempotency-Key": "cart-1"},
                     {"amount": "20.00"})
        answers.append(order)
        barrier.wait()
        answers.append(call("POST", f"{base}/orders/{order.body['id']}/payment", PAYMENTS,
                            {"amount": "20.00", "currency": "EUR"}))
        barrier.wait()
        answers.append(call("POST", f"{base}/vouchers", member(project),
                            {"code": "WELCOME-2026"}))
        barrier.wait()
        answers.append(call("POST", f"{base}/vouchers", member(project), {"code": "only-one"}))
        barrier.wait()
        answers.append(call("GET", f"{base}/credits", member(project)))
        answers.append(call("GET", f"{base}/orders", member(project)))
        # CloudKitty's own API, on its MariaDB database, in the same workers.
        answers.append(call("GET", f"{server.url}/v1/rating/modules/cloud_credit", ADMIN))
        return answers

    with ThreadPoolExecutor(max_workers=len(twins)) as pool:
        walks = list(pool.map(lambda each: walk(*each), twins, timeout=120))
    every = [answer for answers in walks for answer in answers]
    assert not [a.body for a in every if a.status >= 500]
    # Each request answered once: no answer carries another's request id.
    assert len({a.request_id for a in every}) == len(every)

    by_project: dict[str, list[list[Answer]]] = {}
    for (project, _twin), answers in zip(twins, walks, strict=True):
        by_project.setdefault(project, []).append(answers)
    winners = []
    for project, (one, other) in by_project.items():
        *walked, listed, modules = zip(one, other, strict=True)
        if check_customer(project, *walked):
            winners.append(project)
        order_id = walked[0][0].body["id"]
        assert [[o["id"] for o in a.body["orders"]] for a in listed] == [[order_id]] * 2
        assert {(a.status, a.body["module_id"]) for a in modules} == {(200, "cloud_credit")}
    assert len(winners) == 1

    audit = stack.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Several workers served, each on ledger connections of its own; the master,
    # which loaded CloudKitty's application, holds none.
    workers = server.workers()
    held = connections_to(stack.ledger_port, {server.pid} | workers)
    assert all(len(pids) == 1 for pids in held.values()), held
    holders = {pid for pids in held.values() for pid in pids}
    assert server.pid not in holders
    assert holders <= workers and len(holders) >= 2, (held, workers)


def test_our_log_lines_are_in_cloudkittys_log_with_the_answers_request_id(stack: Stack) -> None:
    base = stack.base
    project = new_project()
    created = [call("POST", f"{base}/orders", member(project), {"amount": "10.00"})
               for _ in range(3)]
    assert {a.status for a in created} == {201}, [a.body for a in created]
    refused = call("POST", f"{base}/orders", member(project),
                   {"amount": "10.00", "currency": "GBP"})
    assert (refused.status, error_code(refused)) == (400, "cloud_credit.invalid_request")
    workers = stack.server.workers()

    lines = oslo_lines(stack.log_file.read_text(errors="replace"))
    ours = [line for line in lines if line.logger.startswith("ovh_credit_plugin")]
    for answer in created:
        found = [line for line in ours
                 if line.message.startswith(f"order {answer.body['id']} created")]
        assert len(found) == 1, "\n".join(map(str, ours[-20:]))
        assert (found[0].level, found[0].logger) == ("INFO", "ovh_credit_plugin.service.orders")
        assert found[0].request_id == answer.request_id
        assert found[0].pid in workers
    warnings = [line for line in ours if line.request_id == refused.request_id]
    assert [(w.level, w.logger) for w in warnings] == [
        ("WARNING", "ovh_credit_plugin.service.orders")], warnings
    assert warnings[0].message.startswith(f"order refused for project {project}: no purchase "
                                          "limits for GBP")


def test_a_graceful_reload_fails_no_request(stack: Stack) -> None:
    server = stack.server
    reload_while_customers_order(server, stack.base, stack.ledger_url, WORKERS)
    # The master loaded CloudKitty's application again: still none of ours in it.
    held = connections_to(stack.ledger_port, {server.pid} | children(server.pid))
    assert server.pid not in {pid for pids in held.values() for pid in pids}
    audit = stack.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
