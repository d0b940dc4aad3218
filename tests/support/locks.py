"""Seeing a session wait on a lock, instead of sleeping and hoping it does.

A test that shows a writer waits for another's lock pauses the first inside its
transaction, starts the second, and asks the database server whether the second
waits on a lock (:class:`LockWaits`), then releases the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from tests.support.ledgers import ServerPool


class LockWaits:
    """Whether a session of the test waits on a row lock, as the server itself says.

    PostgreSQL: a backend whose wait event is a lock; MariaDB: an InnoDB transaction
    in LOCK WAIT. SQLite has no row locks: a writer that began its transaction while
    another holds the write lock (BEGIN IMMEDIATE) waits for it; the test says when
    that writer began (:meth:`began`).
    """

    def __init__(self, backend: str, server_pool: ServerPool) -> None:
        self.backend = backend
        self.began = threading.Event()
        self._admin: Any = None
        if backend == "postgresql":
            import psycopg

            server = server_pool.get(backend)
            self._admin = psycopg.connect(host=server.host, port=server.port,
                                          user=server.admin_user, dbname="postgres",
                                          autocommit=True)
        elif backend == "mariadb":
            import pymysql

            server = server_pool.get(backend)
            self._admin = pymysql.connect(host=server.host, port=server.port,
                                          user=server.admin_user, autocommit=True)

    def waiting(self) -> bool:
        if self.backend == "postgresql":
            return bool(self._admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()[0])
        if self.backend == "mariadb":
            with self._admin.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx "
                            "WHERE trx_state = 'LOCK WAIT'")
                return bool(cur.fetchone()[0])
        return self.began.is_set()

    def until(self, done: Callable[[], bool], timeout: float = 30) -> None:
        """Until a session waits on a lock, or ``done()`` (it did not wait)."""
        limit = time.monotonic() + timeout
        # InnoDB refreshes information_schema.innodb_trx only when it was last read
        # more than 100 ms ago: polled faster, it never changes.
        interval = 0.15 if self.backend == "mariadb" else 0.005
        while not (self.waiting() or done()):
            assert time.monotonic() < limit, "nothing waited on a lock, nothing finished"
            time.sleep(interval)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()


def race(backend: str, server_pool: ServerPool, *, holder: tuple[Any, Callable[[], Any]],
         waiter: tuple[Any, Callable[[], Any]], holds: Callable[[str], bool]) -> tuple[Any, Any]:
    """Two writers at once: whether the second waits for the first's lock.

    ``holder`` and ``waiter`` are (engine, call) pairs. The holder's call runs until
    its engine executes a statement for which ``holds(statement)`` is true (spaces
    collapsed), and pauses there, inside its transaction; then the waiter's call
    starts, and must be seen waiting on a lock (:class:`LockWaits`) before it
    finishes; then the holder goes on. Returns what each call returned or raised.
    """
    holding, release = threading.Event(), threading.Event()
    waits = LockWaits(backend, server_pool)
    holder_engine, waiter_engine = holder[0], waiter[0]

    def pause(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if (threading.current_thread().name == "holder" and not holding.is_set()
                and holds(" ".join(statement.split()))):
            holding.set()
            assert release.wait(30)

    def began(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name == "waiter":
            waits.began.set()

    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        try:
            results[name] = call()
        except BaseException as error:  # returned to the test, which says what it expected
            results[name] = error

    threads = [threading.Thread(target=run, name=name, args=(name, call))
               for name, call in (("holder", holder[1]), ("waiter", waiter[1]))]
    event.listen(holder_engine, "after_cursor_execute", pause)
    event.listen(waiter_engine, "before_cursor_execute", began)
    try:
        threads[0].start()
        assert holding.wait(30), "the first writer never reached its lock"
        threads[1].start()
        waits.until(lambda: "waiter" in results)
        assert "waiter" not in results, f"the second writer did not wait for the lock: {results}"
        release.set()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads)
    finally:
        release.set()
        event.remove(holder_engine, "after_cursor_execute", pause)
        event.remove(waiter_engine, "before_cursor_execute", began)
        waits.close()
    return results["holder"], results["waiter"]
