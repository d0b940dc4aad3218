"""The real ``cloudkitty-processor`` daemon, set up as docs/cloudkitty.md tells an operator.

Nothing here is CloudKitty in-process: ``cloudkitty-dbsync upgrade`` (which
creates the ledger too, docs/cloudkitty.md step 3), ``cloudkitty-storage-init``
and ``cloudkitty-processor`` run as commands on one ``cloudkitty.conf``:

* a real Prometheus (Debian's ``prometheus``) serving four past hours of two
  gauges carrying a ``project_id`` label, backfilled with ``promtool``, read by
  CloudKitty's ``prometheus`` collector;
* ``[fetcher] backend = source`` with three scopes, ``[orchestrator]
  max_workers = 2`` (cotyledon forks them, plus one reprocessing worker) and
  tooz ``file://`` coordination locking each scope;
* CloudKitty's database (and its v1 storage) on MariaDB: CloudKitty 25's
  hashmap migrations fail on PostgreSQL under SQLAlchemy 2 (and on a SQLite
  file); the ledger on PostgreSQL, a database of its own, written by both workers;
* hashmap (priority 100) pricing, cloud_credit (priority 1), enabled through
  CloudKitty's own db api; ``transport_url = fake://`` (the RPC server only
  needs to start).

CloudKitty starts a scope without a state at the beginning of the month, one
period after the other: each scope's state (``cloudkitty_storage_states``, the
row docs/cloudkitty.md's section 7 sets) is set one period before the first
backfilled hour, so that the processor finds exactly four periods per scope to
rate at once. A module fixture walks the whole story once (about 10 s); each
test checks one part of what it recorded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import HAVE_CLOUDKITTY, REQUIRE_CLOUDKITTY
from tests.support import dbservers
from tests.support import prometheus as prom
from tests.support.ledgers import ServerPool, database_checksum, new_database_url

if not HAVE_CLOUDKITTY and not REQUIRE_CLOUDKITTY:
    pytest.skip("cloudkitty is not installed (pip install -e '.[cloudkitty]')",
                allow_module_level=True)
if os.environ.get("OVH_CREDIT_MUTATION") == "1":
    # ~10 s per mutant, and the money rules run in the daemon's processes.
    pytest.skip("the daemon walk is left out of mutation runs", allow_module_level=True)
MISSING = (None if prom.binaries() is not None else
           f"prometheus/promtool are not installed (apt-get install -y {prom.DEBIAN_PACKAGE})")
if MISSING and not REQUIRE_CLOUDKITTY:
    pytest.skip(MISSING, allow_module_level=True)

pytestmark = [pytest.mark.integration]

D = Decimal
UTC = dt.timezone.utc
PERIOD = 3600
PERIODS = 4
# v1 storage's tenant_id is String(32), like a Keystone project id.
FULL = "5a3bd0c1e2f34a5b9c8d7e6f5a4b3c21"  # credit pays every period
PARTIAL = "6b4ce1d2f3a45b6c0d9e8f7a6b5c4d32"  # credit runs out in the second period
NONE = "7c5df2e3a4b56c7d1e0f9a8b7c6d5e43"  # no credit: list price
SCOPES = (FULL, PARTIAL, NONE)
CREDIT = {FULL: D("100.00"), PARTIAL: D("10.00")}
# Hashmap prices (exact on MariaDB: its cost column is a DECIMAL).
PRICES = {"instance": D("1.5"), "image.size": D("0.01")}
# Per scope and metric type, the gauge's value in hour h of the backfill: f(h).
USAGE = {
    FULL: {"instance": (2, 1), "image.size": (150, 10)},
    PARTIAL: {"instance": (3, 1), "image.size": (200, 20)},
    NONE: {"instance": (1, 1)},
}
GAUGES = {"instance": "ck_instances", "image.size": "ck_image_size_mib"}
METRICS_YML = """
metrics:
  ck_instances:
    alt_name: instance
    unit: instance
    groupby: [id, project_id]
    metadata: [flavor_name]
    extra_args:
      aggregation_method: max
  ck_image_size_mib:
    alt_name: image.size
    unit: MiB
    groupby: [id, project_id]
    metadata: [container_format]
    extra_args:
      aggregation_method: max
"""
# What CloudKitty's db api sets up, in a process of its own (CloudKitty's
# enginefacade is global: the in-process tests' conftest configures it for them).
SETUP_CLOUDKITTY = """
import datetime as dt, sys, warnings
from decimal import Decimal
warnings.simplefilter("ignore")
from cloudkitty import service
service.prepare_service([sys.argv[0], "--config-file", sys.argv[1]])
from cloudkitty import storage_state
from cloudkitty.db import api as ck_db_api
from cloudkitty.rating.hash.db import api as hash_db_api
modules = ck_db_api.get_instance().get_module_info()
modules.set_state("hashmap", True)
modules.set_priority("hashmap", 100)   # the higher number runs first
modules.set_state("cloud_credit", True)
modules.set_priority("cloud_credit", 1)
hashmap = hash_db_api.get_instance()
for name, cost in (("instance", "1.5"), ("image.size", "0.01")):
    svc = hashmap.create_service(name)
    hashmap.create_mapping(Decimal(cost), map_type="flat", service_id=svc.service_id,
                           start=dt.datetime(2000, 1, 1), created_by="tests")
state = dt.datetime.fromisoformat(sys.argv[2])
for scope in sys.argv[3:]:
    storage_state.StateManager().set_last_processed_timestamp(scope, state)
"""
TIMEOUT = 60.0  # seconds for the processor to rate what is due (about 2 s measured)


# -- what the backfill makes due -------------------------------------------------------


def quantity(scope: str, metric_type: str, hour: int) -> int:
    first, step = USAGE[scope][metric_type]
    return first + step * hour


def list_price(scope: str, metric_type: str, hour: int) -> Decimal:
    return PRICES[metric_type] * quantity(scope, metric_type, hour)


def period_price(scope: str, hour: int) -> Decimal:
    return sum((list_price(scope, t, hour) for t in USAGE[scope]), D(0))


def credit_applied(scope: str) -> list[Decimal]:
    """Per period, what the scope's one credit pays: the periods in order, until it runs out."""
    left = CREDIT.get(scope, D(0))
    paid = []
    for hour in range(PERIODS):
        amount = min(left, period_price(scope, hour))
        paid.append(amount)
        left -= amount
    return paid


# -- the walk ---------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the daemon: what its log file gained, its exit, its sockets."""

    log: str
    returncode: int | None
    sockets: dict[int, dict[int, int]]  # pid -> {TCP socket inode: remote port}
    master: int


@dataclass
class Walk:
    base: dt.datetime  # start of the first rated period (UTC)
    conf: Path
    ledger_url: str
    credit_ids: dict[str, int]
    first: Run
    restart: Run
    rows_first: list[tuple[Any, ...]]
    rows_restart: list[tuple[Any, ...]]
    states_restart: dict[str, dt.datetime]
    ledger_first: str
    ledger_restart: str

    def period(self, hour: int) -> tuple[dt.datetime, dt.datetime]:
        start = self.base + dt.timedelta(seconds=hour * PERIOD)
        return start, start + dt.timedelta(seconds=PERIOD)

    def key(self, scope: str, hour: int) -> str:
        start, end = self.period(hour)
        return f"cloudkitty/{scope}/{iso(start)}/{iso(end)}"


def iso(at: dt.datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def naive(at: dt.datetime) -> str:
    """As CloudKitty stores a time: UTC, without a zone (docs/cloudkitty.md)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _command(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _env() -> dict[str, str]:
    # UTC: CloudKitty keeps local times in its v1 storage rows; read as UTC here.
    return {**os.environ, "TZ": "UTC"}


def _run_tool(name: str, conf: Path, *args: str) -> None:
    done = subprocess.run([_command(name), "--config-file", str(conf), *args],
                          capture_output=True, text=True, timeout=120, check=False, env=_env())
    assert done.returncode == 0, f"{name} {' '.join(args)} failed:\n{done.stderr[-3000:]}"


def backfill_families(base: dt.datetime) -> dict[str, list[prom.Series]]:
    """One sample a minute, half a minute off the period boundaries, for every scope."""
    start = int(base.timestamp())
    families: dict[str, list[prom.Series]] = {gauge: [] for gauge in GAUGES.values()}
    for scope, types in USAGE.items():
        for metric_type in types:
            labels = {"project_id": scope, "id": f"{metric_type}-{scope[:4]}",
                      "flavor_name": "m1.small", "container_format": "bare"}
            samples = [(at, quantity(scope, metric_type, (at - start) // PERIOD))
                       for at in range(start + 30, start + PERIODS * PERIOD, 60)]
            families[GAUGES[metric_type]].append(prom.Series(labels, samples))
    return families


def write_conf(directory: Path, *, cloudkitty_url: str, ledger_url: str,
               prometheus_url: str) -> Path:
    metrics = directory / "metrics.yml"
    metrics.write_text(METRICS_YML)
    (directory / "locks").mkdir()
    conf = directory / "cloudkitty.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "transport_url = fake://\n"
        f"log_file = {directory / 'processor.log'}\n"
        "debug = False\n"
        f"[database]\nconnection = {cloudkitty_url}\n"
        "[storage]\nversion = 1\nbackend = sqlalchemy\n"
        "[collect]\ncollector = prometheus\n"
        f"metrics_conf = {metrics}\nperiod = {PERIOD}\nwait_periods = 1\n"
        "scope_key = project_id\n"
        f"[collector_prometheus]\nprometheus_url = {prometheus_url}\n"
        "[fetcher]\nbackend = source\n"
        f"[fetcher_source]\nsources = {','.join(SCOPES)}\n"
        "[orchestrator]\nmax_workers = 2\nmax_workers_reprocessing = 1\n"
        f"coordination_url = file://{directory / 'locks'}\n"
        f"[cloud_credit]\nconnection = {ledger_url}\ndefault_currency = EUR\n"
    )
    return conf


def grant_credit(conf: Path, at: dt.datetime) -> dict[str, int]:
    """Paid orders, through the service on the operator's cloudkitty.conf."""
    from oslo_config import cfg

    from ovh_credit_plugin.conf import register_opts
    from ovh_credit_plugin.service import CreditService

    options = cfg.ConfigOpts()
    register_opts(options)
    options(args=[], default_config_files=[str(conf)])
    service = CreditService.from_conf(options)
    try:
        ids = {}
        for scope, amount in CREDIT.items():
            order = service.create_order(scope, amount, currency="EUR", at=at)
            credit_id = service.pay_order(order.id, at=at).credit_id
            assert credit_id is not None
            ids[scope] = credit_id
        return ids
    finally:
        service.close()


class Daemon:
    """``cloudkitty-processor --config-file CONF``, stopped with SIGTERM."""

    def __init__(self, conf: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.offset = log_path.stat().st_size if log_path.exists() else 0
        self.output = open(log_path.parent / "processor.stderr", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*dbservers._die_with_parent("TERM"), _command("cloudkitty-processor"),
             "--config-file", str(conf)],
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT, env=_env(),
        )

    def new_log(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def sockets(self) -> dict[int, dict[int, int]]:
        """The TCP sockets of the master and of each of its processes: pid -> {inode: remote port}.

        Read from /proc: a socket a process inherited through fork is the same
        inode in both processes.
        """
        remote = _tcp_remote_ports()
        found = {}
        for pid in [self.process.pid, *_descendants(self.process.pid)]:
            inodes = {}
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:  # closed meanwhile
                    continue
                inode = int(target[8:-1]) if target.startswith("socket:[") else None
                if inode is not None and inode in remote:
                    inodes[inode] = remote[inode]
            found[pid] = inodes
        return found

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                self.output.close()
                return None
        self.output.close()
        return self.process.returncode

    def run_until(self, done: Any, what: str) -> Run:
        """Until ``done()``, then SIGTERM: what the run logged, how it ended."""
        deadline = time.monotonic() + TIMEOUT
        try:
            while not done():
                if self.process.poll() is not None:
                    raise AssertionError(f"cloudkitty-processor exited with "
                                         f"{self.process.returncode}:\n{self.new_log()[-5000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: not after {TIMEOUT}s; the processor's "
                                         f"log:\n{self.new_log()[-5000:]}")
                time.sleep(0.1)
            sockets = self.sockets()
        finally:
            returncode = self.stop()
        return Run(self.new_log(), returncode, sockets, self.process.pid)


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, not ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        of = todo.pop()
        children = [child for child, parent in parents.items() if parent == of]
        found += children
        todo += children
    return found


def _tcp_remote_ports() -> dict[int, int]:
    """inode -> remote port of every TCP socket of this network namespace."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                ports[int(fields[9])] = int(fields[2].rsplit(":", 1)[1], 16)
    return ports


def states(cloudkitty: sa.Engine) -> dict[str, dt.datetime]:
    with cloudkitty.connect() as conn:
        return {row[0]: row[1].replace(tzinfo=UTC) for row in conn.execute(sa.text(
            "SELECT identifier, last_processed_timestamp FROM cloudkitty_storage_states"))}


def stored_rows(cloudkitty: sa.Engine) -> list[tuple[Any, ...]]:
    with cloudkitty.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "SELECT tenant_id, begin, end, res_type, rate, qty, `desc` FROM rated_data_frames "
            "ORDER BY tenant_id, begin, res_type"))]


@pytest.fixture(scope="module")
def walk(server_pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    if MISSING:  # OVH_CREDIT_REQUIRE_CLOUDKITTY=1 (CI): each test fails, the others run
        pytest.fail(MISSING, pytrace=False)
    directory = tmp_path_factory.mktemp("processor")
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    # Four whole periods, the last ending 10 minutes ago: due at once (wait_periods = 1
    # rates a period once it has ended), and the next one only due in 50 minutes.
    base = now - dt.timedelta(seconds=PERIODS * PERIOD, minutes=10)
    last = base + dt.timedelta(seconds=(PERIODS - 1) * PERIOD)

    with contextlib.ExitStack() as cleanup:
        data = directory / "tsdb"
        prom.backfill(backfill_families(base), data)
        prometheus = prom.start(data, directory)
        cleanup.callback(prometheus.stop)
        cloudkitty_url = new_database_url("mariadb", server_pool, directory)
        cleanup.callback(_drop, server_pool, cloudkitty_url)
        ledger_url = new_database_url("postgresql", server_pool, directory)  # empty
        cleanup.callback(_drop, server_pool, ledger_url)
        cloudkitty = sa.create_engine(cloudkitty_url, poolclass=sa.pool.NullPool)
        cleanup.callback(cloudkitty.dispose)

        conf = write_conf(directory, cloudkitty_url=cloudkitty_url, ledger_url=ledger_url,
                          prometheus_url=prometheus.url)
        _run_tool("cloudkitty-dbsync", conf, "upgrade")  # CloudKitty's modules and the ledger
        _run_tool("cloudkitty-storage-init", conf)
        done = subprocess.run(
            [sys.executable, "-c", SETUP_CLOUDKITTY, str(conf),
             (base - dt.timedelta(seconds=PERIOD)).isoformat(), *SCOPES],
            capture_output=True, text=True, timeout=120, check=False, env=_env())
        assert done.returncode == 0, done.stderr[-3000:]
        credit_ids = grant_credit(conf, base - dt.timedelta(days=1))

        log_path = directory / "processor.log"
        first = Daemon(conf, log_path).run_until(
            lambda: states(cloudkitty) == dict.fromkeys(SCOPES, last),
            "every scope rated up to its last backfilled period")
        rows_first = stored_rows(cloudkitty)
        ledger_first = database_checksum(ledger_url)

        # A restart after the daemon stopped between the ledger's commit and
        # CloudKitty's storing of the period (the only way a restart rates a
        # period again): docs/cloudkitty.md section 8's storage v1 SQL, with
        # the daemon stopped, takes each scope back, PARTIAL by three periods.
        back = {FULL: PERIODS - 1, PARTIAL: 1, NONE: PERIODS - 1}
        with cloudkitty.begin() as conn:
            for scope, hour in back.items():
                start = base + dt.timedelta(seconds=hour * PERIOD)
                conn.execute(sa.text("DELETE FROM rated_data_frames WHERE tenant_id = :scope "
                                     "AND begin >= :start"),
                             {"scope": scope, "start": naive(start)})
                conn.execute(sa.text("UPDATE cloudkitty_storage_states SET last_processed_"
                                     "timestamp = :state WHERE identifier = :scope"),
                             {"scope": scope,
                              "state": naive(start - dt.timedelta(seconds=PERIOD))})
        restart = Daemon(conf, log_path).run_until(
            lambda: states(cloudkitty) == dict.fromkeys(SCOPES, last),
            "every scope rated again up to its last backfilled period")
        yield Walk(
            base=base, conf=conf, ledger_url=ledger_url, credit_ids=credit_ids,
            first=first, restart=restart,
            rows_first=rows_first, rows_restart=stored_rows(cloudkitty),
            states_restart=states(cloudkitty),
            ledger_first=ledger_first, ledger_restart=database_checksum(ledger_url),
        )


def _drop(pool: ServerPool, url: str) -> None:
    parsed = sa.make_url(url)
    kind = "postgresql" if parsed.get_backend_name() == "postgresql" else "mariadb"
    dbservers.drop_database(pool.get(kind), str(parsed.database))


# -- the ledger ------------------------------------------------------------------------


def test_the_ledger_holds_one_debit_per_rated_period_and_type_for_exactly_the_rated_amounts(
    walk: Walk,
) -> None:
    from ovh_credit_plugin.ledger import schema

    engine = sa.create_engine(walk.ledger_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            settled = {row.key: row for row in conn.execute(sa.select(schema.settlements))}
            entries = list(conn.execute(sa.select(schema.ledger_entries)))
            credits = {row.id: row for row in conn.execute(sa.select(schema.credits))}
    finally:
        engine.dispose()
    expected = {}
    for scope in CREDIT:
        for hour, paid in enumerate(credit_applied(scope)):
            if paid:  # a period no credit pays is not recorded (no write)
                expected[walk.key(scope, hour)] = (period_price(scope, hour), paid)
    assert {key: (row.total, row.credit_applied) for key, row in settled.items()} == expected
    assert all(row.revision == 1 for row in settled.values())  # settled once, never again
    debits = [entry for entry in entries if entry.type == "debit"]
    assert {entry.type for entry in entries} == {"grant", "debit"}  # no reversal
    # One debit per period and metric type: never a second one for the same line.
    lines = [(entry.settlement_key, entry.line_id) for entry in debits]
    assert len(lines) == len(set(lines))
    for key, (_total, paid) in expected.items():
        assert sum(e.amount for e in debits if e.settlement_key == key) == paid, key
    for scope, credit_id in walk.credit_ids.items():
        used = sum(credit_applied(scope), D(0))
        credit = credits[credit_id]
        assert (credit.project_id, credit.total, credit.used, credit.available) == (
            scope, CREDIT[scope], used, CREDIT[scope] - used)
        assert sum(e.amount for e in debits if e.credit_id == credit_id) == used
    assert credit_applied(PARTIAL)[1] < period_price(PARTIAL, 1)  # the walk covers a split
    assert credit_applied(PARTIAL)[2] == 0


def test_ovh_credit_audit_is_clean_on_the_operators_config(
    walk: Walk, capsys: pytest.CaptureFixture[str],
) -> None:
    from ovh_credit_plugin.cli.app import main as cli_main

    assert cli_main(["--config-file", str(walk.conf), "audit", "-f", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["violations"]) == (True, [])


# -- CloudKitty's own storage ---------------------------------------------------------------


def _dec(value: Any) -> Decimal:
    # v1 storage keeps rates in a FLOAT column: compare at ledger scale.
    return D(str(value)).quantize(D("0.000001"))


def test_cloudkitty_stores_each_period_once_net_of_credit_with_what_credit_paid(
    walk: Walk,
) -> None:
    rows = walk.rows_first
    by_period: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in rows:
        begin = row[1].replace(tzinfo=UTC)
        hour = int((begin - walk.base).total_seconds()) // PERIOD
        by_period.setdefault((row[0], hour), []).append(row)
    # Every period of every scope, each metric type stored once.
    assert sorted(by_period) == sorted((s, h) for s in SCOPES for h in range(PERIODS))
    for (scope, hour), stored in by_period.items():
        assert sorted(row[3] for row in stored) == sorted(USAGE[scope])
        paid = D(0)
        for _tenant, begin, end, metric_type, rate, qty, desc in stored:
            assert end - begin == dt.timedelta(seconds=PERIOD)
            assert qty == quantity(scope, metric_type, hour)
            price = list_price(scope, metric_type, hour)
            meta = json.loads(desc)
            if "credit_applied" in meta:
                # docs/cloudkitty.md section 6: the price before credit exactly, the
                # credit that paid, in the project's currency, and the net price.
                covered = D(meta["credit_applied"])
                assert D(meta["price_before_credit"]) == price
                assert meta["credit_ids"] == str(walk.credit_ids[scope])
                assert meta["credit_applied"] == f"{covered:.2f}"
                assert _dec(rate) == price - covered
                paid += covered
            else:
                assert _dec(rate) == price
        # The period's prices drop by exactly the credit applied.
        assert paid == credit_applied(scope)[hour], (scope, hour)
        assert sum(_dec(row[4]) for row in stored) == period_price(scope, hour) - paid


# -- the restart -------------------------------------------------------------------------------


def test_a_restart_rates_the_periods_again_and_debits_nothing_twice(walk: Walk) -> None:
    # Every period the restart rated again is stored once, as it was the first time.
    assert walk.rows_restart == walk.rows_first
    assert walk.states_restart == dict.fromkeys(
        SCOPES, walk.base + dt.timedelta(seconds=(PERIODS - 1) * PERIOD))
    # The ledger did not change by a single row: the periods credit paid were replayed.
    assert walk.ledger_restart == walk.ledger_first
    replayed = re.findall(r"scope (\w+), period (\S+): (\S+) EUR of credit applied \((.*?)\)$",
                          walk.restart.log, re.MULTILINE)
    start, end = walk.period(PERIODS - 1)
    expected = [(FULL, f"{iso(start)}/{iso(end)}", f"{credit_applied(FULL)[-1]:.6f}",
                 "replayed")]
    start, end = walk.period(1)
    expected.append((PARTIAL, f"{iso(start)}/{iso(end)}", f"{credit_applied(PARTIAL)[1]:.6f}",
                     "replayed"))
    assert sorted(replayed) == sorted(expected)


# -- the log ------------------------------------------------------------------------------------

# oslo.log's default format: "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s [-] ..."
OUR_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\d+) (\w+) (ovh_credit_plugin\S*) \[-\] (.*)$",
    re.MULTILINE)


def test_our_lines_are_in_the_operators_log_file_in_oslo_logs_format(walk: Walk) -> None:
    lines = OUR_LINE.findall(walk.first.log)
    workers = set(walk.first.sockets) - {walk.first.master}
    expected = []
    for scope in CREDIT:
        for hour, paid in enumerate(credit_applied(scope)):
            if paid:
                start, end = walk.period(hour)
                expected.append(f"scope {scope}, period {iso(start)}/{iso(end)}: "
                                f"{paid:.6f} EUR of credit applied (settled)")
    assert sorted(message for _pid, _level, _name, message in lines) == sorted(expected)
    for pid, level, name, _message in lines:
        assert (level, name) == ("INFO", "ovh_credit_plugin.hosts.cloudkitty")
        assert int(pid) in workers  # rated in the forked workers, never in the master
    for run in (walk.first, walk.restart):
        assert "Could not load 'cloud_credit'" not in run.log
        assert not re.search(r" (ERROR|CRITICAL) ", run.log), run.log[-5000:]
        assert "Traceback" not in run.log
        assert run.returncode == 0


# -- the fork -------------------------------------------------------------------------------------


def test_no_worker_shares_a_connection_opened_before_the_fork(walk: Walk) -> None:
    """SQLAlchemy's "Using Connection Pools with Multiprocessing or os.fork()": a
    connection opened in cotyledon's master and inherited by its workers would be
    one socket used by several processes. Each TCP socket (its local address) is
    held by one process only, and the master holds none: no ledger, CloudKitty
    database or Prometheus connection."""
    ledger_port = sa.make_url(walk.ledger_url).port
    for run in (walk.first, walk.restart):
        assert len(run.sockets) == 4  # the master, 2 rating workers, 1 reprocessing worker
        assert run.sockets[run.master] == {}
        held = [inode for sockets in run.sockets.values() for inode in sockets]
        assert len(held) == len(set(held)), run.sockets
        to_ledger = {pid for pid, sockets in run.sockets.items()
                     if ledger_port in sockets.values()}
        assert to_ledger  # the workers that rated hold their own ledger connections
