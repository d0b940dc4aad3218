"""Crash safety: ``kill -9`` the CLI at random points of a batch settlement.

``ovh-credit settle FILE --batch-size 25`` (400 invoices: 16 batches) runs in a
child process and is killed with SIGKILL at a random point. Mostly the child
is the real CLI code in a ``forkserver`` child with the plugin preloaded (it
starts in milliseconds); every eighth one is the real ``ovh-credit``
executable in a fresh interpreter. Most kills come after a random number
(1-3) of new batches have committed plus a random part of a batch's time: in
the middle of a batch transaction, or between two; the others after a random
delay over a whole clean run (starting, reading and validating the file, then
settling). After every kill:

* ``audit`` is clean;
* the file's settled invoices are exactly its first ``k * 25`` ones: a batch
  is one transaction, committed whole or not at all.

Each round (a new invoice file, with new credit bought before it) is
killed a few times, then re-run to completion; the ledger must then equal a
reference ledger on which the same rounds ran once, cleanly (the same CLI
code, unkilled): every settlement (amounts, allocations) and
every credit balance, so each invoice was settled exactly once and the total
debited is what a single clean run debits.

Kills per backend: CI 50 on SQLite and 10 each on PostgreSQL and MariaDB
(server round trips make their runs slower); ``OVH_CREDIT_CRASH=long`` kills
50 times on each backend; ``OVH_CREDIT_CRASH_KILLS=N`` sets any count.
``OVH_CREDIT_CRASH_SEED`` replays the invoices and delays of a run (printed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from tests.support import workload
from tests.support.clock import TEST_NOW
from tests.support.ledgers import ServerPool, new_database_url

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 2, 1, tzinfo=UTC)
BATCH = 25
INVOICES_PER_ROUND = 400
KILLS_PER_ROUND = 5
REAL_CLI_EVERY = 8  # every 8th killed run is the real executable, the others forked
PROJECTS = {"cr-p0": "EUR", "cr-p1": "EUR", "cr-p2": "EUR", "cr-p3": "EUR", "cr-j0": "JPY"}
LONG = os.environ.get("OVH_CREDIT_CRASH") == "long"


def kills_for(backend: str) -> int:
    if os.environ.get("OVH_CREDIT_CRASH_KILLS"):
        return int(os.environ["OVH_CREDIT_CRASH_KILLS"])
    return 50 if LONG or backend == "sqlite" else 10


@dataclass
class Side:
    """One ledger of the comparison: its URL and config file."""

    url: str
    config: Path

    def service(self) -> Any:
        return workload.service_from_config(self.config)


def round_moment(number: int) -> dt.datetime:
    return T0 + dt.timedelta(days=20 * number)


def buy_credit(side: Side, number: int, rng: random.Random) -> None:
    """Deterministic grants before round ``number``: each project pays an order."""
    service = side.service()
    try:
        at = round_moment(number)
        for project, currency in PROJECTS.items():
            amount = str(rng.randint(2000, 9000)) if currency == "JPY" else (
                f"{rng.randint(80, 400)}.{rng.randint(0, 99):02d}"
            )
            order = service.create_order(project, amount, currency=currency, at=at)
            service.pay_order(order.id, at=at)
        if number == 0:
            service.activate_voucher("cr-p0", "WELCOME-2026", at=at)
            service.activate_voucher("cr-p1", "GPU-ONLY", at=at)
            service.activate_voucher("cr-j0", "YEN-1000", at=at)
    finally:
        service.close()


def write_round(path: Path, number: int, rng: random.Random) -> list[str]:
    """The round's invoice file (JSON lines); returns its settlement keys in order."""
    start = round_moment(number)
    keys = []
    with path.open("w", encoding="utf-8") as out:
        for n in range(INVOICES_PER_ROUND):
            project = rng.choice(sorted(PROJECTS))
            currency = PROJECTS[project]
            lines = []
            for k in range(1, rng.randint(1, 3) + 1):
                if currency == "JPY":
                    amount = str(rng.randint(1, 120))
                elif rng.random() < 0.3:
                    amount = str(Decimal(rng.randint(1, 3_000_000)).scaleb(-6))
                else:
                    amount = str(Decimal(rng.randint(1, 900)).scaleb(-2))
                lines.append({"id": f"l{k}", "product": rng.choice(workload.PRODUCTS),
                              "amount": amount})
            issued = start + dt.timedelta(hours=rng.uniform(1, 24 * 19))
            document = {"id": f"r{number}-{n:04d}", "project_id": project,
                        "currency": currency, "issued_at": workload.iso(issued),
                        "lines": lines}
            keys.append(workload.invoice_key(document))
            out.write(json.dumps(document) + "\n")
    return keys


def settle_argv(side: Side, path: Path, number: int) -> list[str]:
    at = workload.iso(round_moment(number) + dt.timedelta(days=19, hours=12))
    return ["--config-file", str(side.config), "--now", TEST_NOW.isoformat(), "settle", str(path),
            "--batch-size", str(BATCH), "--at", at, "-f", "json"]


def real_cli(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("ovh-credit")
    command = [str(script)] if script.exists() else [
        sys.executable, "-m", "ovh_credit_plugin.cli.app"
    ]
    with log.open("ab") as out:
        return subprocess.Popen([*command, *argv], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)


def snapshot(url: str) -> dict[str, Any]:
    """What must be equal after a crashed-and-resumed run and a clean one."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            s, c, e = schema.settlements.c, schema.credits.c, schema.ledger_entries.c
            settlements = [tuple(r) for r in conn.execute(
                sa.select(s.key, s.total, s.credit_applied, s.amount_due, s.allocations,
                          s.fingerprint, s.revision).order_by(s.key))]
            credits = [tuple(r) for r in conn.execute(
                sa.select(c.id, c.project_id, c.total, c.used, c.expired, c.voided,
                          c.available).order_by(c.id))]
            entry_counts = dict(conn.execute(
                sa.select(e.type, sa.func.count()).group_by(e.type)).all())
            debited = list(conn.execute(
                sa.select(e.amount).where(e.type == "debit")).scalars())
    finally:
        engine.dispose()
    return {"settlements": settlements, "credits": credits, "entries": entry_counts,
            "debited": sum(debited, Decimal(0))}


@dataclass
class Stats:
    kills: int = 0
    real_cli_kills: int = 0
    partial: int = 0  # kills after which the round was neither untouched nor done
    completed_before_kill: int = 0
    rounds: int = 0
    progress: list[str] = field(default_factory=list)
    clean_runs: list[float] = field(default_factory=list)


def wait_dead(process: Any) -> None:
    if isinstance(process, subprocess.Popen):
        process.wait(timeout=60)
    else:
        process.join(timeout=60)


def test_kill_9_during_batch_settlement_is_exactly_once(
    backend: str, server_pool: ServerPool, tmp_path: Path
) -> None:
    sides = {}
    for name in ("crash", "reference"):
        url = new_database_url(backend, server_pool, tmp_path / name)
        config = workload.write_ledger_files(tmp_path / name, url)
        workload.migrate(url)
        sides[name] = Side(url, config)
    crash_test(backend, [sides["crash"]], sides["reference"], kills_for(backend), tmp_path)


def crash_test(
    label: str, crash_sides: Sequence[Side], reference: Side, target: int, tmp_path: Path
) -> None:
    """Kill runs settling on the crash ledger, run I through ``crash_sides[I % len]``
    (Galera: the same ledger through each node); compare with ``reference``.
    """
    seed = int(os.environ.get("OVH_CREDIT_CRASH_SEED") or random.randrange(2**31))
    print(f"\ncrash test on {label}: {target} kills, seed {seed} "
          f"(OVH_CREDIT_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    crash = crash_sides[0]
    context = workload.fork_context()
    log = tmp_path / "cli.log"
    stats = Stats()
    audit_service = crash.service()
    watch_crash, watch_reference = Watcher(crash.url), Watcher(reference.url)
    began = time.monotonic()
    assert real_cli(["--config-file", str(reference.config), "audit"], log).wait(120) == 0
    startup = time.monotonic() - began  # what the real executable adds to a forked run

    number = 0
    while stats.kills < target:
        round_seed = rng.randrange(2**31)
        for side in (crash, reference):
            buy_credit(side, number, random.Random(round_seed))
        path = tmp_path / f"round-{number}.jsonl"
        keys = write_round(path, number, random.Random(round_seed + 1))
        # The clean run, on the reference ledger, times the round's batches.
        clean = context.Process(target=workload.cli_child,
                                args=(settle_argv(reference, path, number), str(log)))
        began = time.monotonic()
        clean.start()
        commits = watch_reference.follow(clean, number, len(keys))
        assert clean.exitcode == 0, log.read_text()[-3000:]
        total = time.monotonic() - began
        batch_time = (commits[-1] - commits[0]) / max(1, len(commits) - 1)
        stats.clean_runs.append(round(total, 2))

        killed_this_round = 0
        while killed_this_round < KILLS_PER_ROUND and stats.kills < target:
            use_real = (stats.kills + 1) % REAL_CLI_EVERY == 0
            argv = settle_argv(crash_sides[stats.kills % len(crash_sides)], path, number)
            before = watch_crash.count(number)
            left = (len(keys) - before) // BATCH
            if use_real:
                process: Any = real_cli(argv, log)
            else:
                process = context.Process(target=workload.cli_child, args=(argv, str(log)))
                process.start()
            if left > 1 and rng.random() < 0.8:
                # After 1 to 3 new batches have committed, somewhere in the next one.
                goal = before + BATCH * rng.randint(1, min(3, left - 1))
                watch_crash.wait_for(process, number, goal)
                time.sleep(rng.uniform(0, 1.5 * batch_time))
            else:  # anywhere: starting, validating the file, settling
                time.sleep(rng.uniform(0, total + (startup if use_real else 0)))
            alive = (process.poll() if use_real else process.exitcode) is None
            if alive:
                # By its pid, only while it runs (an exited child's pid may be reused).
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    alive = False  # it finished between the poll and the kill
            wait_dead(process)
            if not alive:
                stats.completed_before_kill += 1
                break
            stats.kills += 1
            stats.real_cli_kills += use_real
            killed_this_round += 1
            report = audit_service.audit()
            assert report.ok, (f"after kill {stats.kills} (seed {seed}): "
                               f"{report.violations}")
            done = _round_keys(crash.url, number)
            count = len(done)
            assert count % BATCH == 0 and set(done) == set(keys[:count]), (
                f"after kill {stats.kills} (seed {seed}): {count} settlements of round "
                f"{number} are not whole batches from the start of the file"
            )
            stats.partial += 0 < count < len(keys)
            stats.progress.append(f"{before // BATCH}->{count // BATCH}")

        finish = context.Process(target=workload.cli_child, args=(
            settle_argv(crash_sides[number % len(crash_sides)], path, number), str(log)))
        finish.start()
        finish.join(timeout=600)
        assert finish.exitcode == 0, log.read_text()[-3000:]
        assert sorted(_round_keys(crash.url, number)) == sorted(keys)
        number += 1
        stats.rounds = number

    watch_crash.close()
    watch_reference.close()
    report = audit_service.audit()
    audit_service.close()
    assert report.ok, report.violations
    after_crashes, clean_run = snapshot(crash.url), snapshot(reference.url)
    print(f"{label}: {stats}; debited {after_crashes['debited']}")
    assert after_crashes["entries"] == clean_run["entries"]
    assert after_crashes["debited"] == clean_run["debited"]
    assert after_crashes["credits"] == clean_run["credits"]
    assert after_crashes["settlements"] == clean_run["settlements"]
    assert len(after_crashes["settlements"]) == INVOICES_PER_ROUND * stats.rounds
    assert stats.kills >= target
    # The kills did land inside runs, not only before or after them.
    assert stats.partial >= max(1, target // 10), stats


class Watcher:
    """Counts a round's settlements as they commit (one autocommit connection)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def count(self, number: int) -> int:
        table = schema.settlements
        return int(self.conn.execute(
            sa.select(sa.func.count()).select_from(table)
            .where(table.c.invoice_id.like(f"r{number}-%"))
        ).scalar_one())

    def wait_for(self, process: Any, number: int, goal: int) -> None:
        """Until ``goal`` settlements of the round are committed or the process ends."""
        while self.count(number) < goal and _alive(process):
            time.sleep(0.002)

    def follow(self, process: Any, number: int, expected: int) -> list[float]:
        """Moments at which the count grew, until the process ends."""
        moments, last = [], 0
        while True:
            alive = _alive(process)
            found = self.count(number)
            if found != last:
                moments.append(time.monotonic())
                last = found
            if not alive:
                break
            time.sleep(0.002)
        wait_dead(process)
        assert last == expected, f"the clean run settled {last} of {expected}"
        return moments or [time.monotonic()]

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def _alive(process: Any) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is None
    return process.exitcode is None


def _round_keys(url: str, number: int) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            table = schema.settlements
            return list(conn.execute(
                sa.select(table.c.key).where(table.c.invoice_id.like(f"r{number}-%"))
            ).scalars())
    finally:
        engine.dispose()
