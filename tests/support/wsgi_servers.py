"""The REST API under the production WSGI servers docs/api.md names: uWSGI and gunicorn.

The commands and the ``wsgi.py`` are read from docs/api.md itself, so that what
the tests run is what an operator copies: only the port and the paths change.
The servers are the ``uwsgi`` (the pyuwsgi wheel, or a uWSGI built from the
``uwsgi`` package) and ``gunicorn`` programs of this environment. Without them
the tests skip, saying why; with ``OVH_CREDIT_REQUIRE_API=1`` (CI) that is a
failure.

Also here: what ``/proc`` says about a server's processes (which holds which
connection to the ledger's database), and the log lines of the application as
``load_app`` writes them (oslo.log's shape: time, process id, level, logger,
request id, message).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
import sqlalchemy as sa

from tests.support.api_stack import REQUIRE_API, free_port
from tests.support.process import ROOT

BIN = Path(sys.executable).parent
API_DOC = ROOT / "docs" / "api.md"

#: The paths and the address docs/api.md writes, replaced by the test's own.
DOC_ADDRESS = "127.0.0.1:8890"
DOC_SITE = "/srv/ovh-credit-api"
DOC_WSGI = f"{DOC_SITE}/wsgi.py"
DOC_VENV_PYTHON = f"{DOC_SITE}/venv/bin/python"
DOC_CONFIG = "/etc/ovh-credit-plugin/ovh-credit-plugin.conf"

SERVERS = ("uwsgi", "gunicorn")


def skip_reason(server: str) -> str | None:
    """Why ``server``'s program cannot run here, or None; a failure under REQUIRE_API."""
    if not (BIN / server).exists():
        package = "pyuwsgi" if server == "uwsgi" else "gunicorn"
        reason = (f"{server} is not installed in this environment (pip install {package}): "
                  "docs/api.md's production command cannot be run")
        if REQUIRE_API:
            raise RuntimeError(f"OVH_CREDIT_REQUIRE_API=1 but {reason}")
        return reason
    if not Path("/proc/self/fd").is_dir():
        return "no /proc: the worker processes' connections cannot be inspected"
    return None


# -- what docs/api.md writes ---------------------------------------------------------


def _doc() -> str:
    return API_DOC.read_text(encoding="utf-8")


def _production_section() -> str:
    text = _doc()
    start = text.index("In production run the same application under a real WSGI server")
    end = text.index("The application, outermost first", start)
    return text[start:end]


def doc_wsgi_py() -> str:
    """The ``wsgi.py`` docs/api.md writes (its fenced ``python`` block)."""
    found = re.search(r"```python\n(# /srv/ovh-credit-api/wsgi\.py\n.*?)```",
                      _production_section(), re.S)
    assert found, "docs/api.md has no wsgi.py block"
    return found.group(1)


def doc_command(server: str) -> list[str]:
    """The command line docs/api.md writes for ``server``, as words."""
    section = _production_section()
    if server == "uwsgi":
        blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
        lines = [block.replace("\\\n", " ") for block in blocks]
        commands = [line.strip() for block in lines for line in block.splitlines()
                    if line.strip().startswith("uwsgi ")]
    else:
        commands = [span for span in re.findall(r"`([^`\n]+)`", section)
                    if span.startswith("gunicorn ")]
    assert len(commands) == 1, (server, commands)
    return shlex.split(commands[0])


def doc_pyuwsgi_option() -> list[str]:
    """What docs/api.md adds for uWSGI from the pyuwsgi wheel in a virtualenv."""
    spans = [span for span in re.findall(r"`([^`\n]+)`", _production_section())
             if span.startswith("--binary-path ")]
    assert len(spans) == 1, spans
    return shlex.split(spans[0])


def is_pyuwsgi() -> bool:
    """Whether ``uwsgi`` here is the pyuwsgi wheel's (a Python script, not a binary)."""
    return importlib.util.find_spec("pyuwsgi") is not None


# -- a deployment ----------------------------------------------------------------------


def localized(words: list[str], *, port: int, site: Path) -> list[str]:
    """The doc's words with this test's program, port and paths."""
    replaced = [word.replace(DOC_ADDRESS, f"127.0.0.1:{port}")
                .replace(DOC_VENV_PYTHON, sys.executable).replace(DOC_SITE, str(site))
                for word in words]
    replaced[0] = str(BIN / replaced[0])
    return replaced


@dataclass
class Server:
    """A WSGI server process (a master and its workers), its log in ``log_path``."""

    argv: list[str]
    port: int
    log_path: Path
    cwd: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _log_start: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_start = self._log.tell()
        # A session of its own: the whole tree is ended by its id in stop().
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_answering(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv[0]} exited with {self.process.returncode}"
                                     f":\n{self.tail()}")
            try:
                if requests.get(self.url + "/", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not answering after {timeout}s:\n{self.tail()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def workers(self) -> set[int]:
        """The master's children (its workers) now."""
        return children(self.pid)

    def wait_for_new_workers(self, old: set[int], count: int, timeout: float = 60) -> set[int]:
        """Until ``count`` workers run, none of ``old``; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.workers()
            if len(now) == count and not now & old:
                return now
            assert time.monotonic() < deadline, (old, now, self.tail())
            time.sleep(0.05)

    def log(self) -> str:
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_since_start(self) -> str:
        return self.log()[self._log_start:]

    def wait_until_loaded(self, count: int, marker: str, *, in_workers: bool,
                          timeout: float = 60) -> None:
        """Until ``count`` workers run, the application loaded: ``marker`` logged once
        by each worker (``in_workers``: each loads it), or once by the master."""
        deadline = time.monotonic() + timeout
        while (len(self.workers()) != count
               or self.log_since_start().count(marker) < (count if in_workers else 1)):
            assert self.running(), self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.05)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """Ended for sure: SIGINT to the master (both servers stop at once on it), then
        SIGKILL to its whole session if anything of it is left."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        if self._log is not None:
            self._log.close()


def server_for(server: str, *, site: Path, extra: list[str] | None = None) -> Server:
    """docs/api.md's command for ``server`` serving ``site``/wsgi.py on a free port.

    uWSGI from the pyuwsgi wheel also gets the option docs/api.md adds for it.
    Started from another directory than ``site``: an operator's shell or systemd
    unit is not in it. gunicorn's control socket goes under ``site`` (HOME).
    """
    port = free_port()
    words = doc_command(server)
    if server == "uwsgi" and is_pyuwsgi():
        words += doc_pyuwsgi_option()
    argv = localized(words, port=port, site=site) + (extra or [])
    env = {**os.environ, "HOME": str(site)}
    return Server(argv=argv, port=port, log_path=site / f"{server}.log", cwd=site.parent,
                  env=env)


# -- /proc -----------------------------------------------------------------------------


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _established_to(port: int) -> set[int]:
    """Inodes of this network namespace's established TCP connections to ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":
                    inodes.add(int(fields[9]))
    return inodes


def connections_to(port: int, pids: set[int]) -> dict[int, set[int]]:
    """For each of ``pids``' connections to ``port`` (its socket's inode): the pids holding it."""
    wanted = _established_to(port)
    held: dict[int, set[int]] = {}
    for pid in pids:
        for inode in _socket_inodes(pid) & wanted:
            held.setdefault(inode, set()).add(pid)
    return held


def ledger_sessions(url: str) -> int:
    """The sessions the ledger's PostgreSQL database has, but the one asking."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one())
    finally:
        engine.dispose()


# -- the application's log lines ------------------------------------------------------------


LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<pid>\d+) "
                  r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>\S+) "
                  r"\[(?P<request_id>[^\]]+)\] (?P<message>.*)$")


@dataclass(frozen=True)
class LogLine:
    pid: int
    level: str
    logger: str
    request_id: str
    message: str
    next_line: str


def log_lines(text: str) -> list[LogLine]:
    """The lines of ``text`` written in load_app's shape (the server's own are not)."""
    raw = text.splitlines()
    found = []
    for number, line in enumerate(raw):
        match = LINE.match(line)
        if match:
            following = raw[number + 1] if number + 1 < len(raw) else ""
            found.append(LogLine(int(match["pid"]), match["level"], match["logger"],
                                 match["request_id"], match["message"], following))
    return found


# -- the walks' clients: customers and the payment system, as noauth headers ----------------

VOUCHERS: dict[str, Any] = {"vouchers": [
    {"code": "WELCOME-2026", "amount": "50.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": None, "validity_days": 90, "products": [],
     "max_redemptions": None, "redemptions": 0, "description": "Welcome voucher"},
    {"code": "ONLY-ONE", "amount": "5.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": None, "validity_days": 30, "products": [],
     "max_redemptions": 1, "redemptions": 0, "description": "One project only"},
]}

PAYMENTS = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}


def member(project: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": f"user-{project}", "X-Roles": "member,reader"}


def new_project() -> str:
    return uuid.uuid4().hex


@dataclass
class Answer:
    status: int
    body: Any
    request_id: str


def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> Answer:
    response = requests.request(method, url, headers=headers, json=body, timeout=60)
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    return Answer(response.status_code, response.json(),
                  response.headers["X-Openstack-Request-Id"])


def error_code(answer: Answer) -> str:
    return str(answer.body["errors"][0]["code"])


@contextmanager
def credits_locked(url: str) -> Iterator[Callable[[int], None]]:
    """The credits table locked by another session: requests that read it wait in the
    server (in flight) until the block ends. Yields ``in_flight(count)``, which returns
    once ``count`` requests wait on that lock (not a sleep: a loaded machine is slow)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def waiting() -> int:
        # A new transaction each time: pg_stat_activity is read once per transaction.
        with engine.connect() as watcher:
            return int(watcher.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one())

    def in_flight(count: int) -> None:
        deadline = time.monotonic() + 60
        while waiting() < count:
            assert time.monotonic() < deadline, f"{count} requests never reached the lock"
            time.sleep(0.02)

    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            conn.execute(sa.text("LOCK TABLE cloud_credit_credits IN ACCESS EXCLUSIVE MODE"))
            try:
                yield in_flight
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def check_customer(project: str, orders: tuple[Answer, Answer],
                   payments: tuple[Answer, Answer], welcomes: tuple[Answer, Answer],
                   only_ones: tuple[Answer, Answer], lists: tuple[Answer, Answer]) -> bool:
    """What a walk's customer (two tabs at once) and the payment system (two deliveries of
    one webhook) were answered, step by step; whether this project won ONLY-ONE."""
    # The same Idempotency-Key and body: one order, made once (201), found once (200).
    assert sorted(a.status for a in orders) == [200, 201], [a.body for a in orders]
    assert orders[0].body == orders[1].body
    order = orders[0].body
    assert (order["project_id"], order["amount"], order["currency"], order["status"]) == (
        project, "20.00", "EUR", "pending")
    assert order["payment_url"] == f"https://pay.example/orders/{order['id']}"
    # Two deliveries of one payment: one credit.
    assert [a.status for a in payments] == [200, 200], [a.body for a in payments]
    assert payments[0].body["credit_id"] == payments[1].body["credit_id"] is not None
    assert {a.body["status"] for a in payments} == {"paid"}
    purchased = payments[0].body["credit_id"]
    # The same code twice: one activation (201), then that credit (200).
    assert sorted(a.status for a in welcomes) == [200, 201], [a.body for a in welcomes]
    assert welcomes[0].body == welcomes[1].body
    welcome = welcomes[0].body
    assert (welcome["kind"], welcome["total"], welcome["project_id"]) == (
        "voucher", "50.00", project)
    # A single-use code, raced by every project's two tabs.
    won = {a.status for a in only_ones} != {409}
    if won:
        assert sorted(a.status for a in only_ones) == [200, 201], [a.body for a in only_ones]
        assert only_ones[0].body == only_ones[1].body
        # Vouchers first, the sooner end first (30 days, then 90).
        expected = [only_ones[0].body["id"], welcome["id"], purchased]
    else:
        assert {error_code(a) for a in only_ones} == {"cloud_credit.voucher_redeemed"}
        expected = [welcome["id"], purchased]
    # Listed once each, nothing twice.
    assert [a.status for a in lists] == [200, 200]
    assert lists[0].body == lists[1].body
    assert [c["id"] for c in lists[0].body["credits"]] == expected
    assert all(c["available"] == c["total"] for c in lists[0].body["credits"])
    return won


def reload_while_customers_order(server: Server, base: str, ledger_url: str,
                                 workers: int) -> None:
    """SIGHUP while six customers order and list credits in a loop, six requests in flight
    (waiting on the ledger's lock): no request fails, ``workers`` new workers serve, and
    every order answered 201 is in the ledger, once."""
    project = new_project()
    old = server.workers()
    stop = threading.Event()
    failures: list[str] = []

    def customer() -> list[Answer]:
        seen = []
        while not stop.is_set():
            try:
                seen.append(call("POST", f"{base}/orders", member(project), {"amount": "5.00"}))
                seen.append(call("GET", f"{base}/credits", member(project)))
            except Exception as error:  # any failure of a request is the test's finding
                failures.append(repr(error))
        return seen

    with ThreadPoolExecutor(max_workers=6) as pool:
        try:
            with credits_locked(ledger_url) as in_flight:
                customers = [pool.submit(customer) for _ in range(6)]
                in_flight(6)
                server.signal(signal.SIGHUP)
                time.sleep(1.0)
            new = server.wait_for_new_workers(old, workers)
            time.sleep(0.3)  # served by the new workers too
        finally:
            stop.set()
        answers = [answer for each in customers for answer in each.result(timeout=120)]
    assert failures == []
    assert server.running()
    assert len(new) == workers
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 201}, [a.body for a in answers if a.status >= 300]
    made = {a.body["id"] for a in answers if a.status == 201}
    assert statuses[201] == len(made) > 0
    listed = call("GET", f"{base}/orders?limit=1000", member(project)).body["orders"]
    assert sorted(order["id"] for order in listed) == sorted(made)
