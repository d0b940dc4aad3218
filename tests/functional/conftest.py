"""Fixtures of the clustered-ledger tier: one 3-node MariaDB Galera cluster per session.

Starting the cluster costs about ten seconds (bootstrap, two state
transfers): every Galera test shares it, each on a database of its own.
Skipped when the binaries are missing, a failure under
``OVH_CREDIT_REQUIRE_DATABASES=1`` (CI), like the other server tiers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_DATABASES, VOUCHERS, Ledger, ServerPool, write_config
from tests.functional import workload
from tests.support import galera


@pytest.fixture(scope="session")
def galera_cluster(server_pool: ServerPool) -> Iterator[galera.GaleraCluster]:
    if not galera.galera_available():
        message = ("MariaDB Galera binaries are not installed (mariadb-server, galera-4, "
                   "rsync: bash .ci/install-db-servers.sh installs them)")
        if REQUIRE_DATABASES:
            pytest.fail(message)
        pytest.skip(message)
    cluster = galera.start_cluster(server_pool.scratch / "galera")
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class GaleraLedger:
    """A migrated ledger on the cluster: one URL and config file per node."""

    name: str
    urls: list[str]
    configs: list[Path]
    vouchers: Path

    def on(self, node: int) -> Ledger:
        """The ledger as seen through ``node`` (for helpers written for one server)."""
        return Ledger(backend="galera", url=self.urls[node], config=self.configs[node],
                      vouchers=self.vouchers)


def new_galera_ledger(
    cluster: galera.GaleraCluster, directory: Path, *, migrate: bool = True
) -> GaleraLedger:
    name = f"t_{uuid.uuid4().hex[:16]}"
    urls = cluster.create_database(name)
    if migrate:
        workload.migrate(urls[0])
    directory.mkdir(parents=True, exist_ok=True)
    vouchers = directory / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    configs = [write_config(directory / f"node{i}.conf", url, vouchers)
               for i, url in enumerate(urls)]
    return GaleraLedger(name=name, urls=urls, configs=configs, vouchers=vouchers)


@pytest.fixture
def galera_ledger(galera_cluster: galera.GaleraCluster, tmp_path: Path) -> Iterator[GaleraLedger]:
    made = new_galera_ledger(galera_cluster, tmp_path / "galera")
    yield made
    # Whatever a test did, the ledger still balances, seen from every node.
    for node in range(len(made.urls)):
        service = made.on(node).service()
        try:
            report = service.audit()
        finally:
            service.close()
        assert report.ok, (node, report.violations)
    galera_cluster.drop_database(made.name)
