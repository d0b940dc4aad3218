"""Where an online SQLite invoice goes, against the floor's, and how far the design can go.

    python benchmarks/online_split.py [INVOICES]   # default 3,000

Settles INVOICES invoices one transaction each, on three copies of one seeded
ledger, by fifties in turn (after 200 untimed each, past the WAL file's growth):

* the floor (``floor.SqliteFloor``);
* ours (``InvoiceProcessor.process``, as ``run.py`` measures it);
* ours with no SQLAlchemy transaction at all: one ``Connection`` kept open,
  ``BEGIN IMMEDIATE`` and ``COMMIT`` sent straight to the driver (no pool
  checkout, no ``Transaction``, no ``begin`` event, no return to the pool).
  Not a way to run the ledger (no rollback handling worth the name, one
  thread): the bound that any rework of the transaction around the
  statements could reach.

Then prints the time each statement takes on the driver, ours (through
``ledger/bulk.py``) and the floor's, per invoice. Issue 15's
``online_ratio`` target (>= 0.65) is discussed against these in
docs/performance.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks import data, floor, settlement
from ovh_credit_plugin.ledger import bulk

WARM_UP = 200
CHUNK = 50


def _statement(sql: str) -> str:
    return " ".join(sql.split()[:3])[:48]


class _TimedCursor:
    """The floor's cursor, each statement timed into ``spent``."""

    def __init__(self, cursor: Any, spent: dict[str, float]) -> None:
        self.cursor, self.spent = cursor, spent

    def _timed(self, run: Callable[..., Any], sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return run(sql, *args)
        finally:
            name = "floor " + _statement(sql)
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self.cursor.execute, sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._timed(self.cursor.executemany, sql, rows)

    def fetchall(self) -> Any:
        return self.cursor.fetchall()


class _TimedConnection:
    def __init__(self, connection: Any, spent: dict[str, float]) -> None:
        self.connection, self.spent = connection, spent

    def cursor(self) -> _TimedCursor:
        return _TimedCursor(self.connection.cursor(), self.spent)

    def close(self) -> None:
        self.connection.close()


def _without_transaction(ours: settlement.Ours) -> None:
    """Run ``ours``'s write transactions on one kept connection, begun and committed raw."""
    database = ours.host.service.database
    kept = database.engine.connect()
    driver = kept.connection.dbapi_connection
    assert driver is not None

    @contextmanager
    def begin(_isolation_level: str | None, *, read_only: bool) -> Iterator[Any]:
        driver.execute("BEGIN IMMEDIATE")
        try:
            yield kept
        except BaseException:
            driver.execute("ROLLBACK")
            raise
        driver.execute("COMMIT")

    database._begin = begin  # type: ignore[method-assign,assignment]


def _instrument(ours: settlement.Ours, the_floor: floor.SqliteFloor,
                spent: dict[str, float]) -> Callable[[], None]:
    """Time each statement of ``ours`` and ``the_floor`` into ``spent``; returns the undo."""
    on_cursor = bulk._on_cursor
    dialect = ours.host.service.database.engine.dialect
    do_commit = dialect.do_commit
    connection = the_floor.connection

    def timed(conn: Any, sql: str, values: Any, *, many: bool) -> Any:
        started = time.perf_counter()
        try:
            return on_cursor(conn, sql, values, many=many)
        finally:
            name = "ours " + _statement(sql)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

    def timed_commit(driver: Any) -> None:
        started = time.perf_counter()
        try:
            do_commit(driver)
        finally:
            spent["ours COMMIT"] = spent.get("ours COMMIT", 0.0) + time.perf_counter() - started

    bulk._on_cursor = timed  # type: ignore[assignment]
    dialect.do_commit = timed_commit  # type: ignore[method-assign,assignment]
    the_floor.connection = _TimedConnection(connection, spent)  # type: ignore[assignment]

    def undo() -> None:
        bulk._on_cursor = on_cursor
        dialect.do_commit = do_commit  # type: ignore[method-assign]
        the_floor.connection = connection

    return undo


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    workdir = Path(tempfile.mkdtemp(prefix="ovh-credit-online-split-"))
    template = workdir / "template.sqlite"
    data.seed(data.sqlite_url(template), data.credits_for(count))
    data.checkpoint(template)
    docs = list(data.invoices(count, count))

    def copy(name: str) -> Path:
        return data.copy_ledger(template, workdir / name)

    the_floor = floor.SqliteFloor(str(copy("floor.sqlite")))
    ours = settlement.Ours(data.sqlite_url(copy("ours.sqlite")))
    bare = settlement.Ours(data.sqlite_url(copy("bare.sqlite")))
    _without_transaction(bare)
    sides: dict[str, Callable[[list[dict[str, Any]]], float]] = {
        "floor": lambda part: the_floor.settle(part, 1),
        "ours": lambda part: ours.settle(part, 1),
        "ours, no SQLAlchemy transaction": lambda part: bare.settle(part, 1),
    }
    for run in sides.values():
        run(docs[:WARM_UP])
    # Three quarters of the invoices for the ratios, untouched; the rest with the
    # statements timed (the timing's own calls would weigh on the ratios).
    split = WARM_UP + (count - WARM_UP) * 3 // 4
    per_invoice: dict[str, list[float]] = {name: [] for name in sides}
    for start in range(WARM_UP, split - CHUNK + 1, CHUNK):
        for name, run in sides.items():
            per_invoice[name].append(run(docs[start:start + CHUNK]) / CHUNK * 1e6)
    spent: dict[str, float] = {}
    undo = _instrument(ours, the_floor, spent)
    try:
        ours.settle(docs[split:], 1)
        the_floor.settle(docs[split:], 1)
    finally:
        undo()
    for side in (ours, bare):
        side.close()
    the_floor.close()

    floor_us = statistics.median(per_invoice["floor"])
    print(f"{len(per_invoice['floor']) * CHUNK} invoices, one transaction each, by "
          f"{CHUNK}s in turn (median of the chunks)")
    for name, times in per_invoice.items():
        median = statistics.median(times)
        print(f"  {name:34s} {median:6.0f} us an invoice   ratio {floor_us / median:.3f}")
    print(f"statements on the driver, us an invoice over {count - split} more invoices "
          "(ours: through ledger/bulk.py, COMMIT the dialect's do_commit)")
    for name in sorted(spent):
        print(f"  {name:54s} {spent[name] / (count - split) * 1e6:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
