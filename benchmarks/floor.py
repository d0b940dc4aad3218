"""The floor: the same statements issued with the bare DB-API driver.

Per invoice: one SELECT of the project's open credits; then one UPDATE per
credit debited, one INSERT per ledger entry and one INSERT of the settlement,
sent with ``executemany`` once per transaction. Same batching, same
durability (SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``;
PostgreSQL: ``SELECT ... FOR UPDATE``, READ COMMITTED, the server's
durability settings). No validation, no Decimal: amounts are integer
micro-units, parsed from and formatted to the ledger's text form by hand,
credit is applied greedily in consumption order (respecting scopes), and the
fingerprint is a constant. It writes the same rows and columns as ours.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

_MICRO = 1_000_000
_FAR = "9999-12-31 23:59:59.999999"

_SELECT = (
    "SELECT id, kind, used, expired, voided, available, valid_from, valid_until, created_at,"
    " products FROM cloud_credit_credits"
    " WHERE project_id = ? AND available > ? AND voided_at IS NULL ORDER BY id"
)
_UPDATE = (
    "UPDATE cloud_credit_credits SET used = ?, expired = ?, voided = ?, available = ?"
    " WHERE id = ?"
)
_ENTRY = (
    "INSERT INTO cloud_credit_ledger_entries"
    " (credit_id, type, amount, settlement_key, line_id, note, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SETTLEMENT = (
    "INSERT INTO cloud_credit_settlements (key, project_id, invoice_id, currency, total,"
    " credit_applied, amount_due, fingerprint, allocations, revision, settled_at, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * _MICRO + int((fraction + "000000")[:6])


class _Dialect:
    """How amounts and times travel through one driver."""

    name = "sqlite"
    for_update = ""

    def sql(self, statement: str) -> str:
        return statement

    def amount_in(self, value: Any) -> int:
        return int(value.replace(".", ""))

    def amount_out(self, value: int) -> Any:
        return f"{value // _MICRO:022d}.{value % _MICRO:06d}"

    def time_out(self, value: str) -> Any:
        return value

    def time_in(self, value: Any) -> str:
        return "" if value is None else str(value)


class _PostgreSQL(_Dialect):
    name = "postgresql"
    for_update = " FOR UPDATE"

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def amount_in(self, value: Any) -> int:
        return int(value.scaleb(6))

    def amount_out(self, value: int) -> Any:
        return f"{value // _MICRO}.{value % _MICRO:06d}"


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _settle_one(cursor: Any, d: _Dialect, doc: dict[str, Any], now: str,
                select: str, zero: Any, balances: dict[int, list[Any]],
                entries: list[tuple[Any, ...]], settlements: list[tuple[Any, ...]]) -> None:
    key = f"invoice/{doc['project_id']}/{doc['id']}"
    issued = doc["issued_at"].replace("T", " ").replace("Z", "")
    lines = [[line["id"], line["product"], micros(line["amount"])] for line in doc["lines"]]
    total = sum(line[2] for line in lines)
    cursor.execute(select, (doc["project_id"], zero))
    rows = cursor.fetchall()
    order = sorted(
        rows, key=lambda r: (r[1] != "voucher", d.time_in(r[7]) or _FAR, d.time_in(r[8]), r[0])
    )
    shares = []
    for row in order:
        credit_id = row[0]
        state = balances.get(credit_id)
        if state is None:
            state = balances[credit_id] = [
                d.amount_in(row[2]), d.amount_in(row[3]), d.amount_in(row[4]),
                d.amount_in(row[5]),
            ]
        if state[3] <= 0 or d.time_in(row[6]) > issued or (
            row[7] is not None and d.time_in(row[7]) <= issued
        ):
            continue
        scope = json.loads(row[9]) if row[9] != "[]" else None
        for line in lines:
            if line[2] and (scope is None or line[1] in scope):
                take = min(line[2], state[3])
                line[2] -= take
                state[3] -= take
                state[0] += take
                shares.append((line[0], credit_id, row[1], take))
                if not state[3]:
                    break
    applied = 0
    for line_id, credit_id, _kind, take in shares:
        applied += take
        entries.append((credit_id, "debit", d.amount_out(take), key, line_id, "", now))
    settlements.append((
        key, doc["project_id"], doc["id"], doc["currency"], d.amount_out(total),
        d.amount_out(applied), d.amount_out(total - applied), "floor",
        json.dumps([[s[0], s[1], s[2], d.amount_out(s[3])] for s in shares]),
        1, issued, now, now,
    ))


def _flush(cursor: Any, d: _Dialect, balances: dict[int, list[Any]],
           entries: list[tuple[Any, ...]], settlements: list[tuple[Any, ...]]) -> None:
    updates = [
        (d.amount_out(b[0]), d.amount_out(b[1]), d.amount_out(b[2]), d.amount_out(b[3]), cid)
        for cid, b in balances.items()
    ]
    if updates:
        cursor.executemany(d.sql(_UPDATE), updates)
    if entries:
        cursor.executemany(d.sql(_ENTRY), entries)
    if settlements:
        cursor.executemany(d.sql(_SETTLEMENT), settlements)


def _run(connection: Any, d: _Dialect, docs: Sequence[dict[str, Any]], batch_size: int,
         begin: str | None) -> float:
    now = _time(dt.datetime.now(dt.timezone.utc))
    select = d.sql(_SELECT + d.for_update)
    zero = d.amount_out(0)
    cursor = connection.cursor()
    started = time.perf_counter()
    for start in range(0, len(docs), batch_size):
        if begin:
            cursor.execute(begin)
        balances: dict[int, list[Any]] = {}
        entries: list[tuple[Any, ...]] = []
        settlements: list[tuple[Any, ...]] = []
        for doc in docs[start:start + batch_size]:
            _settle_one(cursor, d, doc, now, select, zero, balances, entries, settlements)
        # Only the credits that were debited are written back.
        debited = {e[0] for e in entries}
        _flush(cursor, d, {k: v for k, v in balances.items() if k in debited}, entries,
               settlements)
        connection.commit() if not begin else cursor.execute("COMMIT")
    return time.perf_counter() - started


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A raw connection with the plugin's settings (ledger/database.py)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON",
                   "synchronous=FULL"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def sqlite_floor(path: str, docs: Sequence[dict[str, Any]], batch_size: int) -> float:
    """Seconds to settle ``docs`` on the SQLite file at ``path``."""
    connection = sqlite_connect(path)
    try:
        return _run(connection, _Dialect(), docs, batch_size, "BEGIN IMMEDIATE")
    finally:
        connection.close()


def postgresql_floor(dsn: str, docs: Sequence[dict[str, Any]], batch_size: int) -> float:
    """Seconds to settle ``docs`` on PostgreSQL with psycopg (READ COMMITTED)."""
    import psycopg

    with psycopg.connect(dsn) as connection:
        connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        return _run(connection, _PostgreSQL(), docs, batch_size, None)


class SqliteFloor:
    """The SQLite floor on one open connection, settling chunk after chunk."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite_connect(path)

    def settle(self, docs: Sequence[dict[str, Any]], batch_size: int) -> float:
        return _run(self.connection, _Dialect(), docs, batch_size, "BEGIN IMMEDIATE")

    def close(self) -> None:
        self.connection.close()
