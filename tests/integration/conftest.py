"""The real CloudKitty 25.x orchestrator, in-process, with our processor installed.

Nothing of CloudKitty is mocked. CloudKitty's own database is in-memory SQLite
(oslo.db gives ``sqlite://`` a single shared connection, which hashmap's
migrations need: they fail on a file database, a CloudKitty bug); storage is
CloudKitty's v1 SQL storage in the same database; pricing is hashmap. Only the
collector is a stub: a real ``BaseCollector`` subclass returning fixed usage.
The ledger is a real migrated SQLite file (the ``ledger`` fixture of
tests/conftest.py).

When CloudKitty is not installed these tests are skipped, unless
``OVH_CREDIT_REQUIRE_CLOUDKITTY=1`` (CI), where its absence is an error.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

REQUIRE_CLOUDKITTY = os.environ.get("OVH_CREDIT_REQUIRE_CLOUDKITTY") == "1"

try:
    with warnings.catch_warnings():
        # Importing CloudKitty warns about eventlet and oslo deprecations.
        warnings.simplefilter("ignore")
        from cloudkitty import collector, dataframe, db, orchestrator, storage, storage_state
        from cloudkitty.db import api as ck_db_api
        from cloudkitty.rating.hash.db import api as hash_db_api
        from cloudkitty.utils import tz as tzutils
        from oslo_config import cfg
        from stevedore import extension

        from ovh_credit_plugin.conf import register_opts
        from ovh_credit_plugin.hosts import cloudkitty as ck_host
    HAVE_CLOUDKITTY = True
except ImportError:
    if REQUIRE_CLOUDKITTY:
        raise
    HAVE_CLOUDKITTY = False

PERIOD = 3600
# v1 storage's tenant_id is String(32), like a Keystone project id.
SCOPE = "a" * 32
OTHER_SCOPE = "b" * 32
# Hashmap prices: instance 1.5 each; image.size 0.01 per MiB. On SQLite,
# hashmap's Numeric costs go through REAL: 0.01 comes back as
# 0.0100000000000000002081668..., so prices carry more than 6 decimals.
INSTANCE_PRICE = Decimal("1.5")
MIB_PRICE = Decimal("0.01")

METRICS_YML = """
metrics:
  cpu:
    alt_name: instance
    unit: instance
    groupby: [id, project_id]
    metadata: [flavor_name]
  image.size:
    unit: MiB
    groupby: [id, project_id]
    metadata: [container_format]
"""


if HAVE_CLOUDKITTY:

    class StubCollector(collector.BaseCollector):  # type: ignore[misc]
        """A real BaseCollector: fixed usage per scope, changeable by a test."""

        collector_name = "stub"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # scope -> {"instance": count, "image.size": MiB}
            self.usage: dict[str, dict[str, int]] = {}

        def fetch_all(
            self, metric_name: str, start: Any, end: Any, project_id: Any = None,
            q_filter: Any = None,
        ) -> list[Any]:
            usage = self.usage.get(project_id, {})
            # metric_name is the collector's key: "cpu@#instance" (alt_name).
            if metric_name.startswith("cpu") and usage.get("instance"):
                return [dataframe.DataPoint(
                    "instance", usage["instance"], 0,
                    {"id": "vm-1", "project_id": project_id}, {"flavor_name": "m1.small"},
                )]
            if metric_name == "image.size" and usage.get("image.size"):
                return [dataframe.DataPoint(
                    "MiB", usage["image.size"], 0,
                    {"id": "img-1", "project_id": project_id}, {"container_format": "bare"},
                )]
            return []


def _migrate_cloudkitty() -> None:
    """What `cloudkitty-dbsync upgrade` and `cloudkitty-storage-init` do, in-process."""
    # CloudKitty's alembic env.py runs logging.config.fileConfig, which disables
    # every logger created so far (ours too: caplog needs them) and gives the
    # root logger a handler on the sys.stderr of that moment: a test session's
    # capture, closed when the session ends, after which every error logged in
    # the process ("--- Logging error ---") lands in the next test's stderr
    # (mutation testing runs many sessions in one process). All of it is undone.
    loggers = [logging.root, *(logger for logger in logging.root.manager.loggerDict.values()
                               if isinstance(logger, logging.Logger))]
    before = [(logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled)
              for logger in loggers]
    try:
        _run_cloudkitty_migrations()
    finally:
        for logger in logging.root.manager.loggerDict.values():
            if isinstance(logger, logging.Logger):
                logger.handlers.clear()  # those fileConfig added to loggers new to it
        for logger, handlers, level, propagate, disabled in before:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def _run_cloudkitty_migrations() -> None:
    ck_db_api.get_instance().get_migration().upgrade("head")
    # cloudkitty/cli/dbsync.py: every processor class with a `db_api`, ours
    # included (its migration runs on the ledger, already at head here).
    for ext in extension.ExtensionManager("cloudkitty.rating.processors"):
        if hasattr(ext.plugin, "db_api"):
            ext.plugin.db_api.get_migration().upgrade(None)
    storage.get_storage().init()
    storage_state.StateManager().init()


#: CloudKitty's database as the first test of the session left it prepared, to
#: start the next ones from (``_prepare_database``).
_PREPARED: dict[str, sqlite3.Connection] = {}


def _prepare_database(env: CloudKitty) -> None:
    """CloudKitty's database migrated, hashmap and cloud_credit enabled, prices set.

    The first test of a session does it for real; the next ones copy the result
    into their new in-memory database with sqlite3's backup, in milliseconds
    instead of ~0.4 s of alembic migrations (mutation testing runs these tests
    thousands of times).
    """
    with db.session_for_write() as session:
        engine = session.get_bind()
    raw = engine.raw_connection()  # the one connection of oslo.db's StaticPool
    try:
        if "cloudkitty" in _PREPARED:
            _PREPARED["cloudkitty"].backup(raw.driver_connection)
            return
    finally:
        raw.close()
    _migrate_cloudkitty()
    modules = env.modules()
    modules.set_state("hashmap", True)
    modules.set_priority("hashmap", 100)  # the higher number runs first
    modules.set_state("cloud_credit", True)
    modules.set_priority("cloud_credit", 1)
    hashmap = hash_db_api.get_instance()
    # A mapping applies to periods after its start: make it old.
    old = dt.datetime(2000, 1, 1)
    for service_name, cost in (("instance", INSTANCE_PRICE), ("image.size", MIB_PRICE)):
        svc = hashmap.create_service(service_name)
        hashmap.create_mapping(
            cost, map_type="flat", service_id=svc.service_id, start=old, created_by="tests"
        )
    prepared = sqlite3.connect(":memory:")
    raw = engine.raw_connection()
    try:
        raw.driver_connection.backup(prepared)
    finally:
        raw.close()
    _PREPARED["cloudkitty"] = prepared


@dataclass
class CloudKitty:
    """One in-process CloudKitty: config, databases, pricing, a stub collector."""

    base: dt.datetime
    now: dt.datetime
    collector: Any
    storage: Any
    metrics_path: Path
    overrides: list[tuple[str, Any, str]] = field(default_factory=list)

    @property
    def p1(self) -> dt.datetime:
        return self.base + dt.timedelta(seconds=PERIOD)

    @property
    def p2(self) -> dt.datetime:
        return self.base + dt.timedelta(seconds=2 * PERIOD)

    def set_override(self, name: str, value: Any, group: str) -> None:
        cfg.CONF.set_override(name, value, group)
        self.overrides.append((name, value, group))

    def modules(self) -> Any:
        return ck_db_api.get_instance().get_module_info()

    def worker(self, scope: str = SCOPE) -> Any:
        return orchestrator.Worker(self.collector, self.storage, scope, worker_id=0)

    def start_scope(self, scope: str, usage: dict[str, int]) -> None:
        """Usage for a scope whose last rated period started at ``base``."""
        self.collector.usage[scope] = dict(usage)
        # Without a state a new scope starts at the beginning of the month.
        storage_state.StateManager().set_last_processed_timestamp(scope, self.base)

    def last_processed(self, scope: str = SCOPE) -> dt.datetime:
        return storage_state.StateManager().get_last_processed_timestamp(scope)

    def totals_by_type(self, scope: str = SCOPE) -> dict[str, Decimal]:
        results = self.storage.total(
            begin=self.base, end=self.now, filters={"project_id": scope}, groupby=["type"]
        )["results"]
        # v1 storage keeps rates in a Float column: compare at ledger scale.
        return {r["type"]: _dec(r["rate"]) for r in results}

    def total(self, scope: str = SCOPE) -> Decimal:
        results = self.storage.total(
            begin=self.base, end=self.now, filters={"project_id": scope}
        )["results"]
        return _dec(results[0]["rate"] or 0) if results else Decimal(0)

    def stored_points(self, scope: str = SCOPE) -> list[tuple[dt.datetime, str, Any]]:
        """(period start, type, point) of every stored row of the scope."""
        try:
            frames = self.storage.retrieve(
                begin=self.base, end=self.now, filters={"project_id": scope}, paginate=False
            )["dataframes"]
        except storage.NoTimeFrame:  # v1 storage: nothing stored for the scope
            return []
        return [
            (tzutils.utc_to_local(frame.start), metric_type, point)
            for frame in frames
            for metric_type, point in frame.iterpoints()
        ]


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


@pytest.fixture(scope="package", autouse=True)
def _restore_global_conf() -> Iterator[None]:
    """Take the plugin's options off CloudKitty's global ``cfg.CONF`` afterwards.

    The processor registers them there, as it must inside CloudKitty; the
    tests after this package expect an untouched ``cfg.CONF``.
    """
    yield
    if not HAVE_CLOUDKITTY:
        return
    from tests.support.global_conf import unregister_plugin_opts

    unregister_plugin_opts(cfg.CONF)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger on SQLite here (tests/service and tests/functional cover every backend).

    A test parametrizes ``backend`` itself to run on PostgreSQL and MariaDB too.
    """
    return str(request.param)


@pytest.fixture
def cloudkitty(ledger: Any, tmp_path: Path) -> Iterator[CloudKitty]:
    """CloudKitty with hashmap (priority 100) and cloud_credit (priority 1) enabled.

    Two whole periods of SCOPE are due: p1 = base + 1 h and p2 = base + 2 h.
    """
    if not HAVE_CLOUDKITTY:
        pytest.skip("cloudkitty is not installed")
    metrics = tmp_path / "metrics.yml"
    metrics.write_text(METRICS_YML)
    register_opts(cfg.CONF)
    now = tzutils.localized_now()
    # Not on an hour boundary, so that exactly two periods are due (wait_periods=1).
    base = now - dt.timedelta(hours=3, minutes=30)
    env = CloudKitty(
        base=base, now=now, collector=None, storage=None, metrics_path=metrics
    )
    for name, value, group in [
        ("connection", "sqlite://", "database"),  # in-memory, one shared connection
        ("version", 1, "storage"),
        ("backend", "sqlalchemy", "storage"),
        ("collector", "stub", "collect"),
        ("metrics_conf", str(metrics), "collect"),
        ("period", PERIOD, "collect"),
        ("wait_periods", 1, "collect"),
        ("scope_key", "project_id", "collect"),
        ("backend", "source", "fetcher"),
        ("max_threads", 2, "orchestrator"),
        ("connection", ledger.url, "cloud_credit"),
    ]:
        env.set_override(name, value, group)
    ck_host.close_services()
    ck_host.reset_order_check()
    try:
        _prepare_database(env)
        env.collector = StubCollector(period=PERIOD, conf=yaml.safe_load(METRICS_YML))
        env.storage = storage.get_storage()
        env.start_scope(SCOPE, {"instance": 2, "image.size": 100})
        yield env
    finally:
        ck_host.close_services()
        ck_host.reset_order_check()
        # As CloudKitty's own tests do: disposing the in-memory engine drops it.
        with db.session_for_write() as session:
            session.get_bind().dispose()
        for name, _, group in reversed(env.overrides):
            cfg.CONF.clear_override(name, group)


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Keystone with personas (tests/support/keystone.py); started once per run."""
    from tests.support.keystone import keystone_fixture

    yield from keystone_fixture(tmp_path_factory)
