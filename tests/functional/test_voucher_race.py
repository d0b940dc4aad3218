"""Fifty processes race to activate vouchers: one loopback catalog, one ledger per backend.

Processes, not threads: each has its own interpreter, its own connection
pool to the catalog and its own database connections, as billing workers do.
They start together (a barrier) and go through three rounds:

1. **one single-use code**, fifty projects: exactly one credit, in the
   ledger and at the catalog; everybody else gets the public refusal;
2. **one code, one project**, fifty times at once: exactly one credit and
   one redemption (the deterministic key and the unique activation);
3. **fifty unknown codes, one project** limited to 5 failed tries: no more
   than 5 of them reach the catalog (the throttle holds under concurrency).

On every backend: the throttle does not rest on the same argument everywhere
(SQLite counts inside the reserving transaction, its writers being serialized;
PostgreSQL and MariaDB count after the reservation committed), and round 3
fails on the servers when they count inside the reserving transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import queue
import traceback
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from tests.support.catalog_server import CatalogServer, running
from tests.support.ledgers import Ledger
from tests.support.process import join_or_terminate

WORKERS = 50
THROTTLE_LIMIT = 5
TOKEN = "race-token-0123456789"
SINGLE = "RACE-SINGLE-1"
SHARED = "RACE-SHARED-1"
VOUCHERS = [
    {"code": SINGLE, "amount": "10.00", "currency": "EUR", "max_redemptions": 1,
     "validity_days": 30, "description": "single use"},
    {"code": SHARED, "amount": "5.00", "currency": "EUR", "validity_days": 30,
     "description": "many uses"},
]
ROUNDS = ("single-use", "same-project", "throttle")

pytestmark = pytest.mark.timeout(180)


def _worker(index: int, config: str, barrier: Any, results: Any) -> None:
    """One billing worker: three activations, each started with the others."""
    # The refusals and throttles are logged as warnings: fifty workers would
    # flood the test output through logging's last-resort handler.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        from oslo_config import cfg

        from ovh_credit_plugin import exceptions
        from ovh_credit_plugin.conf import register_opts
        from ovh_credit_plugin.service import CreditService

        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[config])
        service = CreditService.from_conf(conf)
        tries = {
            "single-use": (f"race-p{index:02d}", SINGLE),
            "same-project": ("race-shared", SHARED),
            "throttle": ("race-prober", f"NOPE-{index:04d}"),
        }
        # Warm up before the start line: load the catalog driver, check the
        # schema, so that the race is between activations, not imports.
        assert service.catalog is not None
        service.pending_activations()
    except BaseException:
        results.put(("setup", index, "crash", traceback.format_exc()))
        barrier.abort()
        return
    for round_name in ROUNDS:
        if round_name == "throttle":
            service.settings = dataclasses.replace(
                service.settings, voucher_max_failed_attempts=THROTTLE_LIMIT
            )
        project, code = tries[round_name]
        barrier.wait(timeout=120)
        try:
            credit = service.activate_voucher(project, code)
            outcome: tuple[str, str] = ("credit", str(credit.id))
        except exceptions.TooManyAttempts:
            outcome = ("throttled", "")
        except exceptions.VoucherRefused as error:
            outcome = ("refused", f"{error} | {error.reason}")
        except exceptions.CreditError as error:
            outcome = ("error", f"{type(error).__name__}: {error}")
        except BaseException:
            outcome = ("crash", traceback.format_exc())
        results.put((round_name, index, *outcome))
    service.close()


def _run_race(configs: Sequence[Path]) -> dict[str, list[tuple[int, str, str]]]:
    """The race, worker I configured by ``configs[I % len(configs)]`` (Galera: one per node)."""
    # forkserver: every worker is a fresh process forked from a clean,
    # single-threaded server (not from pytest, which runs the catalog's
    # threads and holds database connections), with the plugin imported
    # once up front. Spawning fifty interpreters that each import the
    # plugin would cost a minute of CPU for the same race.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([
        "ovh_credit_plugin.service",
        "ovh_credit_plugin.catalog.http",
        "ovh_credit_plugin.ledger.migration",
        "tests.functional.test_voucher_race",
    ])
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_worker,
                        args=(index, str(configs[index % len(configs)]), barrier, results))
        for index in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes: dict[str, list[tuple[int, str, str]]] = {name: [] for name in (*ROUNDS, "setup")}
    try:
        for _ in range(WORKERS * len(ROUNDS)):
            round_name, index, kind, detail = results.get(timeout=150)
            outcomes[round_name].append((index, kind, detail))
            if round_name == "setup":
                break
    except queue.Empty:
        pass
    finally:
        join_or_terminate(processes)
    return outcomes


def race_config(path: Path, url: str, server: CatalogServer) -> Path:
    path.write_text(
        "[cloud_credit]\n"
        f"connection = {url}\n"
        # Round 2's fifty concurrent tries all hold a reservation at once.
        "voucher_max_failed_attempts = 100\n"
        "[voucher_catalog]\n"
        "driver = http\n"
        f"endpoint = {server.url}\n"
        f"auth_token = {TOKEN}\n"
        "timeout = 60\n"
        "retries = 3\n"
    )
    return path


def test_fifty_processes_race_for_vouchers(ledger: Ledger, tmp_path: Path) -> None:
    with running(vouchers=VOUCHERS, token=TOKEN) as server:
        outcomes = _run_race([race_config(tmp_path / "race.conf", ledger.url, server)])
        check_outcomes(outcomes, server, ledger)


def kinds(results: list[tuple[int, str, str]]) -> Counter[str]:
    return Counter(kind for _, kind, _ in results)


def check_outcomes(
    outcomes: dict[str, list[tuple[int, str, str]]], server: CatalogServer, ledger: Ledger
) -> None:
    assert outcomes["setup"] == []
    for round_name in ROUNDS:
        bad = [r for r in outcomes[round_name] if r[1] in ("error", "crash")]
        assert bad == [], bad[:3]
        assert len(outcomes[round_name]) == WORKERS, round_name

    service = ledger.service()
    try:
        credits = [
            (c.project_id, c.source, c.total)
            for project in ("race-shared", *(f"race-p{i:02d}" for i in range(WORKERS)))
            for c in service.list_credits(project)
        ]
        attempts = schema.voucher_attempts
        failed = service.database.read(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(attempts).where(
                attempts.c.project_id == "race-prober", attempts.c.succeeded.is_(False))
        ).scalar_one())
        assert service.pending_activations() == []
        report = service.audit()
        assert report.ok, report.violations
    finally:
        service.close()

    # Round 1: one single-use code, fifty projects -> exactly one credit.
    single = outcomes["single-use"]
    assert kinds(single)["credit"] == 1, kinds(single)
    assert kinds(single)["refused"] == WORKERS - 1
    assert all(d.startswith("this voucher code cannot be activated")
               for _, k, d in single if k == "refused")
    (winner,) = [index for index, kind, _ in single if kind == "credit"]
    assert [c for c in credits if c[1] == SINGLE] == [
        (f"race-p{winner:02d}", SINGLE, Decimal("10.00"))
    ]
    assert len(server.redemptions_of(SINGLE)) == 1

    # Round 2: one project, one code, fifty times -> one credit, one redemption.
    shared = outcomes["same-project"]
    assert [c for c in credits if c[1] == SHARED] == [("race-shared", SHARED, Decimal("5.00"))]
    credit_ids = {d for _, k, d in shared if k == "credit"}
    assert len(credit_ids) == 1  # every success returned the same credit
    # Whoever comes after the grant gets that credit back, not a refusal.
    assert set(kinds(shared)) == {"credit"}
    assert len(server.redemptions_of(SHARED)) == 1

    # Round 3: fifty probes at once, limit 5 -> at most 5 reach the catalog.
    probes = outcomes["throttle"]
    asked = [r for r in server.calls("GET") if "/NOPE-" in r.path]
    assert len(asked) <= THROTTLE_LIMIT, len(asked)
    assert kinds(probes)["refused"] == len(asked)
    assert kinds(probes)["throttled"] == WORKERS - len(asked)
    assert failed == len(asked)
    assert not any(r.path.endswith("/redemptions") and "/NOPE-" in r.path
                   for r in server.calls())

    assert len(credits) == 2
