"""Figure 7: voucher activation against a loopback catalog, against what its design needs.

Ours: ``CreditService.activate_voucher`` with the HTTP catalog driver, on a
SQLite ledger (WAL, synchronous=FULL): the throttle reservation with the
intent, GET, POST, the grant (two durable transactions, issue 15's
decision 1). Floor (decision 1): what that design cannot go below, in the
same order: a bare durable commit, the GET and the POST of the wire contract
with bare ``requests`` on a kept-alive session, another bare durable commit.
The commits are ``sqlite3`` on a file beside the ledger (the plugin's
pragmas: WAL, synchronous=FULL, busy timeout, foreign keys), each
``BEGIN IMMEDIATE``, a one-row insert, ``COMMIT``. The server's sockets get
TCP_NODELAY (see ``_no_delay``). Both talk to the same catalog server
(tests/support/catalog_server.py), alternating, each on its own codes; every
activation is by a new project (which takes the voucher's currency, the
default one, with its intent).

Both sides first run :data:`WARM_UP` untimed activations: on a new ledger
the WAL file grows until its first checkpoint (1,000 pages, about 50
activations of ~20 pages), and a commit that grows the file costs 1.5-1.8 times
one that overwrites it (docs/performance.md). A ledger in service reuses
its WAL file; the bare file's one-page commits barely grow it.

Also reported: the HTTP part of the floor alone (``http_ms``, the previous
floor) and one bare commit (``commit_ms``).
"""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.common import Unavailable
from benchmarks.floor import sqlite_connect

WARM_UP = 60


def _no_delay(server: Any) -> None:
    """TCP_NODELAY on the test server's connections, as production HTTP servers set it.

    The test server writes headers and body in two sends; with Nagle's
    algorithm the body waits for the client's delayed ACK (40 ms on Linux),
    a loopback artefact that would swamp both ours and the floor.
    """
    listener = server._server
    accept = listener.get_request

    def get_request() -> Any:
        connection, address = accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    listener.get_request = get_request


def measure(workdir: Path, sizes: Any) -> dict[str, Any]:
    try:
        import requests
        from oslo_config import cfg

        from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
        from ovh_credit_plugin.conf import register_opts
        from ovh_credit_plugin.ledger.database import Database, create_engine
        from ovh_credit_plugin.service import CreditService
        from tests.support.catalog_server import running
    except ImportError as error:
        raise Unavailable(f"the HTTP catalog or its test server is missing ({error})") from None

    calls = sizes.catalog_calls
    vouchers = [
        {"code": f"{side}-{n:06d}", "amount": "10.00", "currency": "EUR", "status": "active",
         "validity_days": 90, "products": []}
        for side in ("OURS", "FLOOR") for n in range(calls + WARM_UP)
    ]
    ledger = data.copy_ledger(workdir / "empty.sqlite", workdir / "catalog.sqlite")
    with running(vouchers=vouchers) as server:
        _no_delay(server)
        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[])
        conf.set_override("driver", "http", group="voucher_catalog")
        conf.set_override("endpoint", server.url, group="voucher_catalog")
        service = CreditService(database=Database(create_engine(data.sqlite_url(ledger))),
                                catalog=HttpVoucherCatalog(conf=conf))
        session = requests.Session()
        # Time spent in ledger transactions, to tell the database's share from HTTP's.
        ledger_time = [0.0]
        database = service.database
        write, read = database.write, database.read

        def timed(call: Any) -> Any:
            def run(work: Any) -> Any:
                started = time.perf_counter()
                try:
                    return call(work)
                finally:
                    ledger_time[0] += time.perf_counter() - started
            return run

        database.write = timed(write)  # type: ignore[method-assign]
        database.read = timed(read)  # type: ignore[method-assign]

        bare = sqlite_connect(str(workdir / "commit.sqlite"))
        bare.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        http_times: list[float] = []

        def commit() -> float:
            started = time.perf_counter()
            bare.execute("BEGIN IMMEDIATE")
            bare.execute("INSERT INTO t (v) VALUES ('x')")
            bare.execute("COMMIT")
            return time.perf_counter() - started

        def floor(n: int) -> float:
            code = f"FLOOR-{n:06d}"
            started = time.perf_counter()
            commit()  # the reservation with the intent
            asked = time.perf_counter()
            got = session.get(f"{server.url}/v1/vouchers/{code}", timeout=10)
            got.raise_for_status()
            got.json()
            posted = session.post(f"{server.url}/v1/vouchers/{code}/redemptions",
                                  json={"project_id": f"floor-{n}",
                                        "idempotency_key": f"floor-{n:060d}"}, timeout=10)
            posted.raise_for_status()
            posted.json()
            http_times.append(time.perf_counter() - asked)
            commit()  # the grant
            return time.perf_counter() - started

        def ours(n: int) -> float:
            started = time.perf_counter()
            service.activate_voucher(f"bench-{n}", f"OURS-{n:06d}")
            return time.perf_counter() - started

        try:
            for n in range(calls, calls + WARM_UP):  # connections, engine, schema check, WAL
                floor(n)
                ours(n)
            ledger_time[0] = 0.0
            http_times.clear()
            floors, own, commits = [], [], []
            for n in range(calls):
                if n % 2:
                    own.append(ours(n))
                    floors.append(floor(n))
                else:
                    floors.append(floor(n))
                    own.append(ours(n))
                commits.append(commit())
        finally:
            bare.close()
            session.close()
            service.close()
    floor_s, ours_s = statistics.median(floors), statistics.median(own)
    return {"floor_ms": floor_s * 1000, "ours_ms": ours_s * 1000,
            "ledger_ms": ledger_time[0] / calls * 1000, "ratio": round(ours_s / floor_s, 3),
            "commit_ms": statistics.median(commits) * 1000,
            "http_ms": statistics.median(http_times) * 1000}
