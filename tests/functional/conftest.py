"""Fixtures of the clustered-ledger tier: one 3-node MariaDB Galera cluster per session.

Starting the cluster costs about ten seconds (bootstrap, two state
transfers): every Galera test shares it, each on a database of its own.
Skipped when the binaries are missing, a failure under
``OVH_CREDIT_REQUIRE_DATABASES=1`` (CI), like the other server tiers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import galera
from tests.support.galera import GaleraLedger, new_galera_ledger
from tests.support.ledgers import REQUIRE_DATABASES, Ledger, ServerPool, unmigrated_ledger


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


# The catalog's TLS tests (a CA per module, its certificate as a file).
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def unmigrated(backend: str, server_pool: ServerPool, tmp_path: Path) -> Ledger:
    """An empty database of ``backend``: the migrations tests upgrade it themselves."""
    return unmigrated_ledger(backend, server_pool, tmp_path)
