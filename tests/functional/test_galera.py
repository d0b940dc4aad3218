"""The clustered ledger: the concurrency proofs again, with writers on all three Galera nodes.

One 3-node MariaDB Galera cluster on loopback for the session
(``tests/support/galera.py``); each test has a database of its own, and its
writers (processes) are spread over the three nodes: worker ``I`` talks to
node ``I % 3``. Row locks are local to a node: what keeps two nodes from
spending one credit twice is certification at COMMIT (error 1213 on the
loser, retried whole). The proofs are the single-server ones, imported:

* the bank workload (``workload.py``): exact conservation and every other check;
* 50 processes racing for vouchers (``test_voucher_race.py``): one winner;
* 50 confirmations of one payment (``test_confirmations.py``): one credit;
* ``kill -9`` of batch settlements (``test_crash.py``): exactly once;

plus the ``file`` catalog's ``max_redemptions`` raced over the nodes, and a
node SIGKILLed in the middle of the workload: the other two go on, the
workers of the dead node retry until it is back, nothing is lost, the audit
is clean and the rejoined node holds exactly what the others do.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from tests.functional.test_confirmations import confirm_race
from tests.functional.test_crash import Side, crash_test
from tests.functional.test_voucher_race import (
    TOKEN,
    VOUCHERS,
    _run_race,
    check_outcomes,
    race_config,
)
from tests.functional.test_workload import check_report
from tests.support import workload
from tests.support.catalog_server import running
from tests.support.galera import GaleraCluster, GaleraLedger, new_galera_ledger
from tests.support.ledgers import database_checksum

pytestmark = pytest.mark.timeout(300)

# Two worker processes per node (the single-server profile "short" runs 4).
WORKERS = 6
SECONDS = 6.0
INVOICES = 500


def _seed(variable: str) -> int:
    seed = int(os.environ.get(variable) or random.randrange(2**31))
    print(f"\n{variable}={seed} replays the plan")
    return seed


def test_bank_workload_with_writers_on_three_nodes(
    galera_cluster: GaleraCluster, tmp_path: Path
) -> None:
    seed = _seed("OVH_CREDIT_WORKLOAD_SEED")
    ledger = new_galera_ledger(galera_cluster, tmp_path / "db", migrate=False)
    report = workload.run(ledger.urls[0], tmp_path / "workload", processes=WORKERS,
                          duration=SECONDS, seed=seed, invoices=INVOICES, urls=ledger.urls)
    check_report(report, seed, WORKERS)
    _same_on_every_node(ledger)


def test_fifty_processes_race_for_vouchers_on_three_nodes(
    galera_ledger: GaleraLedger, tmp_path: Path
) -> None:
    with running(vouchers=VOUCHERS, token=TOKEN) as server:
        configs = [race_config(tmp_path / f"race-{node}.conf", url, server)
                   for node, url in enumerate(galera_ledger.urls)]
        outcomes = _run_race(configs)
        check_outcomes(outcomes, server, galera_ledger.on(1))


def test_fifty_confirmations_on_three_nodes_create_one_credit(
    galera_ledger: GaleraLedger,
) -> None:
    confirm_race(galera_ledger.on(2), galera_ledger.configs)


def test_kill_9_during_batch_settlement_on_three_nodes_is_exactly_once(
    galera_cluster: GaleraCluster, tmp_path: Path
) -> None:
    sides: dict[str, list[Side]] = {}
    for name in ("crash", "reference"):
        ledger = new_galera_ledger(galera_cluster, tmp_path / name)
        sides[name] = [Side(url, config) for url, config in zip(
            ledger.urls, ledger.configs, strict=True)]
    kills = int(os.environ.get("OVH_CREDIT_CRASH_KILLS") or 10)
    crash_test("galera", sides["crash"], sides["reference"][0], kills, tmp_path)


# -- the file catalog's max_redemptions across nodes ----------------------------------

LIMITED = {"code": "GALERA-MAX-5", "amount": "7.00", "currency": "EUR", "status": "active",
           "validity_days": 30, "max_redemptions": 5, "description": "five projects"}
RACERS = 50


def _redeem(config: str, project: str, barrier: Any, results: Any) -> None:
    """One redemption of the limited code at the catalog, in its own process.

    The catalog's own call, not a whole activation: the throttle and intent
    transactions that come first in an activation would spread the racers
    out; this way fifty redemptions decide the limit at the same moment.
    """
    try:
        from ovh_credit_plugin.catalog import base

        service = workload.service_from_config(config)
        catalog = service.catalog
        assert catalog is not None  # loaded before the start line
        service.database.ensure_schema()
        key = base.idempotency_key(project, LIMITED["code"])
        barrier.wait(timeout=120)
        try:
            redemption = catalog.redeem(LIMITED["code"], project_id=project, idempotency_key=key)
            results.put((project, "redeemed", redemption.id))
        except base.VoucherAlreadyRedeemed as error:
            results.put((project, "used up", str(error)))
        service.close()
    except BaseException as error:  # reported to the parent, whatever it is
        results.put((project, "error", f"{type(error).__name__}: {error}"))


def test_file_catalog_max_redemptions_holds_across_nodes(
    galera_ledger: GaleraLedger,
) -> None:
    galera_ledger.vouchers.write_text(json.dumps({"vouchers": [LIMITED]}))
    context = workload.fork_context()
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    processes = [
        context.Process(target=_redeem, args=(
            str(galera_ledger.configs[n % 3]), f"max-p{n:02d}", barrier, results))
        for n in range(RACERS)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    kinds = Counter(kind for _, kind, _ in answers)
    assert kinds == {"redeemed": 5, "used up": RACERS - 5}, kinds
    # Every node says the same: five redemptions, the winners'.
    winners = sorted(project for project, kind, _ in answers if kind == "redeemed")
    table = schema.catalog_redemptions
    for node, url in enumerate(galera_ledger.urls):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                recorded = sorted(conn.execute(sa.select(table.c.project_id)).scalars())
        finally:
            engine.dispose()
        assert recorded == winners, node
        service = galera_ledger.on(node).service()
        try:
            assert service.catalog is not None
            assert service.catalog.get(LIMITED["code"]).redemptions == 5
        finally:
            service.close()


# -- a node killed in the middle of the workload -------------------------------------

VICTIM = 2


def test_a_node_killed_mid_workload_loses_nothing(
    galera_cluster: GaleraCluster, tmp_path: Path
) -> None:
    seed = _seed("OVH_CREDIT_WORKLOAD_SEED")
    ledger = new_galera_ledger(galera_cluster, tmp_path / "db", migrate=False)
    seen: dict[str, Any] = {}

    def outage() -> None:
        """Kill a node early in the run, keep it down a while, bring it back."""
        time.sleep(2)
        galera_cluster.kill(VICTIM)
        began = time.monotonic()
        galera_cluster.wait_size(2)  # the survivors noticed (suspect timeout)
        seen["noticed after"] = round(time.monotonic() - began, 1)
        seen["settled when noticed"] = _settlements(galera_cluster, 0, ledger.name)
        time.sleep(3)  # an outage of some length: the survivors serve alone
        seen["settled before restart"] = _settlements(galera_cluster, 1, ledger.name)
        began = time.monotonic()
        galera_cluster.restart(VICTIM)
        seen["rejoined after"] = round(time.monotonic() - began, 1)

    report = workload.run(ledger.urls[0], tmp_path / "workload", processes=WORKERS,
                          duration=16.0, seed=seed, invoices=INVOICES, urls=ledger.urls,
                          during=outage)
    print(json.dumps(seen))
    check_report(report, seed, WORKERS)
    # The survivors' writers went on while the node was down...
    assert seen["settled before restart"] > seen["settled when noticed"], seen
    # ... and the dead node's writers noticed, retried and got through after.
    assert report.outcomes.get("unavailable", 0) >= 1, report.outcomes
    _same_on_every_node(ledger)


def _settlements(cluster: GaleraCluster, node: int, database: str) -> int:
    server = cluster.nodes[node]
    conn = pymysql.connect(host=server.host, port=server.port, user=server.admin_user,
                           database=database, connect_timeout=5, read_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM cloud_credit_settlements")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _same_on_every_node(ledger: GaleraLedger) -> None:
    """Every node holds the same rows, and its audit is clean."""
    digests = {database_checksum(url) for url in ledger.urls}
    assert len(digests) == 1
    for node in range(len(ledger.urls)):
        service = ledger.on(node).service()
        try:
            report = service.audit()
        finally:
            service.close()
        assert report.ok, (node, report.violations)
